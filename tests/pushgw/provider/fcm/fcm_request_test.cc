#include "pushgw/provider/fcm/fcm_request.h"

#include <catch2/catch.hpp>

#include "pushgw/provider/payload_fit.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using Json = nlohmann::json;

namespace {

constexpr Millis kNow = 1'700'000'000'000;
const std::string kAccessToken = "ya29.c.b0AXv0zTO";
const std::string kDeviceToken =
    "dXk0fTQ2RZ2:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-"
    "hQMRKRrZuJAEcl7B338qju59zJMjw2DELjzEvxwYv7hH5Ynpc1ODQ0aT4U4OFEeco8ohsN5PjL1iC2dNtk2BAokeMCg2ZX"
    "Kqpc8FXKmhX94kIxQ";

PushMessage callPush() {
  PushMessage m;
  m.provider = "fcm";
  m.token = kDeviceToken;
  m.app = "example-project";
  m.payload = {{"type", "call"},
               {"binding", "b-1"},
               {"call_id", "a84b4c76e66710@pbx.example.com"},
               {"from", "sip:alice@pbx.example.com"},
               {"from_name", "Alice"},
               {"to", "sip:1000@pbx.example.com"},
               {"sent_at", 1700000000123}};
  m.collapse_id = "a84b4c76e66710@pbx.example.com";
  m.expires_at = kNow + 30 * kSecond;
  m.urgent = true;
  return m;
}

PushMessage messagePush(std::string body) {
  PushMessage m = callPush();
  m.payload["type"] = "message";
  m.payload["body"] = std::move(body);
  return m;
}

Json bodyOf(const http2::Request& r) {
  return Json::parse(r.body);
}

std::size_t dataSize(const Json& data) {
  std::size_t n = 0;
  for (const auto& [k, v] : data.items()) n += k.size() + v.get<std::string>().size();
  return n;
}

}  // namespace

TEST_CASE("FCM v1 request: path, headers, message with string data and android options", "[fcm]") {
  auto r = buildFcmRequest(callPush(), "example-project", kAccessToken, kNow);
  REQUIRE(r);
  CHECK(r->method == "POST");
  CHECK(r->path == "/v1/projects/example-project/messages:send");
  CHECK(r->headers ==
        std::vector<std::pair<std::string, std::string>>{
            {"authorization", "Bearer " + kAccessToken}, {"content-type", "application/json"}});
  CHECK(bodyOf(*r) == Json{{"message",
                            {{"token", kDeviceToken},
                             {"data",
                              {{"type", "call"},
                               {"binding", "b-1"},
                               {"call_id", "a84b4c76e66710@pbx.example.com"},
                               {"from_uri", "sip:alice@pbx.example.com"},
                               {"from_name", "Alice"},
                               {"to", "sip:1000@pbx.example.com"},
                               {"sent_at", "1700000000123"}}},
                             {"android", {{"priority", "high"}, {"ttl", "30s"}}}}}});
}

TEST_CASE("FCM data values are strings: numbers, booleans, nested values converted", "[fcm]") {
  PushMessage m = callPush();
  m.payload = {{"type", "call_cancelled"},
               {"answered_elsewhere", true},
               {"muted", false},
               {"sent_at", 1700000000123},
               {"ratio", 1.5},
               {"from_name", nullptr},
               {"extra", {{"a", 1}}},
               {"list", {1, "two"}}};
  Json data = bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["data"];
  CHECK(data == Json{{"type", "call_cancelled"},
                     {"answered_elsewhere", "true"},
                     {"muted", "false"},
                     {"sent_at", "1700000000123"},
                     {"ratio", "1.5"},
                     {"extra", R"({"a":1})"},
                     {"list", R"([1,"two"])"}});
  m.payload = nullptr;
  CHECK(bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["data"] ==
        Json::object());
}

TEST_CASE("FCM android priority and ttl follow the message", "[fcm]") {
  PushMessage m = callPush();
  auto android = [&] {
    return bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["android"];
  };
  m.urgent = false;
  CHECK(android()["priority"] == "normal");
  m.expires_at = kNow + 30 * kSecond + 200;  // rounded up
  CHECK(android()["ttl"] == "31s");
  m.expires_at = 0;  // deliver now or never, like apns-expiration 0
  CHECK(android()["ttl"] == "0s");
  m.expires_at = kNow - kSecond;
  CHECK(android()["ttl"] == "0s");
  m.expires_at = kNow + 60 * kDay;
  CHECK(android()["ttl"] == "2419200s");
}

TEST_CASE("FCM data limit: 4096 bytes of keys and values, message bodies trimmed", "[fcm]") {
  std::string text(5000, 'x');
  auto r = buildFcmRequest(messagePush(text), "example-project", kAccessToken, kNow);
  REQUIRE(r);
  Json data = bodyOf(*r)["message"]["data"];
  CHECK(dataSize(data) <= kFcmDataLimit);
  CHECK(dataSize(data) > kFcmDataLimit - 8);
  std::string body = data["body"];
  CHECK(body.substr(body.size() - 3) == "\xE2\x80\xA6");
  CHECK(text.rfind(body.substr(0, body.size() - 3), 0) == 0);

  // Exactly at the limit: untouched; one byte more: trimmed.
  PushMessage m = messagePush("");
  std::size_t base = dataSize(
      bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["data"]);
  m.payload["body"] = std::string(kFcmDataLimit - base, 'y');
  data = bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["data"];
  CHECK(dataSize(data) == kFcmDataLimit);
  CHECK(data["body"] == m.payload["body"]);
  m.payload["body"] = std::string(kFcmDataLimit - base + 1, 'y');
  data = bodyOf(*buildFcmRequest(m, "example-project", kAccessToken, kNow))["message"]["data"];
  CHECK(dataSize(data) <= kFcmDataLimit);
  CHECK(data["body"] != m.payload["body"]);
}

TEST_CASE("FCM data limit: non-ASCII text is cut between characters", "[fcm]") {
  for (std::string unit : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    std::string text;
    while (text.size() < 6000) text += unit;
    auto r = buildFcmRequest(messagePush(text), "example-project", kAccessToken, kNow);
    REQUIRE(r);
    Json data = bodyOf(*r)["message"]["data"];
    CHECK(dataSize(data) <= kFcmDataLimit);
    std::string body = data["body"];
    CHECK(validUtf8(body) == body);
    std::string kept = body.substr(0, body.size() - 3);
    CHECK(kept.size() % unit.size() == 0);
    CHECK(text.rfind(kept, 0) == 0);
  }
  // Invalid UTF-8 from the network is counted as the U+FFFD it becomes.
  PushMessage m = messagePush(std::string(3000, '\xff'));
  auto r = buildFcmRequest(m, "example-project", kAccessToken, kNow);
  REQUIRE(r);
  CHECK(dataSize(bodyOf(*r)["message"]["data"]) <= kFcmDataLimit);
}

TEST_CASE("FCM pushes that cannot be sent say why", "[fcm]") {
  std::string error;
  PushMessage m = callPush();
  m.payload["from_name"] = std::string(5000, 'n');
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow, &error));
  CHECK_THAT(error, Catch::Contains("exceeds 4096"));

  m = callPush();
  m.payload["google.c.a.e"] = "1";
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow, &error));
  CHECK_THAT(error, Catch::Contains("google.c.a.e"));
  m.payload = {{"gcm.notification", "x"}};
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow));
  m.payload = {{"message_type", "x"}};
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow));

  m = callPush();
  m.token.clear();
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow));
  for (std::string project : {"", "a/b", "x?y", "proj ect"}) {
    CHECK_FALSE(buildFcmRequest(callPush(), project, kAccessToken, kNow));
  }
  CHECK_FALSE(buildFcmRequest(callPush(), "example-project", "", kNow));
  m = callPush();
  m.payload = "text";
  CHECK_FALSE(buildFcmRequest(m, "example-project", kAccessToken, kNow));
}
