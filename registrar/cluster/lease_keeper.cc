#include "registrar/cluster/lease_keeper.h"

#include <algorithm>
#include <cstdlib>
#include <random>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/log/logger.h"

namespace sipwake::registrar {
namespace {

// One round of ownership. KEYS: instances zset, leases hash, this instance's
// hash. ARGV: instance, ttl ms, shard count, leaving (0/1), a random offset
// (so instances claiming at once pick different shards), sip, api.
// Returns {live instances, shard, shard, ...}: the shards this instance owns.
//
// Fair share is ceil(shards / live). An instance above it gives the excess
// up only while some live instance holds less than floor(shards / live), so
// a settled cluster does not flap. Claims prefer shards this instance held
// before (a lease that lapsed while Redis was away comes back to its owner,
// whose bindings are still registered).
constexpr const char* kRoundScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, ttl, shards = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local leaving, offset = ARGV[4] == '1', tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if leaving then
  redis.call('ZREM', KEYS[1], me)
  redis.call('HSET', KEYS[3], 'state', 'leaving')
else
  redis.call('ZADD', KEYS[1], now + ttl, me)
  redis.call('HSET', KEYS[3], 'sip', ARGV[6], 'api', ARGV[7], 'state', 'active')
  redis.call('HSETNX', KEYS[3], 'started_at', now)
end
redis.call('PEXPIRE', KEYS[3], ttl * 3)
local alive = {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, name in ipairs(members) do alive[name] = 0 end
local live = #members

local owner, deadline = {}, {}
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do
  local s = tonumber(raw[i])
  local sep = string.find(raw[i + 1], ' ', 1, true)
  if s and sep then
    owner[s] = string.sub(raw[i + 1], 1, sep - 1)
    deadline[s] = tonumber(string.sub(raw[i + 1], sep + 1)) or 0
  end
end

local mine, lapsed_mine, free = {}, {}, {}
for i = 0, shards - 1 do
  local s = (i + offset) % shards
  local o = owner[s]
  if o == me and deadline[s] > now then
    mine[#mine + 1] = s
  elseif o == nil or deadline[s] <= now then
    if o == me then lapsed_mine[#lapsed_mine + 1] = s else free[#free + 1] = s end
  elseif alive[o] ~= nil then
    alive[o] = alive[o] + 1
  end
end

local keep = {}
if leaving then
  if live > 0 then
    for _, s in ipairs(mine) do redis.call('HDEL', KEYS[2], s) end
  else
    keep = mine  -- nobody to hand over to: hold on until the process ends
  end
else
  local fair = math.ceil(shards / live)
  local floor_share = math.floor(shards / live)
  local starving = false
  for name, count in pairs(alive) do
    if name ~= me and count < floor_share then starving = true end
  end
  local target = fair
  if #mine > fair and not starving then target = #mine end
  for i, s in ipairs(mine) do
    if i <= target then keep[#keep + 1] = s else redis.call('HDEL', KEYS[2], s) end
  end
  for _, list in ipairs({lapsed_mine, free}) do
    for _, s in ipairs(list) do
      if #keep >= target then break end
      keep[#keep + 1] = s
    end
  end
end
local value = me .. ' ' .. (now + ttl)
for _, s in ipairs(keep) do redis.call('HSET', KEYS[2], s, value) end
local out = {live}
for _, s in ipairs(keep) do out[#out + 1] = s end
return out
)lua";

}  // namespace

std::string leaseOwner(redis::Connection& redis, std::uint32_t shard) {
  auto replies = redis.pipeline({{"HGET", kLeasesKey, std::to_string(shard)}, {"TIME"}});
  if (!replies[0].isString() || !replies[1].isArray() || replies[1].size() != 2) return {};
  std::string value(replies[0].str());
  auto space = value.find(' ');
  if (space == std::string::npos) return {};
  long long now = std::atoll(std::string(replies[1].element(0).str()).c_str()) * 1000 +
                  std::atoll(std::string(replies[1].element(1).str()).c_str()) / 1000;
  return std::atoll(value.c_str() + space + 1) > now ? value.substr(0, space) : std::string();
}

bool instanceAlive(redis::Connection& redis, const std::string& instance) {
  auto replies = redis.pipeline({{"ZSCORE", kInstancesKey, instance}, {"TIME"}});
  if (!replies[0].isString() || !replies[1].isArray() || replies[1].size() != 2) return false;
  long long now = std::atoll(std::string(replies[1].element(0).str()).c_str()) * 1000 +
                  std::atoll(std::string(replies[1].element(1).str()).c_str()) / 1000;
  return std::atoll(std::string(replies[0].str()).c_str()) > now;
}

LeaseKeeper::LeaseKeeper(Options options, ShardsChanged on_change)
    : options_(std::move(options)),
      on_change_(std::move(on_change)),
      redis_(options_.url),
      script_{kRoundScript, ""} {
  if (options_.registry) {
    leases_gauge_ = &prometheus::BuildGauge()
                         .Name("registrar_shard_leases")
                         .Help("Binding shards this instance holds a lease on")
                         .Register(*options_.registry)
                         .Add({});
    live_gauge_ = &prometheus::BuildGauge()
                       .Name("registrar_live_instances")
                       .Help("Registrar instances alive in Redis, as this instance last saw them")
                       .Register(*options_.registry)
                       .Add({});
  }
}

LeaseKeeper::~LeaseKeeper() { stop(); }

void LeaseKeeper::start() {
  thread_ = std::thread([this] { run(); });
}

void LeaseKeeper::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool LeaseKeeper::owns(std::uint32_t shard) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return mine_.count(shard) != 0;
}

std::size_t LeaseKeeper::ownedCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return mine_.size();
}

LeaseKeeper::Round LeaseKeeper::tick(bool leaving) {
  std::uint64_t offset = std::random_device{}() % std::max<std::uint32_t>(options_.shards, 1);
  redis::Reply reply = redis_.eval(
      script_, {kInstancesKey, kLeasesKey, instanceRedisKey(options_.instance)},
      {options_.instance, std::to_string(options_.ttl), std::to_string(options_.shards),
       leaving ? "1" : "0", std::to_string(offset), options_.sip_advertise, options_.api_listen});
  Round round;
  if (!reply.isArray() || reply.size() == 0) throw std::runtime_error("unexpected lease round reply");
  round.live = static_cast<int>(reply.element(0).integer());
  for (std::size_t i = 1; i < reply.size(); ++i) {
    round.mine.insert(static_cast<std::uint32_t>(reply.element(i).integer()));
  }
  return round;
}

void LeaseKeeper::apply(const Round& round) {
  std::vector<std::uint32_t> gained, lost;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::set_difference(round.mine.begin(), round.mine.end(), mine_.begin(), mine_.end(),
                        std::back_inserter(gained));
    std::set_difference(mine_.begin(), mine_.end(), round.mine.begin(), round.mine.end(),
                        std::back_inserter(lost));
    mine_ = round.mine;
  }
  live_ = round.live;
  if (leases_gauge_) leases_gauge_->Set(static_cast<double>(round.mine.size()));
  if (live_gauge_) live_gauge_->Set(round.live);
  if (!gained.empty() || !lost.empty()) {
    log::info("shard ownership changed",
              {{"gained", std::to_string(gained.size())},
               {"lost", std::to_string(lost.size())},
               {"owned", std::to_string(round.mine.size())},
               {"live_instances", std::to_string(round.live)}});
    on_change_(gained, lost);
  }
  settled_ = true;
}

bool LeaseKeeper::leave() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    leaving_ = true;
  }
  wake_.notify_all();
  // The round runs here, not on the lease thread, so the caller knows the
  // outcome when this returns; the thread only keeps renewing (or not).
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      std::lock_guard<std::mutex> serial(round_mutex_);
      Round round = tick(true);
      // Alone: keep every binding here until the process ends, whatever
      // Redis says (it may have lost the leases while it was away).
      if (round.live == 0) return false;
      apply(round);
      return round.mine.empty();
    } catch (const std::exception& e) {
      log::warn("cannot hand shards over yet", {{"error", e.what()}});
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }
  return false;
}

void LeaseKeeper::run() {
  const auto interval = std::chrono::milliseconds(std::max<Millis>(options_.ttl / 3, 100));
  bool warned = false;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_ && !leaving_) {  // leave() runs the last round itself
    lock.unlock();
    try {
      std::lock_guard<std::mutex> serial(round_mutex_);
      Round round = tick(false);
      apply(round);
      if (warned) log::info("lease rounds work again");
      warned = false;
    } catch (const std::exception& e) {
      // Leases run out on Redis's clock; until then (and after: nobody else
      // can claim without Redis either) the engine carries on from memory.
      if (!warned) log::warn("cannot renew shard leases", {{"error", e.what()}});
      warned = true;
    }
    lock.lock();
    wake_.wait_for(lock, interval, [this] { return stopping_ || leaving_; });
  }
}

}  // namespace sipwake::registrar
