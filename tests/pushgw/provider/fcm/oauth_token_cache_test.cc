#include "pushgw/provider/fcm/oauth_token_cache.h"

#include <catch2/catch.hpp>

#include "tests/pushgw/provider/fcm/service_account_fixture.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using Json = nlohmann::json;

namespace {

constexpr Millis kStart = 1'700'000'000'000;
constexpr const char* kPrefix =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";

OAuthTokenCache makeCache() {
  return OAuthTokenCache(parseServiceAccount(
      sipwake::testing::serviceAccountJson(sipwake::testing::sharedRsaKeyPem()).dump()));
}

http2::Response tokenAnswer(const std::string& token, Json expires_in = 3599,
                            const std::string& type = "Bearer") {
  http2::Response r;
  r.status = 200;
  r.headers = {{"content-type", "application/json; charset=utf-8"}};
  r.body = Json{{"access_token", token}, {"expires_in", expires_in}, {"token_type", type}}.dump();
  return r;
}

http2::Response errorAnswer(int status, const std::string& body) {
  http2::Response r;
  r.status = status;
  r.body = body;
  return r;
}

}  // namespace

TEST_CASE("OAuth2 assertion: RS256, iss/scope/aud/iat/exp per Google's JWT bearer grant", "[fcm]") {
  OAuthTokenCache cache = makeCache();
  std::string jwt = cache.assertion(kStart + 999);
  Json claims;
  REQUIRE(crypto::verifyJwtRs256(jwt, sipwake::testing::sharedRsaKey().get(), &claims));
  CHECK(claims == Json{{"iss", "pushgw@example-project.iam.gserviceaccount.com"},
                       {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
                       {"aud", "https://oauth2.googleapis.com/token"},
                       {"iat", kStart / 1000},
                       {"exp", kStart / 1000 + 3600}});
  CHECK(crypto::decodeJwtHeader(jwt) == Json{{"alg", "RS256"},
                                             {"typ", "JWT"},
                                             {"kid", "0123456789abcdef0123456789abcdef01234567"}});
}

TEST_CASE("OAuth2 token request: a form-encoded POST to the token path", "[fcm]") {
  OAuthTokenCache cache = makeCache();
  http2::Request r = cache.tokenRequest(kStart, "/token");
  CHECK(r.method == "POST");
  CHECK(r.path == "/token");
  CHECK(r.headers ==
        std::vector<std::pair<std::string, std::string>>{
            {"content-type", "application/x-www-form-urlencoded"}, {"accept", "application/json"}});
  REQUIRE(r.body.rfind(kPrefix, 0) == 0);
  std::string assertion = r.body.substr(std::string(kPrefix).size());
  CHECK(assertion.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
        std::string::npos);
  Json claims;
  CHECK(crypto::verifyJwtRs256(assertion, sipwake::testing::sharedRsaKey().get(), &claims));
  CHECK(claims["iat"] == kStart / 1000);
}

TEST_CASE("OAuth2 token cache: cached, refreshed ahead of expiry, usable until 5 minutes before",
          "[fcm]") {
  OAuthTokenCache cache = makeCache();
  CHECK(cache.needsRefresh(kStart));
  CHECK_FALSE(cache.accessToken(kStart));

  cache.tokenRequest(kStart, "/token");
  CHECK_FALSE(cache.needsRefresh(kStart + 1));  // one request at a time
  CHECK_FALSE(cache.needsRefresh(kStart + 29 * kSecond));
  CHECK(cache.needsRefresh(kStart + 30 * kSecond));  // that one timed out

  Millis t = kStart + 200;
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.c.first"), t));
  Millis expiry = t + 3599 * kSecond;
  CHECK(cache.expiresAt() == expiry);
  CHECK(cache.accessToken(t) == "ya29.c.first");
  CHECK_FALSE(cache.needsRefresh(t));
  CHECK_FALSE(cache.needsRefresh(expiry - 10 * kMinute - 1));
  CHECK(cache.needsRefresh(expiry - 10 * kMinute));                   // time to refresh...
  CHECK(cache.accessToken(expiry - 10 * kMinute) == "ya29.c.first");  // ...while still using it
  CHECK(cache.accessToken(expiry - 5 * kMinute - 1) == "ya29.c.first");
  CHECK_FALSE(cache.accessToken(expiry - 5 * kMinute));
  CHECK_FALSE(cache.accessToken(expiry + kHour));

  cache.tokenRequest(expiry - 9 * kMinute, "/token");
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.c.second"), expiry - 9 * kMinute));
  CHECK(cache.accessToken(expiry - 5 * kMinute) == "ya29.c.second");
  CHECK_FALSE(cache.needsRefresh(expiry));
}

TEST_CASE("OAuth2 token cache: failures keep the old token and back off", "[fcm]") {
  OAuthTokenCache cache = makeCache();
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.old"), kStart));
  Millis t = cache.expiresAt() - 9 * kMinute;
  REQUIRE(cache.needsRefresh(t));

  cache.tokenRequest(t, "/token");
  CHECK_FALSE(cache.acceptTokenResponse(
      errorAnswer(400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})"),
      t));
  CHECK_THAT(cache.lastError(), Catch::Contains("400 invalid_grant Invalid JWT Signature."));
  CHECK(cache.accessToken(t) == "ya29.old");
  CHECK_FALSE(cache.needsRefresh(t + 999));
  CHECK(cache.needsRefresh(t + kSecond));

  http2::Response unreachable;
  unreachable.error = "connect: connection refused";
  CHECK_FALSE(cache.acceptTokenResponse(unreachable, t + kSecond));
  CHECK_THAT(cache.lastError(), Catch::Contains("connection refused"));
  CHECK(cache.consecutiveFailures() == 2);
  CHECK_FALSE(cache.needsRefresh(t + 3 * kSecond - 1));  // 2 s now
  CHECK(cache.needsRefresh(t + 3 * kSecond));
  for (int i = 0; i < 10; ++i) cache.acceptTokenResponse(unreachable, t + 3 * kSecond);
  CHECK(cache.needsRefresh(t + 3 * kSecond + kMinute));  // capped at a minute

  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.new"), t + 4 * kSecond));
  CHECK(cache.consecutiveFailures() == 0);
  CHECK(cache.lastError().empty());
  CHECK(cache.accessToken(t + 4 * kSecond) == "ya29.new");
}

TEST_CASE("OAuth2 token cache: answers without a usable token are refused", "[fcm]") {
  OAuthTokenCache cache = makeCache();
  auto refused = [&](const http2::Response& r) { return !cache.acceptTokenResponse(r, kStart); };
  CHECK(refused(errorAnswer(200, "not json")));
  CHECK(refused(errorAnswer(200, R"({"expires_in":3599,"token_type":"Bearer"})")));
  CHECK(refused(tokenAnswer("")));
  CHECK(refused(tokenAnswer("ya29.with space")));
  CHECK(refused(tokenAnswer("ya29.x\r\nx-injected: 1")));
  CHECK(refused(tokenAnswer("ya29.x", 0)));
  CHECK(refused(tokenAnswer("ya29.x", -5)));
  CHECK(refused(tokenAnswer("ya29.x", "soon")));
  CHECK(refused(tokenAnswer("ya29.x", 3599, "mac")));
  CHECK(refused(errorAnswer(500, "")));
  CHECK_FALSE(cache.accessToken(kStart));
  CHECK(cache.acceptTokenResponse(tokenAnswer("ya29.x", "3599", "bearer"), kStart));
  CHECK(cache.expiresAt() == kStart + 3599 * kSecond);
  CHECK(cache.acceptTokenResponse(tokenAnswer("ya29.x", 10'000'000), kStart));
  CHECK(cache.expiresAt() == kStart + kDay);  // an absurd lifetime is capped
}

TEST_CASE("OAuth2 token cache: a 401 drops the token, a late 401 for an old one does not",
          "[fcm]") {
  OAuthTokenCache cache = makeCache();
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.one"), kStart));
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.two"), kStart + kMinute));
  CHECK_FALSE(cache.invalidate("ya29.one"));
  CHECK(cache.accessToken(kStart + kMinute) == "ya29.two");
  CHECK(cache.invalidate("ya29.two"));
  CHECK_FALSE(cache.accessToken(kStart + kMinute));
  CHECK(cache.needsRefresh(kStart + kMinute));
  CHECK(cache.expiresAt() == 0);
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.three"), kStart + kMinute));
  CHECK(cache.invalidate());
  CHECK_FALSE(cache.invalidate());
}

TEST_CASE("OAuth2 token cache: short-lived tokens (mock servers) get proportional margins",
          "[fcm]") {
  OAuthTokenCache cache = makeCache();
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("mock-token", 60), kStart));
  CHECK_FALSE(cache.needsRefresh(kStart + 30 * kSecond - 1));
  CHECK(cache.needsRefresh(kStart + 30 * kSecond));
  CHECK(cache.accessToken(kStart + 45 * kSecond - 1) == "mock-token");
  CHECK_FALSE(cache.accessToken(kStart + 45 * kSecond));
}

TEST_CASE("OAuth2 token cache wants an RSA key", "[fcm]") {
  CHECK_THROWS_AS(OAuthTokenCache("a@b", "https://oauth2.googleapis.com/token",
                                  sipwake::testing::generateEcP256Key()),
                  std::invalid_argument);
  CHECK_THROWS_AS(OAuthTokenCache("", "https://x/token", sipwake::testing::sharedRsaKey()),
                  std::invalid_argument);
}

// Found by review and reproduced through tests/fuzz/provider_response: a
// token endpoint answering a huge expires_in overflowed (UB) before the cap.
TEST_CASE("OAuth2 token answer with a huge expires_in is capped at a day", "[fcm]") {
  OAuthTokenCache cache = makeCache();
  REQUIRE(cache.acceptTokenResponse(tokenAnswer("ya29.far", Json(9223372036854775807LL)), kStart));
  CHECK(cache.expiresAt() == kStart + OAuthTokenCache::kMaxTokenLifetime);
  CHECK(cache.accessToken(kStart) == "ya29.far");
}
