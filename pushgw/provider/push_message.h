#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"

namespace sipwake::pushgw {

// A push to one device, provider-independent. Built from a push job by the
// dispatcher; each provider turns it into its HTTP/2 request.
struct PushMessage {
  std::string provider;     // "apns" | "fcm"
  std::string token;        // device token
  std::string app;          // APNs bundle id / FCM project id
  std::string environment;  // APNs: production | sandbox
  std::string push_type;    // APNs: voip | alert
  // The contract's payload object (PRODUCT.md "Pushes"): type, binding,
  // call_id, from, from_name, to, sent_at, and body for messages.
  nlohmann::json payload;
  std::string collapse_id;  // the call id, when there is one
  Millis expires_at = 0;    // after this the push is useless (apns-expiration, FCM ttl)
  bool urgent = true;       // calls: priority 10 / high
};

// How a provider's answer is acted on: decided once, at the edge.
enum class PushOutcome {
  Delivered,           // the provider accepted it
  InvalidToken,        // the token is gone: remove it from its binding
  RetryLater,          // 429, 5xx, refused stream, connection trouble
  RefreshCredentials,  // our provider credential was rejected: refresh once and resend
  PermanentError,      // our bug or config (bad request, bad topic): do not retry
};

struct ClassifiedResponse {
  PushOutcome outcome = PushOutcome::PermanentError;
  std::optional<Millis> retry_after;  // from Retry-After, when given
  std::string reason;                 // the provider's reason (e.g. "BadDeviceToken"), for logs and metrics
  int status = 0;                     // the provider's HTTP status; 0: no answer (or no HTTP)
};

const char* toString(PushOutcome outcome);

}  // namespace sipwake::pushgw
