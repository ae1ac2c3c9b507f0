#include "pushgw/queue/push_job.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace sipwake::pushgw {
namespace {

using nlohmann::json;

constexpr Millis kCallTtl = 30 * kSecond;  // a call push is useless soon after

bool text(const json& j, const char* key, std::string& out, bool required, std::string& error,
          std::size_t max = 4096) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) error = std::string("missing '") + key + "'";
    return !required;
  }
  if (!it->is_string() || it->get_ref<const std::string&>().size() > max) {
    error = std::string("'") + key + "' must be a string of at most " + std::to_string(max) + " bytes";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool number(const json& j, const char* key, Millis& out, std::string& error) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number_integer()) {
    error = std::string("'") + key + "' must be an integer";
    return false;
  }
  out = it->get<Millis>();
  return true;
}

}  // namespace

std::optional<PushJob> parsePushJob(std::string_view text_json, std::string& error) {
  json j = json::parse(text_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  PushJob job;
  static const std::set<std::string> kTypes = {"call",           "call_cancelled", "message",
                                               "binding_failed", "binding_expiring", "test"};
  if (!text(j, "type", job.type, true, error, 32)) return std::nullopt;
  if (!kTypes.count(job.type)) {
    error = "unknown type '" + job.type.substr(0, 32) + "'";
    return std::nullopt;
  }
  if (!text(j, "tenant", job.tenant, true, error, 64) ||
      !text(j, "binding", job.binding, true, error, 128) ||
      !text(j, "call_id", job.call_id, job.type == "call" || job.type == "call_cancelled", error, 256) ||
      !text(j, "from", job.from, false, error, 512) ||
      !text(j, "from_name", job.from_name, false, error, 256) ||
      !text(j, "to", job.to, false, error, 512) || !text(j, "body", job.body, false, error, 4096) ||
      !text(j, "relay", job.relay, false, error, 512) ||
      !text(j, "reason", job.reason, false, error, 64) ||
      !text(j, "instance", job.instance, false, error, 256) ||
      !text(j, "test_id", job.test_id, false, error, 64) ||
      !number(j, "sent_at", job.sent_at, error) ||
      !number(j, "received_at", job.received_at, error) ||
      !number(j, "expires_at", job.expires_at, error)) {
    return std::nullopt;
  }
  if (auto it = j.find("answered_elsewhere"); it != j.end() && it->is_boolean()) {
    job.answered_elsewhere = it->get<bool>();
  }
  if (auto trace = j.find("trace"); trace != j.end() && trace->is_object()) {
    job.trace_max = std::clamp(trace->value("max", 0), 0, 10000);
    job.trace_ttl = std::clamp<Millis>(trace->value("ttl", Millis{0}), 0, 365 * 86400) * kSecond;
  }
  auto device = j.find("device");
  if (device == j.end() || !device->is_object()) {
    error = "missing 'device'";
    return std::nullopt;
  }
  if (!text(*device, "id", job.device_id, true, error, 64) ||
      !text(*device, "provider", job.provider, true, error, 8) ||
      !text(*device, "token", job.token, true, error, 4096) ||
      !text(*device, "app", job.app, true, error, 255) ||
      !text(*device, "environment", job.environment, false, error, 16) ||
      !text(*device, "push_type", job.push_type, false, error, 16)) {
    error = "device: " + error;
    return std::nullopt;
  }
  if (job.provider != "apns" && job.provider != "fcm") {
    error = "device: unknown provider";
    return std::nullopt;
  }
  if (job.token.empty()) {
    error = "device: empty token";
    return std::nullopt;
  }
  return job;
}

PushMessage toPushMessage(const PushJob& job, Millis now) {
  PushMessage m;
  m.provider = job.provider;
  m.token = job.token;
  m.app = job.app;
  m.environment = job.environment.empty() ? "production" : job.environment;
  m.push_type = job.push_type.empty() ? "voip" : job.push_type;
  // A VoIP push must report a call to CallKit or iOS kills the app: what is
  // not a call goes as an alert.
  if (job.type == "test" || job.type == "binding_expiring") m.push_type = "alert";
  m.collapse_id = job.call_id;
  m.urgent = job.type == "call" || job.type == "call_cancelled" || job.type == "message" ||
             job.type == "test";
  if (job.isCall()) {
    m.expires_at = job.expires_at ? std::min(job.expires_at, now + kCallTtl) : now + kCallTtl;
  } else {
    m.expires_at = job.expires_at;
  }
  json payload = {{"type", job.type}, {"binding", job.binding}, {"sent_at", job.sent_at ? job.sent_at : now}};
  if (!job.call_id.empty()) payload["call_id"] = job.call_id;
  if (!job.from.empty()) payload["from"] = job.from;
  if (!job.from_name.empty()) payload["from_name"] = job.from_name;
  if (!job.to.empty()) payload["to"] = job.to;
  if (job.type == "message") payload["body"] = job.body;
  if (!job.relay.empty()) payload["relay"] = job.relay;
  if (job.type == "call_cancelled") payload["answered_elsewhere"] = job.answered_elsewhere;
  if (job.type == "binding_failed" && !job.reason.empty()) payload["reason"] = job.reason;
  if (job.type == "binding_expiring" && job.expires_at != 0) payload["expires_at"] = job.expires_at;
  m.payload = std::move(payload);
  return m;
}

}  // namespace sipwake::pushgw
