#include "pushgw/provider/payload_fit.h"

#include <catch2/catch.hpp>

#include "pushgw/provider/retry_after.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using Json = nlohmann::json;

TEST_CASE("utf8Prefix never splits a character", "[apns][fcm]") {
  std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀: 1+2+3+4 bytes
  CHECK(utf8Prefix(text, 100) == text);
  CHECK(utf8Prefix(text, 0) == "");
  CHECK(utf8Prefix(text, 1) == "a");
  CHECK(utf8Prefix(text, 2) == "a");
  CHECK(utf8Prefix(text, 3) == "a\xC3\xA9");
  CHECK(utf8Prefix(text, 5) == "a\xC3\xA9");
  CHECK(utf8Prefix(text, 6) == "a\xC3\xA9\xE2\x82\xAC");
  CHECK(utf8Prefix(text, 9) == "a\xC3\xA9\xE2\x82\xAC");
  CHECK(utf8Prefix(text, 10) == text);
  // Not UTF-8 at all: cut where asked rather than walk back forever.
  std::string junk(10, '\x80');
  CHECK(utf8Prefix(junk, 5).size() == 5);
}

TEST_CASE("validUtf8 replaces what is not UTF-8", "[apns][fcm]") {
  const std::string r = "\xEF\xBF\xBD";
  CHECK(validUtf8("plain \xC3\xA9 \xF0\x9F\x98\x80") == "plain \xC3\xA9 \xF0\x9F\x98\x80");
  CHECK(validUtf8("\xff") == r);
  CHECK(validUtf8("a\xC3") == "a" + r);                   // truncated sequence
  CHECK(validUtf8("\xC0\xAF") == r + r);                  // overlong '/'
  CHECK(validUtf8("\xED\xA0\x80") == r + r + r);          // a surrogate
  CHECK(validUtf8("\xF4\x90\x80\x80") == r + r + r + r);  // above U+10FFFF
  CHECK(validUtf8("\xE2\x82x") == r + r + "x");
}

TEST_CASE("fitBody trims only the body, only as much as needed", "[apns][fcm]") {
  auto size = [](const Json& p) { return dumpPayload(p).size(); };
  Json p = {{"type", "message"}, {"body", std::string(100, 'b')}};
  std::size_t full = size(p);
  CHECK(fitBody(p, full, size) == FitResult::Fits);
  CHECK(p["body"] == std::string(100, 'b'));
  CHECK(fitBody(p, full - 10, size) == FitResult::Trimmed);
  CHECK(size(p) <= full - 10);
  CHECK(size(p) >= full - 13);
  CHECK(fitBody(p, 20, size) == FitResult::TooLarge);
  CHECK(p["body"] == "");
  Json no_body = {{"type", "call"}, {"from_name", std::string(100, 'n')}};
  CHECK(fitBody(no_body, 50, size) == FitResult::TooLarge);
  CHECK(no_body["from_name"] == std::string(100, 'n'));
}

TEST_CASE("Retry-After: delta-seconds only", "[apns][fcm]") {
  http2::Response r;
  CHECK_FALSE(retryAfter(r));
  r.headers = {{"retry-after", "0"}};
  CHECK(retryAfter(r) == 0);
  r.headers = {{"retry-after", "17"}};
  CHECK(retryAfter(r) == 17 * kSecond);
  for (std::string bad : {"", " ", "1.5", "-1", "Fri, 31 Dec 1999 23:59:59 GMT", "12345678901"}) {
    r.headers = {{"retry-after", bad}};
    CHECK_FALSE(retryAfter(r));
  }
}
