#include "pushgw/provider/apns/apns_request.h"

#include <limits>

#include <catch2/catch.hpp>

#include "common/crypto/hash.h"
#include "common/util/encoding.h"
#include "pushgw/provider/payload_fit.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using Json = nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

const std::string kToken(64, 'a');
const std::string kJwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJUIn0.c2ln";

PushMessage callPush() {
  PushMessage m;
  m.provider = "apns";
  m.token = "3f2a" + std::string(60, '0');
  m.app = "com.example.talk";
  m.environment = "production";
  m.push_type = "voip";
  m.payload = {{"type", "call"},
               {"binding", "b-1"},
               {"call_id", "a84b4c76e66710@pbx.example.com"},
               {"from", "sip:alice@pbx.example.com"},
               {"from_name", "Alice"},
               {"to", "sip:1000@pbx.example.com"},
               {"sent_at", 1700000000123}};
  m.collapse_id = "a84b4c76e66710@pbx.example.com";
  m.expires_at = 1700000030123;
  m.urgent = true;
  return m;
}

PushMessage messagePush(std::string body, std::string push_type = "voip") {
  PushMessage m = callPush();
  m.push_type = std::move(push_type);
  m.payload["type"] = "message";
  m.payload["body"] = std::move(body);
  m.payload.erase("call_id");
  m.collapse_id.clear();
  return m;
}

Json bodyOf(const http2::Request& r) {
  return Json::parse(r.body);
}

std::string header(const http2::Request& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("APNs voip call request: path, every header, payload beside an empty aps", "[apns]") {
  PushMessage m = callPush();
  auto r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  CHECK(r->method == "POST");
  CHECK(r->path == "/3/device/" + m.token);
  CHECK(r->headers == Headers{{"authorization", "bearer " + kJwt},
                              {"apns-topic", "com.example.talk.voip"},
                              {"apns-push-type", "voip"},
                              {"apns-priority", "10"},
                              {"apns-expiration", "1700000031"},  // rounded up
                              {"apns-collapse-id", "a84b4c76e66710@pbx.example.com"},
                              {"content-type", "application/json"}});
  Json expected = m.payload;
  expected["aps"] = Json::object();
  CHECK(bodyOf(*r) == expected);
}

TEST_CASE("APNs headers follow the message: alert topic, priority 5, no expiry, no collapse id",
          "[apns]") {
  PushMessage m = callPush();
  m.push_type = "alert";
  m.urgent = false;
  m.expires_at = 0;
  m.collapse_id.clear();
  auto r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  CHECK(header(*r, "apns-topic") == "com.example.talk");
  CHECK(header(*r, "apns-push-type") == "alert");
  CHECK(header(*r, "apns-priority") == "5");
  CHECK(header(*r, "apns-expiration") == "0");
  CHECK(header(*r, "apns-collapse-id") == "<absent>");

  m.expires_at = 1700000030000;  // exact seconds stay as they are
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-expiration") == "1700000030");
  m.push_type.clear();  // the contract's default
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-push-type") == "voip");
}

TEST_CASE("APNs collapse ids longer than 64 bytes are hashed to 64", "[apns]") {
  PushMessage m = callPush();
  m.collapse_id = std::string(64, 'c');
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-collapse-id") == m.collapse_id);
  m.collapse_id = std::string(65, 'c');
  std::string hashed = header(*buildApnsRequest(m, kJwt), "apns-collapse-id");
  CHECK(hashed.size() == 64);
  CHECK(hashed == hexEncode(crypto::sha256(m.collapse_id)));
  // The same id always gives the same value: a cancel replaces its call.
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-collapse-id") == hashed);
  m.collapse_id = "id\r\nx-injected: 1";
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-collapse-id").size() == 64);
}

TEST_CASE("APNs alert pushes carry a short human text", "[apns]") {
  PushMessage m = callPush();
  m.push_type = "alert";
  Json aps = bodyOf(*buildApnsRequest(m, kJwt))["aps"];
  CHECK(aps == Json{{"alert", {{"title", "Incoming call from Alice"}}}, {"sound", "default"}});

  m.payload.erase("from_name");
  CHECK(bodyOf(*buildApnsRequest(m, kJwt))["aps"]["alert"]["title"] ==
        "Incoming call from alice@pbx.example.com");

  m.payload["type"] = "call_cancelled";
  aps = bodyOf(*buildApnsRequest(m, kJwt))["aps"];
  CHECK(aps == Json{{"alert", {{"title", "Missed call from alice@pbx.example.com"}}}});
  m.payload["answered_elsewhere"] = true;
  CHECK(bodyOf(*buildApnsRequest(m, kJwt))["aps"]["alert"]["title"] ==
        "Call from alice@pbx.example.com answered elsewhere");

  PushMessage msg = messagePush("See you at 5?", "alert");
  Json body = bodyOf(*buildApnsRequest(msg, kJwt));
  CHECK(body["aps"] ==
        Json{{"alert", {{"title", "Message from Alice"}, {"body", "See you at 5?"}}}});
  CHECK(body["body"] == "See you at 5?");

  msg.payload = {{"type", "binding_failed"}, {"binding", "b-1"}};
  CHECK(bodyOf(*buildApnsRequest(msg, kJwt))["aps"]["alert"]["title"] ==
        "Calls can no longer reach this device");

  // A display name from a SIP header does not blow up the title.
  m.payload["type"] = "call";
  m.payload["from_name"] = std::string(500, 'N');
  std::string title = bodyOf(*buildApnsRequest(m, kJwt))["aps"]["alert"]["title"];
  CHECK(title == "Incoming call from " + std::string(64, 'N'));
}

TEST_CASE("APNs payload fields cannot replace aps", "[apns]") {
  PushMessage m = callPush();
  m.payload["aps"] = {{"alert", "spoofed"}};
  CHECK(bodyOf(*buildApnsRequest(m, kJwt))["aps"] == Json::object());
  m.payload = nullptr;
  CHECK(bodyOf(*buildApnsRequest(m, kJwt)) == Json{{"aps", Json::object()}});
}

TEST_CASE("APNs size limit: message bodies are trimmed to 5120 bytes (voip) / 4096 (alert)",
          "[apns]") {
  for (auto [type, limit] :
       {std::pair{"voip", kApnsVoipPayloadLimit}, {"alert", kApnsPayloadLimit}}) {
    INFO(type);
    std::string text(6000, 'x');
    auto r = buildApnsRequest(messagePush(text, type), kJwt);
    REQUIRE(r);
    CHECK(r->body.size() <= limit);
    CHECK(r->body.size() > limit - 16);  // trimmed, not emptied
    std::string body = bodyOf(*r)["body"];
    CHECK(body.size() < text.size());
    CHECK(body.substr(body.size() - 3) == "\xE2\x80\xA6");  // an ellipsis says it goes on
    CHECK(text.rfind(body.substr(0, body.size() - 3), 0) == 0);
    if (std::string(type) == "alert") CHECK(bodyOf(*r)["aps"]["alert"]["body"] == body);
  }
}

TEST_CASE("APNs size limit: a payload of exactly the limit is left alone", "[apns]") {
  PushMessage m = messagePush("");
  std::size_t base = buildApnsRequest(m, kJwt)->body.size();
  m.payload["body"] = std::string(kApnsVoipPayloadLimit - base, 'y');
  auto r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  CHECK(r->body.size() == kApnsVoipPayloadLimit);
  CHECK(bodyOf(*r)["body"] == m.payload["body"]);
  m.payload["body"] = std::string(kApnsVoipPayloadLimit - base + 1, 'y');
  r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  CHECK(r->body.size() <= kApnsVoipPayloadLimit);
  CHECK(bodyOf(*r)["body"] != m.payload["body"]);
}

TEST_CASE("APNs size limit: non-ASCII text is cut between characters", "[apns]") {
  // 2-, 3- and 4-byte characters, and text that JSON escapes (quotes, newlines).
  for (std::string unit : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "a\"b\n", "\xC3\xA9x"}) {
    INFO(unit);
    bool one_character = validUtf8(unit) == unit && unit.size() > 1 && unit[0] & 0x80 &&
                         unit.size() == (unit[0] & 0x20 ? (unit[0] & 0x10 ? 4u : 3u) : 2u);
    std::string text;
    while (text.size() < 7000) text += unit;
    auto r = buildApnsRequest(messagePush(text), kJwt);
    REQUIRE(r);
    CHECK(r->body.size() <= kApnsVoipPayloadLimit);
    std::string body = bodyOf(*r)["body"];  // parsing checks it is valid UTF-8
    CHECK(validUtf8(body) == body);
    std::string kept = body.substr(0, body.size() - 3);
    CHECK(text.rfind(kept, 0) == 0);
    if (one_character) CHECK(kept.size() % unit.size() == 0);  // whole characters only
  }
}

TEST_CASE("APNs pushes that cannot be sent say why", "[apns]") {
  std::string error;
  PushMessage m = callPush();
  m.payload["from_name"] = std::string(6000, 'n');  // too big, and no body to trim
  CHECK_FALSE(buildApnsRequest(m, kJwt, &error));
  CHECK_THAT(error, Catch::Contains("exceeds 5120"));

  m = callPush();
  m.push_type = "background";
  CHECK_FALSE(buildApnsRequest(m, kJwt, &error));
  CHECK_THAT(error, Catch::Contains("push type"));

  m = callPush();
  for (const std::string& bad :
       std::vector<std::string>{"", "zz12", "abcd/../x", std::string(600, 'a')}) {
    m.token = bad;
    CHECK_FALSE(buildApnsRequest(m, kJwt, &error));
  }
  m = callPush();
  m.app.clear();
  CHECK_FALSE(buildApnsRequest(m, kJwt));
  CHECK_FALSE(buildApnsRequest(callPush(), ""));
  m = callPush();
  m.payload = Json::array();
  CHECK_FALSE(buildApnsRequest(m, kJwt));
}

TEST_CASE("APNs payloads with invalid UTF-8 from the network are still sent", "[apns]") {
  PushMessage m = messagePush("bad \xff\xfe bytes", "alert");
  m.payload["from_name"] = "Bob \xc3";
  auto r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  Json body = bodyOf(*r);
  CHECK(body["body"] == "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

// Found by review and reproduced through tests/fuzz/push_job: a job with an
// expires_at near the largest Millis overflowed while rounding up (UB).
TEST_CASE("APNs expiration of a far-future job does not overflow", "[apns]") {
  PushMessage m = callPush();
  m.expires_at = std::numeric_limits<Millis>::max();
  auto r = buildApnsRequest(m, kJwt);
  REQUIRE(r);
  CHECK(header(*r, "apns-expiration") == std::to_string(std::numeric_limits<Millis>::max() / 1000 + 1));
  m.expires_at = 1700000030001;
  CHECK(header(*buildApnsRequest(m, kJwt), "apns-expiration") == "1700000031");
}
