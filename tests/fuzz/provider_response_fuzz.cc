// Fuzzes how pushgw reads what providers answer: APNs and FCM HTTP/2
// responses (status, Retry-After, error body) into an outcome, and the
// OAuth2 token endpoint's answer FCM credentials come from.
// Input, like an HTTP response in text:
//   <status>[ retry_safe]\n<name>: <value>\n...\n\n<body>
// Properties: no crash; Delivered only for 200; a token is dropped
// (InvalidToken) only on a 4xx; retry delays within [0, 1 h]; reasons stay
// short and plain (they become metric labels); the access token never
// appears in an error text or a log line.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pushgw/provider/apns/apns_response.h"
#include "pushgw/provider/fcm/fcm_response.h"
#include "pushgw/provider/fcm/oauth_token_cache.h"
#include "pushgw/provider/retry_after.h"
#include "tests/common/crypto/test_keys.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::fuzz::contains;

namespace {

http2::Response parseResponse(std::string_view text) {
  http2::Response r;
  auto take_line = [&text]() {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    return line;
  };
  std::string_view status = take_line();
  auto [end, ec] = std::from_chars(status.data(), status.data() + status.size(), r.status);
  if (ec != std::errc()) r.status = 0;
  r.retry_safe = std::string_view(end, status.data() + status.size()) == " retry_safe";
  if (r.status == 0) r.error = "stream reset";
  while (!text.empty()) {
    std::string_view line = take_line();
    if (line.empty()) break;
    auto colon = line.find(": ");
    if (colon == std::string_view::npos) continue;
    r.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  r.body = text;
  return r;
}

void checkClassified(const ClassifiedResponse& c, const http2::Response& r) {
  FUZZ_CHECK((c.outcome == PushOutcome::Delivered) == (r.status == 200));
  if (c.outcome == PushOutcome::InvalidToken) FUZZ_CHECK(r.status >= 400 && r.status <= 499);
  if (c.outcome == PushOutcome::RefreshCredentials) FUZZ_CHECK(r.status == 401 || r.status == 403);
  if (c.retry_after) FUZZ_CHECK(*c.retry_after >= 0 && *c.retry_after <= kHour);
  FUZZ_CHECK(!c.reason.empty() && c.reason.size() <= 64 + 16);
  for (char ch : c.reason) {
    FUZZ_CHECK((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '_' || ch == '-' || ch == '.');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (fuzz::captureLogs(), true);
  (void)quiet;
  fuzz::loggedText().clear();
  http2::Response r = parseResponse(std::string_view(reinterpret_cast<const char*>(data), size));

  if (auto delay = retryAfter(r)) FUZZ_CHECK(*delay >= 0 && *delay <= kHour);
  checkClassified(classifyApnsResponse(r), r);
  checkClassified(classifyFcmResponse(r), r);

  static OAuthTokenCache tokens("fuzz@example.iam.gserviceaccount.com",
                                "https://oauth2.example/token", testing::sharedRsaKey());
  const Millis now = 1'700'000'000'000;
  bool accepted = tokens.acceptTokenResponse(r, now);
  auto doc = nlohmann::json::parse(r.body, nullptr, false);
  std::string token;
  if (doc.is_object() && doc.contains("access_token") && doc["access_token"].is_string()) {
    token = doc["access_token"].get<std::string>();
  }
  if (accepted) {
    FUZZ_CHECK(r.status == 200 && tokens.accessToken(now) == token);
    FUZZ_CHECK(tokens.expiresAt() > now && tokens.expiresAt() <= now + kDay);
  } else if (token.size() >= 8) {
    FUZZ_CHECK(!contains(tokens.lastError(), token) || contains(r.body, "error"));
  }
  if (token.size() >= 8) FUZZ_CHECK(!contains(fuzz::loggedText(), token));
  tokens.invalidate();
  return 0;
}
