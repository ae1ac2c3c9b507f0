#include "pushgw/provider/apns/apns_response.h"

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::pushgw;

namespace {

http2::Response answer(int status, std::string body = {},
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
  http2::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.headers.emplace_back("apns-id", "EC1BF194-B3B2-424A-89A2-0F3E33DC3F24");
  return r;
}

struct Row {
  int status;
  std::string body;
  PushOutcome outcome;
  std::string reason;
};

}  // namespace

TEST_CASE("APNs answers are classified once, at the edge", "[apns]") {
  // Bodies as APNs sends them ("timestamp" only with 410).
  std::vector<Row> rows = {
      {200, "", PushOutcome::Delivered, "ok"},
      {410, R"({"reason":"Unregistered","timestamp":1700000000000})", PushOutcome::InvalidToken,
       "Unregistered"},
      {410, R"({"reason":"ExpiredToken","timestamp":1700000000000})", PushOutcome::InvalidToken,
       "ExpiredToken"},
      {410, "", PushOutcome::InvalidToken, "http_410"},
      {400, R"({"reason":"BadDeviceToken"})", PushOutcome::InvalidToken, "BadDeviceToken"},
      {400, R"({"reason":"DeviceTokenNotForTopic"})", PushOutcome::InvalidToken,
       "DeviceTokenNotForTopic"},
      {400, R"({"reason":"BadTopic"})", PushOutcome::PermanentError, "BadTopic"},
      {400, R"({"reason":"TopicDisallowed"})", PushOutcome::PermanentError, "TopicDisallowed"},
      {400, R"({"reason":"BadCollapseId"})", PushOutcome::PermanentError, "BadCollapseId"},
      {400, R"({"reason":"BadExpirationDate"})", PushOutcome::PermanentError, "BadExpirationDate"},
      {400, R"({"reason":"PayloadEmpty"})", PushOutcome::PermanentError, "PayloadEmpty"},
      {400, R"({"reason":"MissingDeviceToken"})", PushOutcome::PermanentError,
       "MissingDeviceToken"},
      {400, "", PushOutcome::PermanentError, "http_400"},
      {403, R"({"reason":"ExpiredProviderToken"})", PushOutcome::RefreshCredentials,
       "ExpiredProviderToken"},
      {403, R"({"reason":"InvalidProviderToken"})", PushOutcome::RefreshCredentials,
       "InvalidProviderToken"},
      {403, R"({"reason":"MissingProviderToken"})", PushOutcome::PermanentError,
       "MissingProviderToken"},
      {403, R"({"reason":"BadCertificateEnvironment"})", PushOutcome::PermanentError,
       "BadCertificateEnvironment"},
      {404, R"({"reason":"BadPath"})", PushOutcome::PermanentError, "BadPath"},
      {405, R"({"reason":"MethodNotAllowed"})", PushOutcome::PermanentError, "MethodNotAllowed"},
      {413, R"({"reason":"PayloadTooLarge"})", PushOutcome::PermanentError, "PayloadTooLarge"},
      {429, R"({"reason":"TooManyRequests"})", PushOutcome::RetryLater, "TooManyRequests"},
      {429, R"({"reason":"TooManyProviderTokenUpdates"})", PushOutcome::RetryLater,
       "TooManyProviderTokenUpdates"},
      {500, R"({"reason":"InternalServerError"})", PushOutcome::RetryLater, "InternalServerError"},
      {503, R"({"reason":"ServiceUnavailable"})", PushOutcome::RetryLater, "ServiceUnavailable"},
      {503, R"({"reason":"Shutdown"})", PushOutcome::RetryLater, "Shutdown"},
      {502, "<html><body>Bad Gateway</body></html>", PushOutcome::RetryLater, "http_502"},
      {400, R"({"reason": 42})", PushOutcome::PermanentError, "http_400"},
      {400, R"({"reason":"Bad Device\nToken{}"})", PushOutcome::PermanentError, "BadDeviceToken"},
  };
  for (const auto& row : rows) {
    INFO(row.status << " " << row.body);
    auto c = classifyApnsResponse(answer(row.status, row.body));
    CHECK(c.outcome == row.outcome);
    CHECK(c.reason == row.reason);
    CHECK_FALSE(c.retry_after);
  }
}

TEST_CASE("APNs 429 and 5xx carry Retry-After when given", "[apns]") {
  auto c =
      classifyApnsResponse(answer(429, R"({"reason":"TooManyRequests"})", {{"retry-after", "30"}}));
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK(c.retry_after == 30 * kSecond);
  c = classifyApnsResponse(
      answer(503, R"({"reason":"ServiceUnavailable"})", {{"retry-after", " 120 "}}));
  CHECK(c.retry_after == 120 * kSecond);
  c = classifyApnsResponse(answer(503, "", {{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}}));
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK_FALSE(c.retry_after);
  c = classifyApnsResponse(answer(500, "", {{"retry-after", "999999"}}));
  CHECK(c.retry_after == kHour);  // capped
  c = classifyApnsResponse(answer(500, "", {{"retry-after", "-5"}}));
  CHECK_FALSE(c.retry_after);
}

TEST_CASE("APNs: no response at all is retried", "[apns]") {
  http2::Response r;
  r.error = "connection reset by peer";
  auto c = classifyApnsResponse(r);
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK(c.reason == "no_response");
  r.error = "stream refused";
  r.retry_safe = true;
  c = classifyApnsResponse(r);
  CHECK(c.outcome == PushOutcome::RetryLater);
  CHECK(c.reason == "not_processed");
}
