// The logs through a register + call scenario: one JSON object per line with
// time, level and instance; lines about the binding or the call carry its
// `binding` / `call_id`; no password, push token, key or private key.

#include <catch2/catch.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

constexpr const char* kApnsToken = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
constexpr const char* kFcmToken = "fcm-log-token-Zq9";

std::vector<json> parseLines(const std::string& text, const std::string& who) {
  std::vector<json> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    INFO(who << ": " << line);
    REQUIRE(j.is_object());
    CHECK(j.contains("ts"));
    CHECK(j.contains("level"));
    CHECK(j.contains("instance"));
    CHECK(j.contains("msg"));
    for (auto it = j.begin(); it != j.end(); ++it) CHECK(it->is_string());
    lines.push_back(std::move(j));
  }
  return lines;
}

// Any value of the line (other than `field` itself) mentions `needle`.
bool mentions(const json& line, const std::string& needle, const char* field) {
  for (auto it = line.begin(); it != line.end(); ++it) {
    if (it.key() == field) continue;
    if (it->get<std::string>().find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("logs: JSON lines with ts, level, instance, binding and call ids where they apply, and no secret",
          "[logs][secrets]") {
  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "2s"}});
  PushgwProcess pushgw(redis.url(), push.apps_file, "pushgw-logs");
  SipTestUa caller;

  json body = bindingBody("8500", pbx.port());
  body["devices"] = json::array({{{"id", "iphone"}, {"provider", "apns"}, {"token", kApnsToken}, {"app", "com.example.talk"}},
                                 {{"id", "pixel"}, {"provider", "fcm"}, {"token", kFcmToken}, {"app", "example-project"}}});
  REQUIRE(registrar.put("logphone", body).status == 201);
  REQUIRE(registrar.waitForState("logphone", "registered", 10000));
  // A binding whose password the PBX refuses: failure lines too.
  REQUIRE(registrar.put("logbad", bindingBody("8501", pbx.port(), "udp", "Log-Secret-Zebra-8501")).status == 201);

  int call = caller.invite("sip:8500@127.0.0.1", "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp",
                           "sip:alice@127.0.0.1", "Alice", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n");
  REQUIRE(caller.waitForResponse(call, [](const SipMessageRecord& r) {
    return r.status == 180 && r.header("x-push-status") == "Push-Notification-Sent";
  }, 10000));
  std::string call_id = caller.callId(call);
  REQUIRE(waitUntil([&] { return push.apns->pushesFor(kApnsToken).size() == 1; }, 5000));
  caller.cancel(call);
  REQUIRE(registrar.waitForState("logbad", "failed", 30000));
  REQUIRE(registrar.del("logphone").status == 204);
  registrar.stop();
  pushgw.stop();

  auto registrar_lines = parseLines(registrar.log(), "registrar");
  auto pushgw_lines = parseLines(pushgw.log(), "pushgw");
  REQUIRE(!registrar_lines.empty());
  REQUIRE(!pushgw_lines.empty());

  // The binding: lines about it say which (tenant/id in `binding`, or the id
  // beside `tenant` where only the id is known), and there are such lines
  // for its life: created, registered, call, deleted.
  int about_binding = 0, about_call = 0;
  for (const auto* lines : {&registrar_lines, &pushgw_lines}) {
    for (const auto& line : *lines) {
      INFO(line.dump());
      if (mentions(line, "logphone", "binding")) {
        CHECK(line.contains("binding"));
      }
      if (line.contains("binding") && line["binding"].get<std::string>().find("logphone") != std::string::npos) {
        ++about_binding;
      }
      if (mentions(line, call_id, "call_id")) CHECK(line.contains("call_id"));
      if (line.value("call_id", "") == call_id) ++about_call;
    }
  }
  CHECK(about_binding >= 3);
  CHECK(about_call >= 1);

  // No secret: passwords, push tokens (whole), API keys, private keys.
  std::string everything = registrar.log() + pushgw.log();
  for (const std::string& secret : {std::string("pw-8500"), std::string("Log-Secret-Zebra-8501"),
                                   std::string(kApnsToken), std::string(kFcmToken), std::string(kTenantKey),
                                   std::string(kAdminKey), std::string("PRIVATE KEY")}) {
    INFO(secret);
    CHECK(everything.find(secret) == std::string::npos);
  }
}
