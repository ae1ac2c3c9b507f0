#include "registrar/push/push_job_writer.h"

#include <pthread.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/log/logger.h"
#include "common/redis/keyspace_scan.h"
#include "registrar/binding/binding_store.h"
#include "registrar/trace/push_trace.h"

namespace sipwake::registrar {
namespace {

constexpr int kCallStateTtlSeconds = 600;
constexpr Millis kRetryDelay = 200;

// Returns nil when the binding is gone, "duplicate" when another instance (or
// an earlier transaction) already pushed this call, else {devices, tenant, id}.
constexpr const char* kFanoutScript = R"lua(
local devices = redis.call('HGET', KEYS[1], 'devices')
if not devices then return false end
if ARGV[1] == 'call' then
  if redis.call('HSETNX', KEYS[2], 'state', 'ringing') == 0 then return 'duplicate' end
  redis.call('HSET', KEYS[2], 'instance', ARGV[2], 'at', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
elseif ARGV[1] == 'call_cancelled' then
  redis.call('HSET', KEYS[2], 'state', 'ended')
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return {devices, redis.call('HGET', KEYS[1], 'tenant'), redis.call('HGET', KEYS[1], 'id')}
)lua";

}  // namespace

std::string callStateKey(const std::string& binding_key, const std::string& call_id) {
  return "sipwake:call:{" + binding_key + "}:" + call_id;
}

PushJobWriter::PushJobWriter(redis::RedisUrl url, std::string instance,
                             prometheus::Registry* registry, long long max_stream_length)
    : redis_(std::move(url)),
      instance_(std::move(instance)),
      fanout_script_{kFanoutScript, {}},
      max_stream_length_(max_stream_length) {
  if (registry != nullptr) {
    refused_ = &prometheus::BuildCounter()
                    .Name("registrar_push_jobs_refused_total")
                    .Help("Push jobs not written: the job stream is over its bound (pushgw not consuming)")
                    .Register(*registry)
                    .Add({});
  }
}

bool PushJobWriter::streamFull() {
  Millis now = SystemClock::instance().now();
  if (now >= next_length_check_) {
    redis::Reply length = redis_.command({"XLEN", kPushStreamKey});
    stream_full_ = length.isInteger() && length.integer() >= max_stream_length_;
    next_length_check_ = now + kSecond;
  }
  return stream_full_;
}

PushJobWriter::~PushJobWriter() { stop(); }

void PushJobWriter::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "push-writer");
    run();
  });
}

void PushJobWriter::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void PushJobWriter::enqueue(PushRequest request) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Item{false, std::move(request), nullptr, 0});
  }
  wake_.notify_one();
}

void PushJobWriter::callEnded(const std::string& binding_key, const std::string& call_id) {
  Item item;
  item.ended = true;
  item.request.binding_key = binding_key;
  item.request.call_id = call_id;
  item.request.expires_at = SystemClock::instance().now() + kMinute;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(item));
  }
  wake_.notify_one();
}

void PushJobWriter::run() {
  while (true) {
    Item item;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    // In order; while Redis is away, retry until the push is useless.
    while (true) {
      try {
        write(item);
        break;
      } catch (const std::exception& e) {
        Millis now = SystemClock::instance().now();
        bool stopping;
        {
          std::lock_guard lock(mutex_);
          stopping = stopping_;
        }
        if (now >= item.request.expires_at || stopping) {
          log::error("push job dropped: redis unreachable",
                     {{"binding", item.request.binding_key},
                      {"call_id", item.request.call_id},
                      {"error", e.what()}});
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(kRetryDelay));
      }
    }
  }
}

void PushJobWriter::sweepLostCalls(Millis before, std::function<void(int)> done) {
  Item item;
  item.sweep_before = before;
  item.swept = std::move(done);
  item.request.expires_at = SystemClock::instance().now() + kMinute;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(item));
  }
  wake_.notify_one();
}

int PushJobWriter::sweep(Millis before) {
  int lost = 0;
  std::string cursor = "0";
  do {
    // Every primary of a cluster in turn.
    redis::ScanStep page =
        redis::scanKeyspace(redis_, cursor, {"MATCH", "sipwake:call:*", "COUNT", "1000"});
    cursor = page.next_cursor;
    for (const auto& key : page.keys) {
      redis::Reply f = redis_.command({"HMGET", key, "state", "instance", "at"});
      if (!f.isArray() || f.size() != 3) continue;
      bool mine = f.element(0).str() == "ringing" && f.element(1).str() == instance_;
      if (mine && std::atoll(std::string(f.element(2).str()).c_str()) < before) {
        redis_.command({"HSET", key, "state", "ended"});
        ++lost;
      }
    }
  } while (cursor != "0");
  return lost;
}

void PushJobWriter::write(const Item& item) {
  if (item.swept) {
    item.swept(sweep(item.sweep_before));
    return;
  }
  if (item.ended) {
    std::string key = callStateKey(item.request.binding_key, item.request.call_id);
    redis_.pipeline({{"HSET", key, "state", "ended"},
                     {"EXPIRE", key, std::to_string(kCallStateTtlSeconds)}});
    return;
  }
  writePush(item.request);
}

void PushJobWriter::writePush(const PushRequest& r) {
  redis::Reply reply = redis_.eval(
      fanout_script_,
      {bindingRedisKey(r.binding_key), callStateKey(r.binding_key, r.call_id)},
      {r.type, instance_, std::to_string(kCallStateTtlSeconds),
       std::to_string(SystemClock::instance().now())});
  if (reply.isError()) throw redis::RedisUnavailable(std::string(reply.str()));
  if (reply.isNil() || !reply.isArray()) {
    if (reply.str() != "duplicate") {
      log::warn("push not sent: binding gone", {{"binding", r.binding_key}});
    }
    return;
  }
  auto devices = nlohmann::json::parse(reply.element(0).str(), nullptr, false);
  std::string tenant(reply.element(1).str()), id(reply.element(2).str());
  if (!devices.is_array()) return;
  Millis now = SystemClock::instance().now();
  std::vector<std::vector<std::string>> commands;
  const std::string trace_key = traceRedisKey(r.binding_key);
  std::vector<std::string> queued{"LPUSH", trace_key};
  for (const auto& device : devices) {
    nlohmann::json job = {{"type", r.type},         {"tenant", tenant},
                          {"binding", id},          {"device", device},
                          {"call_id", r.call_id},   {"from", r.from_uri},
                          {"from_name", r.from_name}, {"to", r.to_uri},
                          {"sent_at", now},         {"received_at", r.received_at},
                          {"expires_at", r.expires_at}, {"instance", instance_}};
    if (r.type == "message") job["body"] = r.body;
    if (!r.relay.empty()) job["relay"] = r.relay;
    if (r.type == "call_cancelled") job["answered_elsewhere"] = r.answered_elsewhere;
    if (trace_.enabled) {
      job["trace"] = {{"max", trace_.max_entries}, {"ttl", trace_.ttl / kSecond}};
      queued.push_back(pushQueuedTrace(job, now));
    }
    commands.push_back({"XADD", kPushStreamKey, "*", "job",
                        job.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
  }
  if (commands.empty()) return;
  if (streamFull()) {
    if (refused_ != nullptr) refused_->Increment(static_cast<double>(commands.size()));
    log::error("push job refused: the job stream is over its bound",
               {{"binding", r.binding_key}, {"type", r.type},
                {"max_stream_length", std::to_string(max_stream_length_)}});
    return;
  }
  if (trace_.enabled) {
    commands.push_back(std::move(queued));
    commands.push_back({"LTRIM", trace_key, "0", std::to_string(trace_.max_entries - 1)});
    commands.push_back({"PEXPIRE", trace_key, std::to_string(trace_.ttl)});
  }
  redis_.pipeline(commands);
}

}  // namespace sipwake::registrar
