#include "pushgw/provider/apns/apns_request.h"

#include <nlohmann/json.hpp>

#include "common/crypto/hash.h"
#include "common/util/encoding.h"
#include "pushgw/provider/payload_fit.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

// Display names come from SIP headers: keep the alert line short.
constexpr std::size_t kMaxNameInAlert = 64;

std::optional<http2::Request> fail(std::string* error, std::string reason) {
  if (error != nullptr) *error = std::move(reason);
  return std::nullopt;
}

std::string stringField(const Json& payload, const char* key) {
  auto it = payload.find(key);
  return it != payload.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Who the alert names: the display name, else the URI without its scheme.
std::string who(const Json& payload) {
  std::string name = stringField(payload, "from_name");
  if (name.empty()) {
    name = stringField(payload, "from");
    for (std::string_view scheme : {"sip:", "sips:", "tel:"}) {
      if (name.rfind(scheme, 0) == 0) {
        name.erase(0, scheme.size());
        break;
      }
    }
  }
  if (name.empty()) return "unknown caller";
  return std::string(utf8Prefix(name, kMaxNameInAlert));
}

// aps.alert {title, body} for pushes shown to the user (push_type alert).
Json alertFor(const Json& payload) {
  std::string type = stringField(payload, "type");
  Json alert = Json::object();
  if (type == "call") {
    alert["title"] = "Incoming call from " + who(payload);
  } else if (type == "call_cancelled") {
    auto elsewhere = payload.find("answered_elsewhere");
    bool answered = elsewhere != payload.end() && elsewhere->is_boolean() && elsewhere->get<bool>();
    alert["title"] = answered ? "Call from " + who(payload) + " answered elsewhere"
                              : "Missed call from " + who(payload);
  } else if (type == "message") {
    alert["title"] = "Message from " + who(payload);
    alert["body"] = stringField(payload, "body");
  } else if (type == "binding_failed") {
    alert["title"] = "Calls can no longer reach this device";
    alert["body"] = "Open the app to sign in again.";
  } else if (type == "binding_expiring") {
    alert["title"] = "Calls will soon stop reaching this device";
    alert["body"] = "Open the app to keep receiving calls.";
  } else if (type == "test") {
    alert["title"] = "Test notification";
    alert["body"] = "Pushes reach this device.";
  } else {
    alert["title"] = "New notification";
  }
  return alert;
}

// The request body: the contract's payload at the top level beside "aps".
Json compose(const Json& payload, bool voip) {
  Json doc = Json::object();
  for (const auto& [key, value] : payload.items()) {
    if (key != "aps") doc[key] = value;
  }
  Json aps = Json::object();  // VoIP pushes are handled by PushKit: nothing to display
  if (!voip) {
    aps["alert"] = alertFor(payload);
    if (stringField(payload, "type") == "call") aps["sound"] = "default";
  }
  doc["aps"] = std::move(aps);
  return doc;
}

bool isHex(const std::string& s) {
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!ok) return false;
  }
  return !s.empty();
}

std::string collapseId(const std::string& id) {
  bool plain = id.size() <= kApnsCollapseIdLimit;
  for (char c : id) {
    if (c < 0x20 || c > 0x7e) plain = false;  // keep header values printable ASCII
  }
  return plain ? id : hexEncode(crypto::sha256(id));
}

// Seconds since the epoch, rounded up so that a set expiry never becomes 0,
// which APNs reads as "deliver once, do not store".
std::string expiration(Millis expires_at) {
  if (expires_at <= 0) return "0";
  // Rounded up without adding first: a far-future job must not overflow.
  return std::to_string(expires_at / kSecond + (expires_at % kSecond != 0 ? 1 : 0));
}

}  // namespace

std::optional<http2::Request> buildApnsRequest(const PushMessage& m,
                                               const std::string& provider_token,
                                               std::string* error) {
  std::string push_type = m.push_type.empty() ? "voip" : m.push_type;
  if (push_type != "voip" && push_type != "alert") {
    return fail(error, "unknown APNs push type '" + push_type + "'");
  }
  bool voip = push_type == "voip";
  if (!isHex(m.token) || m.token.size() > 512) return fail(error, "APNs device token is not hex");
  if (m.app.empty()) return fail(error, "APNs push without an app (bundle id)");
  if (provider_token.empty()) return fail(error, "APNs push without a provider token");
  if (!m.payload.is_object() && !m.payload.is_null()) {
    return fail(error, "APNs payload is not a JSON object");
  }

  Json payload = m.payload.is_null() ? Json::object() : m.payload;
  std::size_t limit = voip ? kApnsVoipPayloadLimit : kApnsPayloadLimit;
  auto measure = [voip](const Json& p) { return dumpPayload(compose(p, voip)).size(); };
  if (fitBody(payload, limit, measure) == FitResult::TooLarge) {
    return fail(error, "APNs payload exceeds " + std::to_string(limit) + " bytes");
  }

  http2::Request request;
  request.method = "POST";
  request.path = "/3/device/" + m.token;
  request.headers = {
      {"authorization", "bearer " + provider_token},
      {"apns-topic", voip ? m.app + ".voip" : m.app},
      {"apns-push-type", push_type},
      {"apns-priority", m.urgent ? "10" : "5"},
      {"apns-expiration", expiration(m.expires_at)},
  };
  if (!m.collapse_id.empty())
    request.headers.emplace_back("apns-collapse-id", collapseId(m.collapse_id));
  request.headers.emplace_back("content-type", "application/json");
  request.body = dumpPayload(compose(payload, voip));
  return request;
}

}  // namespace sipwake::pushgw
