#include "pushgw/provider/fcm/oauth_token_cache.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/crypto/hash.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

// "urn:ietf:params:oauth:grant-type:jwt-bearer", form-encoded (RFC 7523 section 2.1).
constexpr const char* kGrantType = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
constexpr std::size_t kMaxErrorText = 200;

// A bearer token goes into a header: visible ASCII only.
bool plausibleToken(const std::string& token) {
  if (token.empty() || token.size() > 4096) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<Millis> expiresIn(const Json& doc) {
  auto it = doc.find("expires_in");
  if (it == doc.end()) return std::nullopt;
  long long seconds = 0;
  if (it->is_number_integer()) {
    seconds = it->get<long long>();
  } else if (it->is_string()) {  // some servers quote it
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty() || s.size() > 9 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    seconds = std::stoll(s);
  } else {
    return std::nullopt;
  }
  if (seconds <= 0) return std::nullopt;
  // Capped before the multiplication: a huge expires_in must not overflow.
  return std::min<Millis>(seconds, OAuthTokenCache::kMaxTokenLifetime / kSecond) * kSecond;
}

// Google's error answer: {"error": "invalid_grant", "error_description": "..."}.
std::string describeError(const http2::Response& r) {
  std::string text = "token endpoint answered " + std::to_string(r.status);
  auto doc = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    for (const char* field : {"error", "error_description"}) {
      auto it = doc.find(field);
      if (it != doc.end() && it->is_string()) text += " " + it->get<std::string>();
    }
  }
  return text.substr(0, kMaxErrorText);
}

}  // namespace

OAuthTokenCache::OAuthTokenCache(std::string client_email, std::string token_uri,
                                 crypto::EvpKey key, std::string key_id)
    : client_email_(std::move(client_email)),
      token_uri_(std::move(token_uri)),
      key_(std::move(key)),
      key_id_(std::move(key_id)) {
  if (!crypto::isRsaKey(key_.get())) {
    throw std::invalid_argument("OAuth2 assertions need an RSA key of at least 2048 bits");
  }
  if (client_email_.empty() || token_uri_.empty()) {
    throw std::invalid_argument("OAuth2 assertions need a client e-mail and a token URI");
  }
}

OAuthTokenCache::OAuthTokenCache(const FcmServiceAccount& account)
    : OAuthTokenCache(account.client_email, account.token_uri, account.key,
                      account.private_key_id) {}

std::string OAuthTokenCache::assertion(Millis now) const {
  Json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key_id_.empty()) header["kid"] = key_id_;
  Millis iat = now / kSecond;
  Json claims = {{"iss", client_email_},
                 {"scope", kScope},
                 {"aud", token_uri_},
                 {"iat", iat},
                 {"exp", iat + kAssertionLifetime / kSecond}};
  return crypto::signJwtRs256(header, claims, key_.get());
}

http2::Request OAuthTokenCache::tokenRequest(Millis now, const std::string& token_path) {
  http2::Request request;
  request.method = "POST";
  request.path = token_path.empty() ? "/" : token_path;
  request.headers = {{"content-type", "application/x-www-form-urlencoded"},
                     {"accept", "application/json"}};
  // A JWT is base64url and dots only: nothing to escape in a form body.
  request.body = std::string("grant_type=") + kGrantType + "&assertion=" + assertion(now);
  pending_since_ = now;
  return request;
}

bool OAuthTokenCache::acceptTokenResponse(const http2::Response& r, Millis now) {
  pending_since_.reset();
  if (r.status == 0) {
    fail(now, ("token endpoint unreachable: " + r.error).substr(0, kMaxErrorText));
    return false;
  }
  if (r.status != 200) {
    fail(now, describeError(r));
    return false;
  }
  auto doc = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    fail(now, "token endpoint answer is not a JSON object");
    return false;
  }
  auto token = doc.find("access_token");
  auto type = doc.find("token_type");
  auto lifetime = expiresIn(doc);
  if (token == doc.end() || !token->is_string() || !plausibleToken(token->get<std::string>())) {
    fail(now, "token endpoint answer has no usable access_token");
    return false;
  }
  if (type == doc.end() || !type->is_string() ||
      !equalsIgnoreCase(type->get<std::string>(), "Bearer")) {
    fail(now, "token endpoint answer is not a Bearer token");
    return false;
  }
  if (!lifetime) {
    fail(now, "token endpoint answer has no positive expires_in");
    return false;
  }
  crypto::wipe(access_token_);
  access_token_ = token->get<std::string>();
  lifetime_ = *lifetime;
  expires_at_ = now + *lifetime;
  failures_ = 0;
  retry_at_ = 0;
  last_error_.clear();
  return true;
}

std::optional<std::string> OAuthTokenCache::accessToken(Millis now) const {
  if (access_token_.empty() || expires_at_ - now <= usableMargin()) return std::nullopt;
  return access_token_;
}

bool OAuthTokenCache::needsRefresh(Millis now) const {
  if (pending_since_ && now - *pending_since_ < kRequestTimeout && now >= *pending_since_) {
    return false;
  }
  if (now < retry_at_) return false;
  return access_token_.empty() || expires_at_ - now <= refreshAhead();
}

bool OAuthTokenCache::invalidate(std::string_view rejected_token) {
  if (access_token_.empty()) return false;
  if (!rejected_token.empty() && rejected_token != access_token_) return false;
  crypto::wipe(access_token_);
  lifetime_ = 0;
  expires_at_ = 0;
  retry_at_ = 0;
  return true;
}

Millis OAuthTokenCache::usableMargin() const {
  return std::min(kUsableMargin, lifetime_ / 4);
}
Millis OAuthTokenCache::refreshAhead() const {
  return std::min(kRefreshAhead, lifetime_ / 2);
}

void OAuthTokenCache::fail(Millis now, std::string error) {
  ++failures_;
  Millis delay = kMinRetryDelay << std::min(failures_ - 1, 16);
  retry_at_ = now + std::min(delay, kMaxRetryDelay);
  last_error_ = std::move(error);
}

}  // namespace sipwake::pushgw
