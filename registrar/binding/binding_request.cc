#include "registrar/binding/binding_request.h"

#include <set>

#include <nlohmann/json.hpp>

namespace sipwake::registrar {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDevices = 10;

bool allOf(std::string_view s, std::size_t min, std::size_t max, bool (*ok)(char)) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s) {
    if (!ok(c)) return false;
  }
  return true;
}
bool idChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}
bool hexChar(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool fcmTokenChar(char c) { return idChar(c); }
bool appChar(char c) { return idChar(c) && c != ':'; }
bool printable(char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; }
bool tenantChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

class Validator {
 public:
  explicit Validator(ValidationError& error) : error_(error) {}

  bool fail(std::string code, std::string message) {
    error_ = {std::move(code), std::move(message)};
    return false;
  }

  bool onlyKeys(const json& obj, const std::string& where, std::set<std::string> allowed) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!allowed.count(it.key())) {
        return fail("unknown_field", "unknown field '" + where + it.key() + "'");
      }
    }
    return true;
  }

  bool string(const json& obj, const std::string& key, const std::string& where, bool required,
              std::string& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (required) return fail("missing_field", "'" + where + key + "' is required");
      return true;
    }
    if (!it->is_string()) return fail("invalid_field", "'" + where + key + "' must be a string");
    out = it->get<std::string>();
    return true;
  }

 private:
  ValidationError& error_;
};

bool parseDevice(const json& d, std::size_t index, Validator& v, Device& out) {
  std::string where = "devices[" + std::to_string(index) + "].";
  if (!d.is_object()) return v.fail("invalid_field", "'devices[" + std::to_string(index) + "]' must be an object");
  if (!v.onlyKeys(d, where, {"id", "provider", "token", "app", "environment", "push_type"})) return false;
  if (!v.string(d, "id", where, true, out.id) || !v.string(d, "provider", where, true, out.provider) ||
      !v.string(d, "token", where, true, out.token) || !v.string(d, "app", where, true, out.app) ||
      !v.string(d, "environment", where, false, out.environment) ||
      !v.string(d, "push_type", where, false, out.push_type)) {
    return false;
  }
  if (!allOf(out.id, 1, 64, idChar)) {
    return v.fail("invalid_field", "'" + where + "id' must be 1-64 of [A-Za-z0-9._:-]");
  }
  if (!allOf(out.app, 1, 255, appChar)) {
    return v.fail("invalid_field", "'" + where + "app' must be 1-255 of [A-Za-z0-9._-]");
  }
  if (out.provider == "apns") {
    if (!allOf(out.token, 16, 512, hexChar)) {
      return v.fail("invalid_field", "'" + where + "token' must be an APNs device token (hex)");
    }
    if (out.environment.empty()) out.environment = "production";
    if (out.environment != "production" && out.environment != "sandbox") {
      return v.fail("invalid_field", "'" + where + "environment' must be production or sandbox");
    }
    if (out.push_type.empty()) out.push_type = "voip";
    if (out.push_type != "voip" && out.push_type != "alert") {
      return v.fail("invalid_field", "'" + where + "push_type' must be voip or alert");
    }
  } else if (out.provider == "fcm") {
    if (!allOf(out.token, 1, 4096, fcmTokenChar)) {
      return v.fail("invalid_field", "'" + where + "token' must be an FCM registration token");
    }
    if (!out.environment.empty() || !out.push_type.empty()) {
      return v.fail("invalid_field", "'" + where + "environment' and 'push_type' are for APNs only");
    }
  } else {
    return v.fail("invalid_field", "'" + where + "provider' must be apns or fcm");
  }
  return true;
}

}  // namespace

bool validBindingId(std::string_view id) { return allOf(id, 1, 128, idChar); }
bool validTenantName(std::string_view tenant) { return allOf(tenant, 1, 64, tenantChar); }

std::optional<BindingRequest> parseBindingRequest(std::string_view body,
                                                  const ExpiresLimits& limits,
                                                  ValidationError& error) {
  Validator v(error);
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    v.fail("invalid_json", "the body is not valid JSON");
    return std::nullopt;
  }
  if (!doc.is_object()) {
    v.fail("invalid_json", "the body must be a JSON object");
    return std::nullopt;
  }
  if (!v.onlyKeys(doc, "", {"aor", "auth", "registrar", "expires", "devices"})) return std::nullopt;

  BindingRequest req;
  if (!v.string(doc, "aor", "", true, req.aor_text)) return std::nullopt;
  SipUriError uri_error;
  auto aor = parseSipUri(req.aor_text, &uri_error);
  if (!aor) {
    v.fail("invalid_field", "'aor' is not a valid SIP URI: " + uri_error.message);
    return std::nullopt;
  }
  if (aor->user.empty()) {
    v.fail("invalid_field", "'aor' must have a user part (sip:user@domain)");
    return std::nullopt;
  }
  req.aor = *aor;

  auto auth = doc.find("auth");
  if (auth == doc.end() || auth->is_null()) {
    v.fail("missing_field", "'auth' is required");
    return std::nullopt;
  }
  if (!auth->is_object()) {
    v.fail("invalid_field", "'auth' must be an object");
    return std::nullopt;
  }
  if (!v.onlyKeys(*auth, "auth.", {"username", "password"})) return std::nullopt;
  std::string password;
  if (!v.string(*auth, "username", "auth.", true, req.username) ||
      !v.string(*auth, "password", "auth.", true, password)) {
    return std::nullopt;
  }
  req.password = crypto::Secret(password);
  crypto::wipe(password);
  // The parsed document holds its own copy: wipe it too.
  crypto::wipe((*auth)["password"].get_ref<std::string&>());
  if (!allOf(req.username, 1, 128, printable)) {
    v.fail("invalid_field", "'auth.username' must be 1-128 printable characters");
    return std::nullopt;
  }
  if (!allOf(req.password.reveal(), 1, 256, printable)) {
    v.fail("invalid_field", "'auth.password' must be 1-256 printable characters");
    return std::nullopt;
  }

  std::string registrar;
  if (!v.string(doc, "registrar", "", false, registrar)) return std::nullopt;
  if (!registrar.empty()) {
    auto target = parseSipUri(registrar, &uri_error);
    if (!target) {
      v.fail("invalid_field", "'registrar' is not a valid SIP URI: " + uri_error.message);
      return std::nullopt;
    }
    req.registrar_text = registrar;
    req.target = *target;
  } else {
    req.target = req.aor;
    req.target.user.clear();
    req.target.params.erase(std::remove_if(req.target.params.begin(), req.target.params.end(),
                                           [](const auto& p) { return p.first != "transport"; }),
                            req.target.params.end());
  }
  req.transport = *req.target.transport(SipTransport::Tcp);

  auto expires = doc.find("expires");
  req.expires = limits.default_value;
  if (expires != doc.end() && !expires->is_null()) {
    if (!expires->is_number_integer() || expires->get<long long>() < limits.min ||
        expires->get<long long>() > limits.max) {
      v.fail("invalid_field", "'expires' must be an integer from " + std::to_string(limits.min) +
                                  " to " + std::to_string(limits.max));
      return std::nullopt;
    }
    req.expires = static_cast<std::uint32_t>(expires->get<long long>());
  }

  auto devices = doc.find("devices");
  if (devices == doc.end() || devices->is_null()) {
    v.fail("missing_field", "'devices' is required");
    return std::nullopt;
  }
  if (!devices->is_array() || devices->empty() || devices->size() > kMaxDevices) {
    v.fail("invalid_field", "'devices' must be an array of 1 to " + std::to_string(kMaxDevices) +
                                " devices");
    return std::nullopt;
  }
  std::set<std::string> ids;
  for (std::size_t i = 0; i < devices->size(); ++i) {
    Device d;
    if (!parseDevice((*devices)[i], i, v, d)) return std::nullopt;
    if (!ids.insert(d.id).second) {
      v.fail("invalid_field", "device id '" + d.id + "' appears twice");
      return std::nullopt;
    }
    req.devices.push_back(std::move(d));
  }
  return req;
}

std::string destinationOf(const BindingRequest& request) {
  std::string out = "sip:" + request.target.hostPort();
  return out + ";transport=" + std::string(toString(request.transport));
}

std::string requestUriOf(const SipUri& aor) { return "sip:" + aor.hostPort(); }

}  // namespace sipwake::registrar
