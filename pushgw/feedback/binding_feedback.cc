#include "pushgw/feedback/binding_feedback.h"

#include <nlohmann/json.hpp>

#include "common/log/logger.h"
#include "common/util/redact.h"
#include "common/util/time_format.h"

namespace sipwake::pushgw {
namespace {

std::string bindingKey(const PushJob& job) {
  return "sipwake:binding:{" + job.bindingKey() + "}";
}
std::string callKey(const PushJob& job) {
  return "sipwake:call:{" + job.bindingKey() + "}:" + job.call_id;
}
std::string outcomeChannel(const std::string& instance) {
  return "sipwake:push:outcomes:" + instance;
}

// Removes the device whose id AND token match (a re-PUT with a fresh token is
// left alone). Returns -1 when nothing matched, else the devices left, and the
// owning instance.
constexpr const char* kRemoveTokenScript = R"lua(
local raw = redis.call('HGET', KEYS[1], 'devices')
if not raw then return {-1, ''} end
local ok, devices = pcall(cjson.decode, raw)
if not ok then return {-1, ''} end
local kept, removed = {}, false
for _, d in ipairs(devices) do
  if d.id == ARGV[1] and d.token == ARGV[2] then removed = true else kept[#kept + 1] = d end
end
if not removed then return {-1, ''} end
if #kept == 0 then
  redis.call('HSET', KEYS[1], 'devices', '[]')
else
  redis.call('HSET', KEYS[1], 'devices', cjson.encode(kept))
end
return {#kept, redis.call('HGET', KEYS[1], 'owner') or ''}
)lua";

}  // namespace

void BindingFeedback::pushDelivered(const PushJob& job) {
  if (!job.isCall() || job.instance.empty()) return;
  nlohmann::json message = {{"kind", "push_delivered"}, {"tenant", job.tenant},
                            {"binding", job.binding},   {"call_id", job.call_id},
                            {"device", job.device_id}};
  std::string channel = outcomeChannel(job.instance), text = message.dump();
  worker_.submit([channel, text](redis::Connection& redis) {
    redis.command({"PUBLISH", channel, text});
  });
}

void BindingFeedback::removeToken(const PushJob& job, std::function<void(bool)> done) {
  worker_.submit([job, done = std::move(done)](redis::Connection& redis) {
    static redis::Script script{kRemoveTokenScript, {}};
    bool removed = false;
    try {
      redis::Reply r = redis.eval(script, {bindingKey(job)}, {job.device_id, job.token});
      long long left = r.element(0).integer();
      removed = r.isArray() && left >= 0;
      if (removed) {
        log::info("push token removed: the provider says it is gone",
                  {{"binding", job.bindingKey()}, {"device", job.device_id},
                   {"devices_left", std::to_string(left)}});
      }
      std::string owner(r.element(1).str());
      if (removed && left == 0) {
        if (owner.empty()) owner = job.instance;
        nlohmann::json message = {{"kind", "binding_orphaned"}, {"tenant", job.tenant},
                                  {"binding", job.binding}};
        redis.command({"PUBLISH", outcomeChannel(owner), message.dump()});
      }
    } catch (const std::exception& e) {
      log::error("cannot remove a dead push token", {{"binding", job.bindingKey()}, {"error", e.what()}});
    }
    done(removed);
  });
}

void BindingFeedback::traceAttempt(const PushJob& job, const Attempt& a) {
  if (job.trace_max <= 0) return;
  nlohmann::json e = {{"at", isoTime(a.at)},         {"kind", "push"},
                      {"event", "attempt"},          {"type", job.type},
                      {"device", job.device_id},     {"provider", a.provider},
                      {"token", shortenToken(job.token)}, {"attempt", a.attempt},
                      {"result", a.result},          {"reason", a.reason},
                      {"latency_ms", static_cast<long long>(a.latency_seconds * 1000.0 + 0.5)}};
  e["status"] = a.status != 0 ? nlohmann::json(a.status) : nlohmann::json(nullptr);
  if (!job.call_id.empty()) e["call_id"] = job.call_id;
  std::string key = "sipwake:trace:{" + job.bindingKey() + "}";
  std::string line = e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string max = std::to_string(job.trace_max - 1), ttl = std::to_string(job.trace_ttl);
  worker_.submit([key, line, max, ttl](redis::Connection& redis) {
    try {
      redis.pipeline({{"LPUSH", key, line}, {"LTRIM", key, "0", max}, {"PEXPIRE", key, ttl}});
    } catch (const std::exception&) {
      // A trace is a diagnostic: lost with Redis, nothing else depends on it.
    }
  });
}

void BindingFeedback::testResult(const PushJob& job, const Attempt& a, const std::string& result) {
  if (job.test_id.empty() || job.instance.empty()) return;
  nlohmann::json message = {{"kind", "test_push_result"}, {"tenant", job.tenant},
                            {"binding", job.binding},      {"test_id", job.test_id},
                            {"device", job.device_id},     {"provider", a.provider},
                            {"result", result},            {"reason", a.reason}};
  message["status"] = a.status != 0 ? nlohmann::json(a.status) : nlohmann::json(nullptr);
  std::string channel = outcomeChannel(job.instance), text = message.dump();
  worker_.submit([channel, text](redis::Connection& redis) {
    try {
      redis.command({"PUBLISH", channel, text});
    } catch (const std::exception& e) {
      log::warn("cannot report a test push's outcome", {{"error", e.what()}});
    }
  });
}

void BindingFeedback::callStillRinging(const PushJob& job, std::function<void(bool)> done) {
  worker_.submit([job, done = std::move(done)](redis::Connection& redis) {
    bool ringing = true;
    try {
      redis::Reply r = redis.command({"HGET", callKey(job), "state"});
      ringing = !(r.isString() && r.str() == "ended");
    } catch (const std::exception&) {
    }
    done(ringing);
  });
}

}  // namespace sipwake::pushgw
