#include "pushgw/provider/apns/apns_response.h"

#include <nlohmann/json.hpp>

#include "pushgw/provider/retry_after.h"

namespace sipwake::pushgw {
namespace {

// Reasons feed logs and metric labels: keep them short and plain whatever the
// server (or a mock) sends.
std::string sanitizeReason(const std::string& reason) {
  std::string out;
  for (char c : reason) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (ok) out += c;
    if (out.size() == 64) break;
  }
  return out;
}

// The "reason" of the JSON body, as sent; empty when absent.
std::string reasonOf(const http2::Response& r) {
  auto body = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return {};
  auto it = body.find("reason");
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ClassifiedResponse make(PushOutcome outcome, const std::string& reason, int status = 0) {
  ClassifiedResponse c;
  c.outcome = outcome;
  c.reason = sanitizeReason(reason);
  if (c.reason.empty()) c.reason = "http_" + std::to_string(status);
  return c;
}

}  // namespace

ClassifiedResponse classifyApnsResponse(const http2::Response& r) {
  if (r.status == 0) {
    return make(PushOutcome::RetryLater, r.retry_safe ? "not_processed" : "no_response");
  }
  if (r.status == 200) return make(PushOutcome::Delivered, "ok");

  const std::string reason = reasonOf(r);
  const int status = r.status;
  switch (status) {
    case 410:  // the token is no longer active for the topic
      return make(PushOutcome::InvalidToken, reason, status);
    case 400:
      if (reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic") {
        return make(PushOutcome::InvalidToken, reason, status);
      }
      return make(PushOutcome::PermanentError, reason, status);
    case 403:
      if (reason == "ExpiredProviderToken" || reason == "InvalidProviderToken") {
        return make(PushOutcome::RefreshCredentials, reason, status);
      }
      return make(PushOutcome::PermanentError, reason, status);
    default:
      break;
  }
  if (status == 429 || (status >= 500 && status <= 599)) {
    auto c = make(PushOutcome::RetryLater, reason, status);
    c.retry_after = retryAfter(r);
    return c;
  }
  return make(PushOutcome::PermanentError, reason, status);  // 404 BadPath, 405, 413, ...
}

}  // namespace sipwake::pushgw
