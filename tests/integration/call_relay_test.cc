// The call relay (issue 4): a caller through Kamailio, registrar and pushgw,
// and a second UA as the woken app that signs in at the relay URI its push
// carries and takes the call over its own TCP connection.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

constexpr const char* kToken = "b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const std::string kCallerSdp =
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
const std::string kAppSdp =
    "v=0\r\no=app 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 50000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

std::vector<int> statusesOf(const std::vector<SipMessageRecord>& responses) {
  std::vector<int> out;
  for (const auto& r : responses) out.push_back(r.status);
  return out;
}

struct RelayScenario {
  explicit RelayScenario(const std::string& ack_timeout = "20s", const std::string& connect_timeout = "20s")
      : device_port(freePort()),
        registrar(redis.url(), {{"REGISTRAR_DEVICE_LISTEN", "127.0.0.1:" + std::to_string(device_port)},
                                {"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", ack_timeout},
                                {"REGISTRAR_CALL_DEVICE_CONNECT_TIMEOUT", connect_timeout}}),
        pushgw(redis.url(), push.apps_file, "pushgw-1") {
    json body = bindingBody("1000", pbx.port(), "udp");
    body["devices"] = json::array({{{"id", "iphone"}, {"provider", "apns"}, {"token", kToken},
                                    {"app", push.apns_app}}});
    REQUIRE(registrar.put("phone", body).status == 201);
    REQUIRE(registrar.waitForState("phone", "registered", 10000));
  }
  static SipTestUaOptions appOptions() {
    SipTestUaOptions o;
    o.transport = "tcp";
    o.contact_user = "app";
    return o;
  }
  int call() {
    return caller.invite("sip:1000@127.0.0.1", "sip:" + pbx.hostPort() + ";transport=udp",
                         "sip:alice@127.0.0.1", "Alice Caller", kCallerSdp);
  }
  // The relay URI of the latest call push, once it arrived.
  std::string relayFromPush() {
    std::string relay;
    waitUntil([&] {
      for (const auto& p : push.apns->pushes()) {
        if (p.body.value("type", "") == "call") relay = p.body.value("relay", "");
      }
      return !relay.empty();
    }, 5000);
    return relay;
  }
  // Signs `app` in the way a woken app does: at the relay URI, with the binding's credentials.
  int signIn(SipTestUa& app, const std::string& relay, const std::string& password = "pw-1000") {
    std::string token = relay.substr(4, relay.find('@') - 4);
    std::string listener = "sip:" + relay.substr(relay.find('@') + 1);
    return app.registerTo(listener, "1000", password, 600, 5000, token);
  }
  const SipMessageRecord* received(SipTestUa& app, const std::string& method, int timeout_ms = 5000) {
    static thread_local SipMessageRecord found;
    bool ok = app.waitForRequest([&](const SipMessageRecord& r) { return r.method == method; }, timeout_ms);
    if (!ok) return nullptr;
    for (const auto& r : app.requestsReceived()) {
      if (r.method == method) found = r;
    }
    return &found;
  }

  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  std::uint16_t device_port;
  RegistrarProcess registrar;
  PushgwProcess pushgw;
  SipTestUa caller;
};

}  // namespace

TEST_CASE("relay: the woken app answers, SDP passes unchanged, ACK and BYE cross", "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  SipInviteAnswer answer;
  answer.ring_first = true;
  answer.early_sdp = kAppSdp + "a=x-early\r\n";  // 183 with early media
  answer.status = 200;
  answer.sdp = kAppSdp;
  answer.final_delay_ms = 200;
  app.setInviteAnswer(answer);

  int call = s.call();
  std::string relay = s.relayFromPush();
  REQUIRE(!relay.empty());
  REQUIRE(s.signIn(app, relay) == 200);

  // The app's INVITE: the caller's identity, the PBX's Call-ID, the SDP as sent.
  const SipMessageRecord* invite = s.received(app, "INVITE");
  REQUIRE(invite);
  CHECK(invite->body == kCallerSdp);
  CHECK(invite->header("from").find("Alice Caller") != std::string::npos);
  CHECK(invite->header("from").find("sip:alice@127.0.0.1") != std::string::npos);
  CHECK(invite->header("x-sipwake-call-id") == s.caller.callId(call));

  // The caller hears the app ring, then gets its answer with the app's SDP.
  REQUIRE(s.caller.waitForFinal(call, 8000));
  REQUIRE(s.caller.finalStatus(call) == 200);
  CHECK(s.caller.responses(call).back().body == kAppSdp);
  bool app_ringing = false;
  for (const auto& r : s.caller.responses(call)) {
    app_ringing = app_ringing || (r.status == 180 && r.header("x-push-status").empty());
  }
  CHECK(app_ringing);
  bool early_media = false;
  for (const auto& r : s.caller.responses(call)) {
    early_media = early_media || (r.status == 183 && r.body == kAppSdp + "a=x-early\r\n");
  }
  CHECK(early_media);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"answered\"") == 1);
  CHECK(s.registrar.metric("registrar_relay_legs_total", "result=\"offered\"") == 1);
  CHECK(s.registrar.metric("registrar_relay_legs_total", "result=\"answered\"") == 1);
  CHECK(s.registrar.metric("registrar_relayed_calls") == 1);
  CHECK(s.registrar.metric("registrar_invite_to_answer_seconds_count") == 1);

  s.caller.ack(call);
  CHECK(s.received(app, "ACK"));
  CHECK(s.caller.bye(call) == 200);
  CHECK(s.received(app, "BYE"));
  CHECK(waitUntil([&] { return s.registrar.metric("registrar_relayed_calls") == 0; }, 3000));
}

TEST_CASE("relay: an app signed in before the call rings at once, and its 486 reaches the caller",
          "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  app.setInviteAnswer(486);
  // A first call gives the relay URI; the app signs in and stays.
  int first = s.call();
  std::string relay = s.relayFromPush();
  REQUIRE(!relay.empty());
  REQUIRE(s.signIn(app, relay) == 200);
  REQUIRE(s.caller.waitForFinal(first, 8000));
  CHECK(s.caller.finalStatus(first) == 486);

  int second = s.call();
  REQUIRE(s.caller.waitForFinal(second, 8000));
  CHECK(s.caller.finalStatus(second) == 486);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"declined\"") == 2);
}

TEST_CASE("relay: the caller cancels while the app rings, the app's leg is cancelled", "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  SipInviteAnswer ring;
  ring.ring_first = true;
  ring.status = 0;  // rings until cancelled
  app.setInviteAnswer(ring);
  int call = s.call();
  std::string relay = s.relayFromPush();
  REQUIRE(s.signIn(app, relay) == 200);
  REQUIRE(s.received(app, "INVITE"));
  REQUIRE(s.caller.waitForResponse(call, [](const SipMessageRecord& r) {
    return r.status == 180 && r.header("x-push-status").empty();
  }, 5000));
  REQUIRE(s.caller.cancel(call));
  REQUIRE(s.caller.waitForFinal(call, 5000));
  CHECK(s.caller.finalStatus(call) == 487);
  CHECK(s.received(app, "CANCEL"));
}

TEST_CASE("relay: a wrong password signs nothing in and nothing is relayed", "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  app.setInviteAnswer(200, kAppSdp);
  int call = s.call();
  std::string relay = s.relayFromPush();
  REQUIRE(!relay.empty());
  CHECK(s.signIn(app, relay, "wrong") == 403);
  CHECK(statusesOf(app.lastRequestResponses()) == std::vector<int>{401, 403});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (const auto& r : app.requestsReceived()) CHECK(r.method != "INVITE");
  CHECK(s.caller.finalStatus(call) == 0);  // still ringing for the real app
  REQUIRE(s.caller.cancel(call));
}

TEST_CASE("relay: re-INVITE, UPDATE and INFO cross both ways, the app hangs up", "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  app.setInviteAnswer(200, kAppSdp);
  app.setRequestAnswer("INFO", 200);
  int call = s.call();
  REQUIRE(s.signIn(app, s.relayFromPush()) == 200);
  REQUIRE(s.caller.waitForFinal(call, 8000));
  REQUIRE(s.caller.finalStatus(call) == 200);
  s.caller.ack(call);
  REQUIRE(s.received(app, "ACK"));

  // A re-INVITE from the caller (hold): the app sees its SDP, the caller its answer.
  const std::string hold = kCallerSdp + "a=sendonly\r\n";
  CHECK(s.caller.inDialog(call, "INVITE", hold) == 200);
  CHECK(s.caller.lastRequestResponses().back().body == kAppSdp);
  bool saw_reinvite = false;
  for (const auto& r : app.requestsReceived()) saw_reinvite = saw_reinvite || (r.method == "INVITE" && r.body == hold);
  CHECK(saw_reinvite);
  CHECK(s.caller.inDialog(call, "INFO", "Signal=5\r\n", "application/dtmf-relay") == 200);
  const SipMessageRecord* info = s.received(app, "INFO");
  REQUIRE(info);
  CHECK(info->body == "Signal=5\r\n");

  // UPDATE from the caller, and a re-INVITE and INFO from the app, cross too.
  app.setRequestAnswer("UPDATE", 200);
  CHECK(s.caller.inDialog(call, "UPDATE", hold) == 200);
  REQUIRE(s.received(app, "UPDATE"));
  SipInviteAnswer caller_answer;
  caller_answer.status = 200;
  caller_answer.sdp = kCallerSdp;
  s.caller.setInviteAnswer(caller_answer);
  s.caller.setRequestAnswer("INFO", 200);
  const std::string app_hold = kAppSdp + "a=sendonly\r\n";
  CHECK(app.inReceivedDialog("INVITE", app_hold) == 200);
  CHECK(app.lastRequestResponses().back().body == kCallerSdp);
  CHECK(s.caller.waitForRequest([&](const SipMessageRecord& r) {
    return r.method == "INVITE" && r.body == app_hold;
  }, 5000));
  CHECK(app.inReceivedDialog("INFO", "Signal=1\r\n", "application/dtmf-relay") == 200);
  CHECK(s.caller.waitForRequest([](const SipMessageRecord& r) { return r.method == "INFO"; }, 5000));

  // The app hangs up: the caller gets the BYE.
  CHECK(app.hangUpReceived() == 200);
  CHECK(s.caller.waitForRequest([](const SipMessageRecord& r) { return r.method == "BYE"; }, 5000));
}

TEST_CASE("relay: with two apps the first answer wins, the other leg is cancelled", "[relay]") {
  RelayScenario s;
  SipTestUa slow(RelayScenario::appOptions()), fast(RelayScenario::appOptions());
  SipInviteAnswer ring;
  ring.ring_first = true;
  ring.status = 0;  // rings until cancelled
  slow.setInviteAnswer(ring);
  SipInviteAnswer answer;
  answer.ring_first = true;
  answer.status = 200;
  answer.sdp = kAppSdp;
  answer.final_delay_ms = 800;
  fast.setInviteAnswer(answer);
  int call = s.call();
  std::string relay = s.relayFromPush();
  REQUIRE(s.signIn(slow, relay) == 200);
  REQUIRE(s.signIn(fast, relay) == 200);
  REQUIRE(s.received(slow, "INVITE"));
  REQUIRE(s.received(fast, "INVITE"));
  REQUIRE(s.caller.waitForFinal(call, 8000));
  CHECK(s.caller.finalStatus(call) == 200);
  const SipMessageRecord* cancel = s.received(slow, "CANCEL");
  REQUIRE(cancel);
  CHECK(cancel->header("reason").find("cause=200") != std::string::npos);
  s.caller.ack(call);
  CHECK(s.caller.bye(call) == 200);
  CHECK(s.received(fast, "BYE"));
}

TEST_CASE("relay: T2 runs out while the app rings, 480 to the caller and CANCEL to the app", "[relay]") {
  RelayScenario s("20s", "2s");
  SipTestUa app(RelayScenario::appOptions());
  SipInviteAnswer ring;
  ring.ring_first = true;
  ring.status = 0;
  app.setInviteAnswer(ring);
  int call = s.call();
  REQUIRE(s.caller.waitForResponse(call, [](const SipMessageRecord& r) {
    return r.header("x-push-status") == "Push-Notification-Sent";
  }, 5000));
  auto ack = s.registrar.request("POST", "/v1/bindings/phone/devices/iphone/ack",
                                 json{{"call_id", s.caller.callId(call)}}.dump(),
                                 {{"Authorization", std::string("Bearer ") + kTenantKey},
                                  {"Content-Type", "application/json"}});
  REQUIRE(ack.status == 200);
  REQUIRE(s.signIn(app, s.relayFromPush()) == 200);
  REQUIRE(s.received(app, "INVITE"));
  REQUIRE(s.caller.waitForFinal(call, 8000));
  CHECK(s.caller.finalStatus(call) == 480);
  CHECK(s.caller.responses(call).back().header("x-push-reason") == "Device-Did-Not-Connect");
  CHECK(s.received(app, "CANCEL"));
}

TEST_CASE("relay: a registrar stopped during a relayed call exits cleanly", "[relay]") {
  RelayScenario s;
  SipTestUa app(RelayScenario::appOptions());
  app.setInviteAnswer(200, kAppSdp);
  int call = s.call();
  REQUIRE(s.signIn(app, s.relayFromPush()) == 200);
  REQUIRE(s.caller.waitForFinal(call, 8000));
  REQUIRE(s.caller.finalStatus(call) == 200);
  s.caller.ack(call);
  s.registrar.stop();  // SIGTERM with the dialog up: a clean exit, checked by stop()
}

TEST_CASE("relay: a registrar that died with a call ringing counts it when it is back", "[relay]") {
  RelayScenario s;
  int call = s.call();
  REQUIRE(s.caller.waitForResponse(call, [](const SipMessageRecord& r) {
    return r.header("x-push-status") == "Alerting-Device";
  }, 5000));
  REQUIRE(!s.relayFromPush().empty());  // the call's state is in Redis
  s.registrar.kill9();
  s.registrar.start();
  CHECK(waitUntil([&] { return s.registrar.metric("registrar_calls_lost_total") == 1; }, 5000));
  RedisClient redis(s.redis.port());
  auto keys = redis.keys("sipwake:call:*");
  REQUIRE(keys.size() == 1);
  CHECK(redis.hgetall(keys[0])["state"] == "ended");  // pushgw stops retrying it
  REQUIRE(s.caller.cancel(call));
}
