#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/secret.h"
#include "registrar/binding/sip_uri.h"

namespace sipwake::registrar {

// A push destination of a binding.
struct Device {
  std::string id;
  std::string provider;     // apns | fcm
  std::string token;
  std::string app;          // APNs bundle id or FCM project id
  std::string environment;  // APNs: production | sandbox
  std::string push_type;    // APNs: voip | alert
};

// A validated PUT /v1/bindings/{id} body.
struct BindingRequest {
  std::string aor_text;
  SipUri aor;
  std::string username;
  crypto::Secret password;
  std::optional<std::string> registrar_text;
  SipUri target;  // the registrar URI, or sip:<aor host> when not given
  SipTransport transport = SipTransport::Tcp;
  std::uint32_t expires = 600;
  std::vector<Device> devices;
};

struct ValidationError {
  std::string code;     // snake_case, for clients
  std::string message;  // for people; never echoes a secret
};

struct ExpiresLimits {
  std::uint32_t min = 60;
  std::uint32_t max = 86400;
  std::uint32_t default_value = 600;
};

bool validBindingId(std::string_view id);
bool validTenantName(std::string_view tenant);

// Parses and validates a PUT body; on failure fills `error` and returns nullopt.
std::optional<BindingRequest> parseBindingRequest(std::string_view body,
                                                  const ExpiresLimits& limits,
                                                  ValidationError& error);

// The route and Request-URI for REGISTERs of this request.
std::string destinationOf(const BindingRequest& request);  // sip:host[:port];transport=x
std::string requestUriOf(const SipUri& aor);               // sip:<aor host[:port]>

}  // namespace sipwake::registrar
