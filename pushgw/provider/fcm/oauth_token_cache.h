#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/crypto/jwt.h"
#include "common/event/clock.h"
#include "common/http2/http2_message.h"
#include "pushgw/provider/fcm/fcm_service_account.h"

namespace sipwake::pushgw {

// The OAuth2 access token FCM HTTP v1 wants, obtained with the JWT bearer
// grant (RFC 7523) signed by the service account's RSA key, and cached.
//
// Life of a token (Google's last an hour):
//   needsRefresh() turns true 10 minutes before expiry: the caller sends
//   tokenRequest() and hands the answer to acceptTokenResponse(); meanwhile
//   accessToken() keeps returning the old token until 5 minutes before its
//   expiry. For short-lived tokens (mock servers) the margins shrink to a half
//   and a quarter of the lifetime.
//   A request in flight (up to 30 s) is not duplicated; failed answers are
//   retried after 1 s, doubling up to 60 s, so a broken key does not hammer
//   the token endpoint.
//   invalidate() after FCM answers 401 drops the token at once.
//
// Not thread-safe: owned by the loop that talks to FCM for this account.
class OAuthTokenCache {
 public:
  static constexpr const char* kScope = "https://www.googleapis.com/auth/firebase.messaging";
  static constexpr Millis kAssertionLifetime = kHour;
  static constexpr Millis kUsableMargin = 5 * kMinute;
  static constexpr Millis kRefreshAhead = 10 * kMinute;
  static constexpr Millis kRequestTimeout = 30 * kSecond;
  static constexpr Millis kMinRetryDelay = kSecond;
  static constexpr Millis kMaxRetryDelay = kMinute;
  static constexpr Millis kMaxTokenLifetime = kDay;

  // Throws std::invalid_argument unless `key` is an RSA key of 2048 bits or more.
  OAuthTokenCache(std::string client_email, std::string token_uri, crypto::EvpKey key,
                  std::string key_id = {});
  explicit OAuthTokenCache(const FcmServiceAccount& account);

  // The signed assertion: iss = client_email, scope, aud = token_uri, iat,
  // exp = iat + 3600.
  std::string assertion(Millis now) const;
  // POST <token_path>, form-encoded grant_type + assertion. Marks a request in
  // flight.
  http2::Request tokenRequest(Millis now, const std::string& token_path);
  // Takes the token endpoint's answer {access_token, expires_in, token_type}.
  // false (see lastError()) when there is no usable token in it; the previous
  // token, if any, is kept.
  bool acceptTokenResponse(const http2::Response& r, Millis now);

  // The cached token while it has more than 5 minutes left.
  std::optional<std::string> accessToken(Millis now) const;
  // Whether to send tokenRequest() now.
  bool needsRefresh(Millis now) const;
  // After a 401. `rejected_token`, when given, is the token the rejected
  // request carried: a late 401 for an older token keeps the new one.
  // Returns whether the cached token was dropped.
  bool invalidate(std::string_view rejected_token = {});

  Millis expiresAt() const { return expires_at_; }  // 0 when there is no token
  // After a failed request, no new one before this (1 s, doubling to 60 s).
  Millis retryAt() const { return retry_at_; }
  const std::string& lastError() const { return last_error_; }
  int consecutiveFailures() const { return failures_; }

 private:
  Millis usableMargin() const;
  Millis refreshAhead() const;
  void fail(Millis now, std::string error);

  std::string client_email_;
  std::string token_uri_;
  crypto::EvpKey key_;
  std::string key_id_;

  std::string access_token_;
  Millis lifetime_ = 0;
  Millis expires_at_ = 0;
  std::optional<Millis> pending_since_;
  Millis retry_at_ = 0;
  int failures_ = 0;
  std::string last_error_;
};

}  // namespace sipwake::pushgw
