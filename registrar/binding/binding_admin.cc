#include "registrar/binding/binding_admin.h"

#include <cstdlib>

#include "common/log/logger.h"
#include "common/redis/keyspace_scan.h"

namespace sipwake::registrar {
namespace {

// Re-seal only while the stored blob is the one that was read: a PUT that
// came in between (sealed under whatever key) is left alone.
constexpr const char* kResealScript = R"lua(
if redis.call('HGET', KEYS[1], 'credential') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'credential', ARGV[2])
return 1
)lua";

constexpr std::string_view kBindingPrefix = "sipwake:binding:{";

BindingFields toFields(const redis::Reply& reply) {
  BindingFields fields;
  for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
    fields.emplace(std::string(reply.element(i).str()), std::string(reply.element(i + 1).str()));
  }
  return fields;
}

std::uint64_t toUnsigned(std::string_view text) {
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

void check(const redis::Reply& reply, const char* what) {
  if (reply.isError()) throw redis::RedisUnavailable(std::string(what) + ": " + std::string(reply.str()));
}

// One ZSCAN step over the index: the binding keys and the next cursor.
std::string scanIndex(redis::Connection& redis, const std::string& cursor, std::size_t batch,
                      std::vector<std::string>& keys) {
  redis::Reply reply =
      redis.command({"ZSCAN", kBindingIndexKey, cursor, "COUNT", std::to_string(batch)});
  check(reply, "ZSCAN");
  if (!reply.isArray() || reply.size() != 2) throw redis::RedisUnavailable("unexpected ZSCAN reply");
  redis::Reply members = reply.element(1);
  for (std::size_t i = 0; i + 1 < members.size(); i += 2) keys.emplace_back(members.element(i).str());
  return std::string(reply.element(0).str());
}

}  // namespace


BindingPage listBindings(redis::Connection& redis, const std::string& tenant,
                         const std::string& state, std::size_t limit, const std::string& cursor) {
  // Tenant names are [A-Za-z0-9_-] (checked by the caller): no glob characters.
  std::string match = std::string(kBindingPrefix) + (tenant.empty() ? "*" : tenant + "/*") + "}";
  BindingPage page;
  page.next_cursor = cursor;
  // A few SCAN steps at most: a filter may match little of a large keyspace,
  // so an empty page with a cursor is a valid answer.
  for (int step = 0; step < 8 && page.bindings.size() < limit; ++step) {
    std::size_t want = limit - page.bindings.size();
    // Each cluster primary in turn (the cursor names the node).
    redis::ScanStep scanned = redis::scanKeyspace(
        redis, page.next_cursor,
        {"MATCH", match, "COUNT", std::to_string(std::max<std::size_t>(want, 100)), "TYPE", "hash"});
    page.next_cursor = scanned.next_cursor;
    std::vector<std::vector<std::string>> commands;
    for (auto& key : scanned.keys) commands.push_back({"HGETALL", std::move(key)});
    auto replies = redis.pipeline(commands);
    for (const auto& r : replies) {
      if (!r.isArray() || r.size() == 0) continue;  // expired in between
      BindingFields fields = toFields(r);
      if (!state.empty() && fields["state"] != state) continue;
      // A SCAN step may overshoot `limit`: the page keeps them all, since a
      // SCAN cursor cannot resume in the middle of a step.
      page.bindings.push_back(std::move(fields));
    }
    if (page.next_cursor == "0") break;
  }
  return page;
}

Ownership readOwnership(redis::Connection& redis) {
  Ownership out;
  redis::Reply live = redis.command({"ZRANGE", kInstancesKey, "0", "-1", "WITHSCORES"});
  check(live, "ZRANGE instances");
  std::vector<std::vector<std::string>> commands;
  for (std::size_t i = 0; i + 1 < live.size(); i += 2) {
    InstanceInfo info;
    info.name = std::string(live.element(i).str());
    info.deadline = static_cast<Millis>(std::stod(std::string(live.element(i + 1).str())));
    commands.push_back({"HGETALL", instanceRedisKey(info.name)});
    out.instances.push_back(std::move(info));
  }
  auto replies = redis.pipeline(commands);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].isArray()) out.instances[i].attributes = toFields(replies[i]);
  }

  // Leases: shard -> "<instance> <deadline ms>", live while the deadline is
  // ahead of Redis's clock.
  auto leases = redis.pipeline({{"HGETALL", kLeasesKey}, {"TIME"}});
  check(leases[0], "HGETALL leases");
  long long now = 0;
  if (leases[1].isArray() && leases[1].size() == 2) {
    now = std::stoll(std::string(leases[1].element(0).str())) * 1000 +
          std::stoll(std::string(leases[1].element(1).str())) / 1000;
  }
  for (std::size_t i = 0; i + 1 < leases[0].size(); i += 2) {
    std::string value(leases[0].element(i + 1).str());
    auto space = value.find(' ');
    if (space == std::string::npos) continue;
    if (std::atoll(value.c_str() + space + 1) > now) ++out.leases_by_owner[value.substr(0, space)];
  }
  for (auto& info : out.instances) {
    auto it = out.leases_by_owner.find(info.name);
    info.leases = it == out.leases_by_owner.end() ? 0 : it->second;
  }
  return out;
}

std::string countBindingOwners(redis::Connection& redis, const std::string& cursor,
                               std::size_t batch, std::map<std::string, std::size_t>& counts) {
  std::vector<std::string> keys;
  std::string next = scanIndex(redis, cursor, batch, keys);
  std::vector<std::vector<std::string>> commands;
  for (const auto& key : keys) commands.push_back({"HGET", bindingRedisKey(key), "owner"});
  for (const auto& r : redis.pipeline(commands)) {
    if (r.isString()) ++counts[std::string(r.str())];
  }
  return next;
}

PushQueueInfo readPushQueue(redis::Connection& redis) {
  PushQueueInfo info;
  redis::Reply length = redis.command({"XLEN", kPushStreamKey});
  check(length, "XLEN");
  info.length = length.integer();
  redis::Reply pending = redis.command({"XPENDING", kPushStreamKey, kPushGroup});
  // NOGROUP (no pushgw has attached yet) is an answer, not a failure.
  if (pending.isArray() && pending.size() == 4) {
    info.group_exists = true;
    info.pending = pending.element(0).integer();
    info.consumers = static_cast<long long>(pending.element(3).size());
  }
  return info;
}

std::string resealBatch(redis::Connection& redis, const crypto::CredentialSealer& sealer,
                        const std::string& cursor, std::size_t batch, ResealCounts& counts,
                        std::vector<Resealed>& resealed) {
  thread_local redis::Script script{kResealScript, {}};
  std::vector<std::string> keys;
  std::string next = scanIndex(redis, cursor, batch, keys);
  std::string current = sealer.currentKeyId();
  for (const auto& key : keys) {
    // A PUT may replace the blob between our read and our write: the script
    // refuses then, and we look again (the PUT's blob may be current already).
    for (int attempt = 0;; ++attempt) {
      redis::Reply r = redis.command({"HMGET", bindingRedisKey(key), "credential", "generation"});
      check(r, "HMGET");
      if (!r.isArray() || r.size() != 2 || !r.element(0).isString()) break;  // gone or failed
      std::string blob(r.element(0).str());
      if (crypto::CredentialSealer::keyIdOf(blob) == current) {
        ++counts.already_current;
        break;
      }
      auto password = sealer.open(blob, key);
      if (!password) {
        ++counts.failed;
        log::error("cannot re-seal a credential: no known key opens it",
                   {{"binding", key}, {"key_id", crypto::CredentialSealer::keyIdOf(blob).value_or("?")}});
        break;
      }
      std::string sealed = sealer.seal(password->reveal(), key);
      redis::Reply done = redis.eval(script, {bindingRedisKey(key)}, {blob, sealed});
      check(done, "re-seal script");
      if (done.integer() == 1) {
        ++counts.resealed;
        resealed.push_back({key, toUnsigned(r.element(1).str()), std::move(sealed)});
        break;
      }
      if (attempt == 2) {
        ++counts.failed;
        log::warn("cannot re-seal a credential: it keeps changing", {{"binding", key}});
        break;
      }
    }
  }
  return next;
}

}  // namespace sipwake::registrar
