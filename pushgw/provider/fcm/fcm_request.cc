#include "pushgw/provider/fcm/fcm_request.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "pushgw/provider/payload_fit.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

std::optional<http2::Request> fail(std::string* error, std::string reason) {
  if (error != nullptr) *error = std::move(reason);
  return std::nullopt;
}

bool reservedDataKey(const std::string& key) {
  return key == "from" || key == "message_type" || key.rfind("google", 0) == 0 ||
         key.rfind("gcm", 0) == 0;
}

bool validProjectId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':';
  });
}

// FCM data values are strings.
std::string dataValue(const Json& value) {
  if (value.is_string()) return validUtf8(value.get_ref<const std::string&>());
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return dumpPayload(value);  // numbers as written, objects and arrays as compact JSON
}

std::size_t dataSize(const Json& data) {
  std::size_t size = 0;
  for (const auto& [key, value] : data.items()) {
    size += key.size() + value.get_ref<const std::string&>().size();
  }
  return size;
}

std::string ttl(Millis expires_at, Millis now) {
  if (expires_at <= 0 || expires_at <= now) return "0s";
  Millis seconds = (std::min(expires_at - now, kFcmMaxTtl) + kSecond - 1) / kSecond;  // round up
  return std::to_string(seconds) + "s";
}

}  // namespace

std::optional<http2::Request> buildFcmRequest(const PushMessage& m, const std::string& project_id,
                                              const std::string& access_token, Millis now,
                                              std::string* error) {
  if (m.token.empty() || m.token.size() > 4096)
    return fail(error, "FCM push without a valid token");
  if (!validProjectId(project_id))
    return fail(error, "FCM project id '" + project_id + "' is not valid");
  if (access_token.empty()) return fail(error, "FCM push without an access token");
  if (!m.payload.is_object() && !m.payload.is_null()) {
    return fail(error, "FCM payload is not a JSON object");
  }

  Json data = Json::object();
  if (m.payload.is_object()) {
    for (const auto& [key, value] : m.payload.items()) {
      if (value.is_null()) continue;
      std::string name = key == "from" ? kFcmFromKey : validUtf8(key);
      if (reservedDataKey(name)) return fail(error, "FCM reserves the data key '" + name + "'");
      data[name] = dataValue(value);
    }
  }
  if (fitBody(data, kFcmDataLimit, dataSize) == FitResult::TooLarge) {
    return fail(error, "FCM data exceeds " + std::to_string(kFcmDataLimit) + " bytes");
  }

  Json message = {
      {"token", m.token},
      {"data", std::move(data)},
      {"android", {{"priority", m.urgent ? "high" : "normal"}, {"ttl", ttl(m.expires_at, now)}}},
  };
  http2::Request request;
  request.method = "POST";
  request.path = "/v1/projects/" + project_id + "/messages:send";
  request.headers = {{"authorization", "Bearer " + access_token},
                     {"content-type", "application/json"}};
  request.body = dumpPayload(Json::object({{"message", std::move(message)}}));
  return request;
}

}  // namespace sipwake::pushgw
