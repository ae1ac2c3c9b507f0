#include "registrar/binding/binding_store.h"

#include <nlohmann/json.hpp>

#include "common/log/logger.h"
#include "registrar/trace/push_trace.h"

namespace sipwake::registrar {
namespace {

// Every script touches one key (the binding's hash) so the layout also works
// on Redis Cluster; the index and the push stream are updated beside them.

// PUT: keeps our Contact token for the life of the binding, and the Call-ID
// and CSeq while the AOR and PBX stay the same, so a re-PUT (every time the
// app goes to the background) never makes a second contact at the PBX.
constexpr const char* kPutScript = R"lua(
local h = KEYS[1]
local now = ARGV[1]
local old = redis.call('HMGET', h, 'generation', 'contact_token', 'call_id', 'aor', 'destination',
                       'cseq', 'state', 'created_at')
local created = not old[1]
local gen, token, call_id, cseq, state, created_at = 1, ARGV[2], ARGV[3], 0, 'registering', now
local fields = {}
local new_aor, new_dest
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'aor' then new_aor = ARGV[i + 1] end
  if ARGV[i] == 'destination' then new_dest = ARGV[i + 1] end
end
if not created then
  gen = tonumber(old[1]) + 1
  if old[2] then token = old[2] end
  if old[8] then created_at = old[8] end
  if old[3] and old[4] == new_aor and old[5] == new_dest then
    call_id = old[3]
    cseq = tonumber(old[6]) or 0
    if old[7] and old[7] ~= 'failed' and old[7] ~= 'unregistered' then state = old[7] end
  end
end
redis.call('HSET', h, unpack(fields))
redis.call('HSET', h, 'generation', gen, 'contact_token', token, 'call_id', call_id, 'cseq', cseq,
           'state', state, 'put_at', now, 'updated_at', now, 'created_at', created_at)
-- Our Contact as this instance would write it; the owning instance writes
-- its own (and the one the PBX accepted) with its status.
if redis.call('HEXISTS', h, 'contact') == 0 then
  redis.call('HSET', h, 'contact', 'sip:' .. token .. ARGV[4])
end
if state == 'registering' then
  redis.call('HSET', h, 'failures', 0, 'auth_rejections', 0, 'temporary_failures', 0,
             'first_failure_at', 0)
  redis.call('HDEL', h, 'failure_reason')
end
redis.call('PERSIST', h)
return {created and 1 or 0, gen, token, call_id, cseq}
)lua";

// Status from the engine: dropped when a newer PUT (generation) came since.
constexpr const char* kStatusScript = R"lua(
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
)lua";

// Failure: the credential goes, the record stays readable for a while.
constexpr const char* kFailedScript = R"lua(
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HDEL', KEYS[1], 'credential')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HMGET', KEYS[1], 'tenant', 'id', 'devices')
)lua";

// An expiry warning: once per warning offset (ARGV[2] names it) and generation.
constexpr const char* kExpiringScript = R"lua(
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then return false end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
return redis.call('HMGET', KEYS[1], 'tenant', 'id', 'devices')
)lua";

constexpr const char* kEraseIfScript = R"lua(
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
)lua";

std::vector<std::string> statusFields(const RegistrationStatus& s, const std::string& owner) {
  if (s.routine) {
    return {"expires_at",  std::to_string(s.expires_at),  "next_attempt_at",
            std::to_string(s.next_attempt_at), "cseq", std::to_string(s.cseq),
            "nonce_count", std::to_string(s.nonce_count), "updated_at",
            std::to_string(s.updated_at)};
  }
  return {"state",
          std::string(toString(s.state)),
          "failures",
          std::to_string(s.failures),
          "auth_rejections",
          std::to_string(s.auth_rejections),
          "temporary_failures",
          std::to_string(s.temporary_failures),
          "first_failure_at",
          std::to_string(s.first_failure_at),
          "last_code",
          std::to_string(s.last.code),
          "last_reason",
          s.last.reason,
          "last_local",
          s.last.local ? "1" : "0",
          "expires_at",
          std::to_string(s.expires_at),
          "next_attempt_at",
          std::to_string(s.next_attempt_at),
          "granted_expires",
          std::to_string(s.granted_expires),
          "cseq",
          std::to_string(s.cseq),
          "call_id",
          s.call_id,
          "contact",
          s.contact,
          "owner",
          owner,
          "challenge",
          s.challenge,
          "nonce_count",
          std::to_string(s.nonce_count),
          "updated_at",
          std::to_string(s.updated_at),
          // What the PBX holds: the next owner removes it if it is not its own.
          "registered_contact",
          s.registered_contact};
}

long long toInt(const BindingFields& f, const char* name, long long fallback = 0) {
  auto it = f.find(name);
  if (it == f.end()) return fallback;
  try {
    return std::stoll(it->second);
  } catch (const std::logic_error&) {
    return fallback;
  }
}

std::string field(const BindingFields& f, const char* name) {
  auto it = f.find(name);
  return it == f.end() ? std::string() : it->second;
}

BindingFields toFields(const redis::Reply& reply) {
  BindingFields fields;
  for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
    fields.emplace(std::string(reply.element(i).str()), std::string(reply.element(i + 1).str()));
  }
  return fields;
}

}  // namespace

std::string bindingRedisKey(const std::string& key) { return "sipwake:binding:{" + key + "}"; }
std::string traceRedisKey(const std::string& key) { return "sipwake:trace:{" + key + "}"; }

BindingStore::BindingStore(redis::Connection& connection, Millis failed_retention)
    : redis_(connection),
      failed_retention_(failed_retention),
      put_script_{kPutScript, {}},
      status_script_{kStatusScript, {}},
      failed_script_{kFailedScript, {}},
      erase_if_script_{kEraseIfScript, {}},
      expiring_script_{kExpiringScript, {}} {}

PutResult BindingStore::put(const NewBinding& b, Millis now) {
  std::vector<std::string> args{std::to_string(now), b.candidate_token, b.candidate_call_id,
                                b.contact_suffix};
  auto add = [&](const char* name, std::string value) {
    args.emplace_back(name);
    args.push_back(std::move(value));
  };
  add("tenant", b.tenant);
  add("id", b.id);
  add("aor", b.aor);
  add("registrar", b.registrar);
  add("destination", b.destination);
  add("request_uri", b.request_uri);
  add("transport", b.transport);
  add("expires", std::to_string(b.expires));
  add("username", b.username);
  add("credential", b.sealed_password);
  add("devices", b.devices_json);
  // No owner: the instance that owns the binding's shard writes it.
  redis::Reply reply = redis_.eval(put_script_, {bindingRedisKey(b.key)}, args);
  if (!reply.isArray() || reply.size() != 5) {
    throw redis::RedisUnavailable("unexpected reply to the PUT script: " + std::string(reply.str()));
  }
  redis_.command({"ZADD", kBindingIndexKey, std::to_string(now), b.key});
  PutResult result;
  result.created = reply.element(0).integer() == 1;
  result.generation = static_cast<std::uint64_t>(reply.element(1).integer());
  result.contact_token = std::string(reply.element(2).str());
  result.call_id = std::string(reply.element(3).str());
  result.cseq = static_cast<std::uint32_t>(reply.element(4).integer());
  return result;
}

std::optional<BindingFields> BindingStore::get(const std::string& key) {
  redis::Reply reply = redis_.command({"HGETALL", bindingRedisKey(key)});
  if (!reply.isArray() || reply.size() == 0) return std::nullopt;
  return toFields(reply);
}

bool BindingStore::erase(const std::string& key) {
  auto replies = redis_.pipeline(
      {{"DEL", bindingRedisKey(key)}, {"ZREM", kBindingIndexKey, key}, {"DEL", traceRedisKey(key)}});
  return replies[0].integer() == 1;
}

bool BindingStore::eraseIfGeneration(const std::string& key, std::uint64_t generation) {
  redis::Reply reply =
      redis_.eval(erase_if_script_, {bindingRedisKey(key)}, {std::to_string(generation)});
  if (reply.integer() != 1) return false;
  redis_.command({"ZREM", kBindingIndexKey, key});
  return true;
}

void BindingStore::writeStatuses(const std::vector<RegistrationStatus>& statuses,
                                 const std::string& owner) {
  if (statuses.empty()) return;
  // Load the script once so the pipeline can use EVALSHA.
  if (status_script_.sha1.empty()) redis_.loadScript(status_script_);
  std::vector<std::vector<std::string>> commands;
  commands.reserve(statuses.size());
  for (const auto& s : statuses) {
    std::vector<std::string> cmd{"EVALSHA", status_script_.sha1, "1", bindingRedisKey(s.key),
                                 std::to_string(s.generation)};
    auto fields = statusFields(s, owner);
    cmd.insert(cmd.end(), fields.begin(), fields.end());
    commands.push_back(std::move(cmd));
  }
  auto replies = redis_.pipeline(commands);
  for (const auto& r : replies) {
    if (r.isError() && r.str().rfind("NOSCRIPT", 0) == 0) {
      status_script_.sha1.clear();  // Redis restarted without its script cache: next flush reloads
      throw redis::RedisUnavailable("status script missing after a Redis restart");
    }
  }
}

void BindingStore::markFailed(const RegistrationStatus& status, FailureReason reason,
                              const std::string& owner) {
  std::vector<std::string> args{std::to_string(status.generation),
                                std::to_string(failed_retention_ / kSecond)};
  auto fields = statusFields(status, owner);
  args.insert(args.end(), fields.begin(), fields.end());
  args.emplace_back("failure_reason");
  args.emplace_back(toString(reason));
  redis::Reply reply = redis_.eval(failed_script_, {bindingRedisKey(status.key)}, args);
  if (!reply.isArray() || reply.size() != 3) return;  // superseded by a newer PUT
  redis_.command({"ZREM", kBindingIndexKey, status.key});
  std::string tenant(reply.element(0).str()), id(reply.element(1).str());
  auto devices = nlohmann::json::parse(reply.element(2).str(), nullptr, false);
  if (!devices.is_array()) return;
  std::vector<nlohmann::json> jobs;
  for (const auto& device : devices) {
    jobs.push_back({{"type", "binding_failed"}, {"tenant", tenant},
                    {"binding", id},            {"device", device},
                    {"reason", std::string(toString(reason))},
                    {"sent_at", status.updated_at}});
  }
  queuePushes(status.key, std::move(jobs), status.updated_at);
}

void BindingStore::queuePushes(const std::string& key, std::vector<nlohmann::json> jobs, Millis now) {
  if (jobs.empty()) return;
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> queued{"LPUSH", traceRedisKey(key)};
  for (auto& job : jobs) {
    if (trace_.enabled) {
      job["trace"] = {{"max", trace_.max_entries}, {"ttl", trace_.ttl / kSecond}};
      queued.push_back(pushQueuedTrace(job, now));
    }
    // No MAXLEN: a trim here could drop jobs not yet delivered; pushgw trims
    // what its group acknowledged.
    commands.push_back({"XADD", kPushStreamKey, "*", "job",
                        job.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
  }
  if (trace_.enabled) {
    commands.push_back(std::move(queued));
    commands.push_back({"LTRIM", traceRedisKey(key), "0", std::to_string(trace_.max_entries - 1)});
    commands.push_back({"PEXPIRE", traceRedisKey(key), std::to_string(trace_.ttl)});
  }
  redis_.pipeline(commands);
}

int BindingStore::warnExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                               Millis expires_at, Millis now) {
  redis::Reply reply = redis_.eval(
      expiring_script_, {bindingRedisKey(key)},
      {std::to_string(generation), "expiry_warned_" + std::to_string(offset / kSecond)});
  if (!reply.isArray() || reply.size() != 3) return 0;  // sent before, or superseded by a PUT
  std::string tenant(reply.element(0).str()), id(reply.element(1).str());
  auto devices = nlohmann::json::parse(reply.element(2).str(), nullptr, false);
  if (!devices.is_array()) return 0;
  std::vector<nlohmann::json> jobs;
  for (const auto& device : devices) {
    // The push is useless once the binding is gone: expires_at is both the
    // payload's and the delivery deadline.
    jobs.push_back({{"type", "binding_expiring"}, {"tenant", tenant}, {"binding", id},
                    {"device", device},           {"sent_at", now},   {"expires_at", expires_at}});
  }
  int queued = static_cast<int>(jobs.size());
  queuePushes(key, std::move(jobs), now);
  return queued;
}

std::optional<std::vector<std::pair<std::string, std::string>>> BindingStore::queueTestPushes(
    const std::string& key, const TestPush& test, Millis now) {
  redis::Reply reply = redis_.command({"HMGET", bindingRedisKey(key), "tenant", "id", "devices"});
  if (!reply.isArray() || reply.size() != 3 || reply.element(2).isNil()) return std::nullopt;
  std::string tenant(reply.element(0).str()), id(reply.element(1).str());
  auto devices = nlohmann::json::parse(reply.element(2).str(), nullptr, false);
  std::vector<std::pair<std::string, std::string>> pushed;
  if (!devices.is_array()) return pushed;
  std::vector<nlohmann::json> jobs;
  for (const auto& device : devices) {
    if (!device.is_object()) continue;
    pushed.emplace_back(device.value("id", ""), device.value("provider", ""));
    jobs.push_back({{"type", "test"},         {"tenant", tenant},          {"binding", id},
                    {"device", device},       {"sent_at", now},            {"expires_at", test.expires_at},
                    {"test_id", test.test_id}, {"instance", test.instance}});
  }
  queuePushes(key, std::move(jobs), now);
  return pushed;
}

void BindingStore::appendTraces(const std::vector<std::pair<std::string, std::string>>& entries,
                                const TraceOptions& options) {
  if (entries.empty()) return;
  // One LPUSH per binding, in arrival order (the newest ends up first).
  std::map<std::string, std::vector<std::string>> by_key;
  for (const auto& [key, line] : entries) {
    auto& cmd = by_key[key];
    if (cmd.empty()) cmd = {"LPUSH", traceRedisKey(key)};
    cmd.push_back(line);
  }
  std::vector<std::vector<std::string>> commands;
  commands.reserve(by_key.size() * 3);
  for (auto& [key, push] : by_key) {
    commands.push_back(std::move(push));
    commands.push_back({"LTRIM", traceRedisKey(key), "0", std::to_string(options.max_entries - 1)});
    commands.push_back({"PEXPIRE", traceRedisKey(key), std::to_string(options.ttl)});
  }
  redis_.pipeline(commands);
}

std::vector<std::string> BindingStore::readTrace(const std::string& key, int limit) {
  redis::Reply reply =
      redis_.command({"LRANGE", traceRedisKey(key), "0", std::to_string(std::max(limit, 1) - 1)});
  std::vector<std::string> out;
  for (std::size_t i = reply.size(); i > 0; --i) out.emplace_back(reply.element(i - 1).str());
  return out;
}

std::optional<LoadedBinding> BindingStore::toLoaded(const BindingFields& f) {
  LoadedBinding b;
  auto state = registrationStateFromString(field(f, "state"));
  if (!state || *state == RegistrationState::Failed || *state == RegistrationState::Unregistered) {
    return std::nullopt;
  }
  RegistrationSpec& s = b.spec;
  s.key = field(f, "tenant") + "/" + field(f, "id");
  s.generation = static_cast<std::uint64_t>(toInt(f, "generation"));
  s.aor = field(f, "aor");
  s.request_uri = field(f, "request_uri");
  s.destination = field(f, "destination");
  std::string transport = field(f, "transport");
  s.transport = transport == "udp" ? SipTransport::Udp
                                   : (transport == "tls" ? SipTransport::Tls : SipTransport::Tcp);
  s.auth_username = field(f, "username");
  s.sealed_password = field(f, "credential");
  s.contact_user = field(f, "contact_token");
  s.call_id = field(f, "call_id");
  // CSeq is persisted after each answer; a crash may lose the last few, so
  // jump ahead: the PBX must never see a CSeq go back on this Call-ID.
  s.cseq = static_cast<std::uint32_t>(toInt(f, "cseq")) + 64;
  s.expires = static_cast<std::uint32_t>(toInt(f, "expires", 600));
  s.put_at = toInt(f, "put_at");
  if (s.key == "/" || s.sealed_password.empty() || s.contact_user.empty() || s.call_id.empty() ||
      s.destination.empty()) {
    return std::nullopt;
  }
  b.resume.state = *state;
  b.resume.auth_rejections = static_cast<int>(toInt(f, "auth_rejections"));
  b.resume.temporary_failures = static_cast<int>(toInt(f, "temporary_failures"));
  b.resume.first_failure_at = toInt(f, "first_failure_at");
  b.resume.expires_at = toInt(f, "expires_at");
  b.resume.challenge = field(f, "challenge");
  b.resume.nonce_count = static_cast<std::uint32_t>(toInt(f, "nonce_count"));
  b.resume.previous_contact = field(f, "registered_contact");
  return b;
}

void BindingStore::loadAll(const std::function<void(std::vector<LoadedBinding>&&)>& sink,
                           std::size_t batch_size,
                           const std::function<bool(const std::string& key)>& wanted) {
  redis::Reply keys = redis_.command({"ZRANGE", kBindingIndexKey, "0", "-1"});
  std::vector<std::string> all;
  all.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::string key(keys.element(i).str());
    if (!wanted || wanted(key)) all.push_back(std::move(key));
  }
  for (std::size_t start = 0; start < all.size(); start += batch_size) {
    std::size_t end = std::min(all.size(), start + batch_size);
    std::vector<std::vector<std::string>> commands;
    for (std::size_t i = start; i < end; ++i) commands.push_back({"HGETALL", bindingRedisKey(all[i])});
    auto replies = redis_.pipeline(commands);
    std::vector<LoadedBinding> batch;
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].size() == 0) {
        redis_.command({"ZREM", kBindingIndexKey, all[start + i]});  // its record expired
        continue;
      }
      if (auto loaded = toLoaded(toFields(replies[i]))) batch.push_back(std::move(*loaded));
    }
    if (!batch.empty()) sink(std::move(batch));
  }
}

std::optional<LoadedBinding> BindingStore::loadOne(const std::string& key) {
  auto fields = get(key);
  if (!fields) return std::nullopt;
  return toLoaded(*fields);
}

std::size_t BindingStore::countRegisteredVia(const std::vector<std::string>& keys,
                                             const std::vector<std::string>& hostports) {
  std::size_t count = 0;
  constexpr std::size_t kBatch = 500;
  for (std::size_t start = 0; start < keys.size(); start += kBatch) {
    std::vector<std::vector<std::string>> commands;
    for (std::size_t i = start; i < std::min(keys.size(), start + kBatch); ++i) {
      commands.push_back({"HGET", bindingRedisKey(keys[i]), "registered_contact"});
    }
    for (const auto& reply : redis_.pipeline(commands)) {
      std::string_view contact = reply.isString() ? reply.str() : std::string_view();
      auto at = contact.find('@');
      if (at == std::string_view::npos) continue;
      std::string_view hostport = contact.substr(at + 1, contact.find(';', at) - at - 1);
      for (const auto& ours : hostports) {
        if (!ours.empty() && hostport == ours) ++count;
      }
    }
  }
  return count;
}

bool BindingStore::ping() {
  redis::Reply reply = redis_.command({"PING"});
  return reply.str() == "PONG";
}

}  // namespace sipwake::registrar
