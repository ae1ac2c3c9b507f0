#include "pushgw/provider/fcm/fcm_response.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pushgw/provider/retry_after.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

// What we read from a google.rpc.Status error body.
struct FcmError {
  std::string status;  // INVALID_ARGUMENT, NOT_FOUND, ...
  std::string message;
  std::string error_code;                    // from the google.firebase.fcm.v1.FcmError detail
  std::vector<std::string> violated_fields;  // from google.rpc.BadRequest details
};

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string stringAt(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

FcmError parseError(const std::string& body) {
  FcmError e;
  auto doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return e;
  auto error = doc.find("error");
  if (error == doc.end() || !error->is_object()) return e;
  e.status = stringAt(*error, "status");
  e.message = stringAt(*error, "message");
  auto details = error->find("details");
  if (details == error->end() || !details->is_array()) return e;
  for (const auto& detail : *details) {
    if (!detail.is_object()) continue;
    std::string type = stringAt(detail, "@type");
    if (endsWith(type, "google.firebase.fcm.v1.FcmError")) {
      e.error_code = stringAt(detail, "errorCode");
    } else if (endsWith(type, "google.rpc.BadRequest")) {
      auto violations = detail.find("fieldViolations");
      if (violations == detail.end() || !violations->is_array()) continue;
      for (const auto& v : *violations) {
        if (v.is_object()) e.violated_fields.push_back(stringAt(v, "field"));
      }
    }
  }
  return e;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// An INVALID_ARGUMENT about the token itself, as opposed to the rest of our
// message (PITFALLS: other 400s are our bug; the token must stay).
bool namesToken(const FcmError& e) {
  for (const auto& field : e.violated_fields) {
    if (field == "message.token") return true;
  }
  std::string text = lower(e.message);
  return text.find("registration token") != std::string::npos ||
         text.find("message.token") != std::string::npos;
}

std::string plain(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') out += c;
    if (out.size() == 64) break;
  }
  return out;
}

ClassifiedResponse make(PushOutcome outcome, std::string reason) {
  ClassifiedResponse c;
  c.outcome = outcome;
  c.reason = std::move(reason);
  return c;
}

}  // namespace

ClassifiedResponse classifyFcmResponse(const http2::Response& r) {
  if (r.status == 0) {
    return make(PushOutcome::RetryLater, r.retry_safe ? "not_processed" : "no_response");
  }
  if (r.status == 200) return make(PushOutcome::Delivered, "ok");

  FcmError e = parseError(r.body);
  std::string reason = plain(!e.error_code.empty() ? e.error_code : e.status);
  if (reason.empty()) reason = "http_" + std::to_string(r.status);
  bool unregistered = e.error_code == "UNREGISTERED" || e.status == "UNREGISTERED";

  switch (r.status) {
    case 404:
      return make(unregistered ? PushOutcome::InvalidToken : PushOutcome::PermanentError, reason);
    case 400: {
      bool invalid_argument = e.status == "INVALID_ARGUMENT" || e.error_code == "INVALID_ARGUMENT";
      bool token_gone = unregistered || (invalid_argument && namesToken(e));
      return make(token_gone ? PushOutcome::InvalidToken : PushOutcome::PermanentError, reason);
    }
    case 401:
      // THIRD_PARTY_AUTH_ERROR: FCM's own credentials toward APNs or web push
      // were refused; a new OAuth2 token of ours would not help.
      if (e.error_code == "THIRD_PARTY_AUTH_ERROR")
        return make(PushOutcome::PermanentError, reason);
      return make(PushOutcome::RefreshCredentials, reason);
    case 403:
      return make(e.error_code == "SENDER_ID_MISMATCH" ? PushOutcome::InvalidToken
                                                       : PushOutcome::PermanentError,
                  reason);
    default:
      break;
  }
  if (r.status == 429 || (r.status >= 500 && r.status <= 599)) {
    auto c = make(PushOutcome::RetryLater, reason);
    c.retry_after = retryAfter(r);
    return c;
  }
  return make(PushOutcome::PermanentError, reason);
}

}  // namespace sipwake::pushgw
