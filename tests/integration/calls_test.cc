// Incoming calls end to end: a caller UA calls through Kamailio; the registrar
// rings it and queues pushes; pushgw sends them to HTTP/2 servers that behave
// like APNs and FCM. Assertions are on what the caller received, what the
// mocks received, Redis and /metrics.

#include <chrono>
#include <set>
#include <thread>

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

constexpr const char* kApnsToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
constexpr const char* kFcmToken = "fcm-token-1";

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

json devices(std::vector<std::pair<std::string, std::string>> list) {
  json out = json::array();
  int n = 0;
  for (const auto& [provider, token] : list) {
    json d = {{"id", provider + std::to_string(++n)}, {"provider", provider}, {"token", token}};
    d["app"] = provider == "apns" ? "com.example.talk" : "example-project";
    out.push_back(d);
  }
  return out;
}

struct Scenario {
  explicit Scenario(RegistrarProcess::Env registrar_env = {})
      : registrar(redis.url(), withDefaults(std::move(registrar_env))),
        pushgw(redis.url(), push.apps_file, "pushgw-1") {}

  static RegistrarProcess::Env withDefaults(RegistrarProcess::Env env) {
    env.insert(env.begin(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "4s"},
                             {"REGISTRAR_CALL_DEVICE_CONNECT_TIMEOUT", "3s"}});
    return env;
  }

  // A registered binding for `user` with the given devices.
  void bind(const std::string& id, const std::string& user, const json& device_list) {
    json body = bindingBody(user, pbx.port(), "udp");
    body["devices"] = device_list;
    REQUIRE(registrar.put(id, body).status / 100 == 2);
    REQUIRE(registrar.waitForState(id, "registered", 10000));
  }
  std::string proxy() const { return "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp"; }
  int call(const std::string& user) {
    return caller.invite("sip:" + user + "@127.0.0.1", proxy(), "sip:alice@127.0.0.1", "Alice Caller",
                         "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                         "m=audio 40000 RTP/AVP 0\r\n");
  }
  bool waitFor180(int call, const std::string& status, int timeout_ms = 5000) {
    return caller.waitForPushStatus(call, status, timeout_ms);
  }

  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar;
  PushgwProcess pushgw;
  SipTestUa caller;
};

}  // namespace

TEST_CASE("a call rings at once and pushes APNs and FCM with the contract's payload", "[calls]") {
  const std::uint16_t device_port = freePort();
  Scenario s(RegistrarProcess::Env{{"REGISTRAR_DEVICE_LISTEN", "127.0.0.1:" + std::to_string(device_port)}});
  s.bind("phone", "1000", devices({{"apns", kApnsToken}, {"fcm", kFcmToken}}));
  // Where the woken app signs in: the device listener, the binding's token.
  std::string contact = s.registrar.binding("phone")["contact"];
  const std::string relay = "sip:" + contact.substr(4, contact.find('@') - 4) + "@127.0.0.1:" +
                            std::to_string(device_port) + ";transport=tcp";
  int call = s.call("1000");
  REQUIRE(s.waitFor180(call, "Alerting-Device"));
  REQUIRE(s.waitFor180(call, "Push-Notification-Sent"));
  std::string call_id = s.caller.callId(call);

  auto apns = s.push.apns->pushesFor(kApnsToken);
  REQUIRE(apns.size() == 1);
  const auto& a = apns[0];
  CHECK(a.status == 200);
  CHECK(a.headers.at("apns-push-type") == "voip");
  CHECK(a.headers.at("apns-topic") == "com.example.talk.voip");
  CHECK(a.headers.at("apns-priority") == "10");
  CHECK(std::stoll(a.headers.at("apns-expiration")) > 0);
  CHECK(a.headers.count("apns-collapse-id") == 1);
  CHECK(a.body["type"] == "call");
  CHECK(a.body["binding"] == "phone");
  CHECK(a.body["call_id"] == call_id);
  CHECK(a.body["from"] == "sip:alice@127.0.0.1");
  CHECK(a.body["from_name"] == "Alice Caller");
  CHECK(a.body["to"] == "sip:1000@127.0.0.1");
  CHECK(a.body["sent_at"].is_number_integer());
  CHECK(a.body["aps"].is_object());
  CHECK(a.body["relay"] == relay);

  REQUIRE(waitUntil([&] { return s.push.fcm->pushesFor(kFcmToken).size() == 1; }, 5000));
  auto f = s.push.fcm->pushesFor(kFcmToken)[0];
  CHECK(f.status == 200);
  CHECK(f.headers.at("authorization").rfind("Bearer ya29.mock-", 0) == 0);
  const json& message = f.body["message"];
  CHECK(message["android"]["priority"] == "high");
  CHECK(message["android"]["ttl"].get<std::string>().back() == 's');
  CHECK(message["data"]["type"] == "call");
  CHECK(message["data"]["call_id"] == call_id);
  CHECK(message["data"]["relay"] == relay);
  for (const auto& [k, v] : message["data"].items()) CHECK(v.is_string());

  // The caller keeps ringing until T1 (4 s): 480 with the reason.
  REQUIRE(s.caller.waitForFinal(call, 8000));
  CHECK(s.caller.finalStatus(call) == 480);
  auto final_response = s.caller.responses(call).back();
  CHECK(final_response.header("x-push-reason") == "No-Response-From-Device");
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"no_device_ack\"") == 1);
  CHECK(s.pushgw.metric("pushgw_pushes_total", "provider=\"apns\",result=\"delivered\"") >= 1);
  CHECK(s.pushgw.metric("invite_to_push_seconds_count") == 2);
}

TEST_CASE("an ack on the fast channel: Device-Making-Progress, then T2's 480", "[calls]") {
  Scenario s;
  s.bind("phone", "1001", devices({{"apns", kApnsToken}}));
  int call = s.call("1001");
  REQUIRE(s.waitFor180(call, "Push-Notification-Sent"));
  auto ack = s.registrar.request("POST", "/v1/bindings/phone/devices/apns1/ack",
                                 json{{"call_id", s.caller.callId(call)}}.dump(),
                                 {{"Authorization", std::string("Bearer ") + kTenantKey},
                                  {"Content-Type", "application/json"}});
  CHECK(ack.status == 200);
  REQUIRE(s.waitFor180(call, "Device-Making-Progress", 2000));
  auto acked_at = std::chrono::steady_clock::now();
  REQUIRE(s.caller.waitForFinal(call, 8000));
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - acked_at).count();
  CHECK(s.caller.finalStatus(call) == 480);
  CHECK(s.caller.responses(call).back().header("x-push-reason") == "Device-Did-Not-Connect");
  CHECK(waited > 2.5);  // T2 (3 s) counted from the ack, not T1 from the INVITE
  auto unknown = s.registrar.request("POST", "/v1/bindings/phone/devices/apns1/ack",
                                     json{{"call_id", "no-such-call"}}.dump(),
                                     {{"Authorization", std::string("Bearer ") + kTenantKey}});
  CHECK(unknown.status == 404);
  CHECK(unknown.body.find("call_not_found") != std::string::npos);
}

TEST_CASE("redirect mode: the ack's contact reaches the caller in a 302", "[calls]") {
  Scenario s(RegistrarProcess::Env{{"REGISTRAR_CALL_MODE", "redirect"}});
  s.bind("phone", "1010", devices({{"apns", kApnsToken}}));
  int call = s.call("1010");
  REQUIRE(s.waitFor180(call, "Push-Notification-Sent"));
  auto ack = [&](const json& body) {
    return s.registrar.request("POST", "/v1/bindings/phone/devices/apns1/ack", body.dump(),
                               {{"Authorization", std::string("Bearer ") + kTenantKey},
                                {"Content-Type", "application/json"}});
  };
  // A contact that would break the header is refused, and the call rings on.
  auto bad = ack({{"call_id", s.caller.callId(call)}, {"contact", "sip:app@127.0.0.1>\r\nX-Evil: 1"}});
  CHECK(bad.status == 400);
  CHECK(bad.body.find("invalid_field") != std::string::npos);
  CHECK(s.caller.finalStatus(call) == 0);

  auto good = ack({{"call_id", s.caller.callId(call)}, {"contact", "sip:app@127.0.0.1:5099;transport=tcp"}});
  CHECK(good.status == 200);
  REQUIRE(s.caller.waitForFinal(call, 5000));
  CHECK(s.caller.finalStatus(call) == 302);
  CHECK(s.caller.responses(call).back().header("contact").find("sip:app@127.0.0.1:5099;transport=tcp") !=
        std::string::npos);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"redirected\"") == 1);
}

TEST_CASE("CANCEL: 487 and a call_cancelled push, answered elsewhere says so", "[calls]") {
  Scenario s;
  s.bind("phone", "1002", devices({{"apns", kApnsToken}, {"fcm", kFcmToken}}));
  int first = s.call("1002");
  REQUIRE(s.waitFor180(first, "Alerting-Device"));
  REQUIRE(s.caller.cancel(first));
  REQUIRE(s.caller.waitForFinal(first, 5000));
  CHECK(s.caller.finalStatus(first) == 487);
  int second = s.call("1002");
  REQUIRE(s.waitFor180(second, "Alerting-Device"));
  REQUIRE(s.caller.cancel(second, "SIP;cause=200;text=\"Call completed elsewhere\""));
  REQUIRE(s.caller.waitForFinal(second, 5000));
  CHECK(s.caller.finalStatus(second) == 487);

  auto cancelled = [&](const std::string& call_id) {
    std::vector<MockPush> out;
    for (const auto& p : s.push.apns->pushesFor(kApnsToken)) {
      if (p.body.value("type", "") == "call_cancelled" && p.body.value("call_id", "") == call_id) out.push_back(p);
    }
    return out;
  };
  REQUIRE(waitUntil([&] { return cancelled(s.caller.callId(second)).size() == 1; }, 5000));
  REQUIRE(cancelled(s.caller.callId(first)).size() == 1);
  CHECK(cancelled(s.caller.callId(first))[0].body["answered_elsewhere"] == false);
  CHECK(cancelled(s.caller.callId(second))[0].body["answered_elsewhere"] == true);
  REQUIRE(waitUntil([&] {
    for (const auto& p : s.push.fcm->pushesFor(kFcmToken)) {
      if (p.body["message"]["data"].value("type", "") == "call_cancelled" &&
          p.body["message"]["data"].value("answered_elsewhere", "") == "true")
        return true;
    }
    return false;
  }, 5000));
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"cancelled\"") == 2);
}

TEST_CASE("a call push is retried while the call rings, never after it ended", "[calls]") {
  Scenario s;
  const std::string failing = "0500" + std::string(60, 'e');  // APNs answers 500, always
  s.bind("phone", "1009", devices({{"apns", failing}}));
  int call = s.call("1009");
  REQUIRE(s.waitFor180(call, "Alerting-Device"));
  auto attempts = [&] {
    std::size_t n = 0;
    for (const auto& p : s.push.apns->pushesFor(failing)) n += p.body.value("type", "") == "call";
    return n;
  };
  REQUIRE(waitUntil([&] { return attempts() >= 2; }, 5000));  // retried (200 ms base in tests)
  REQUIRE(s.caller.cancel(call));
  REQUIRE(s.caller.waitForFinal(call, 5000));
  sleepMs(300);  // an attempt already under way may still land
  std::size_t at_cancel = attempts();
  sleepMs(3000);  // several back-off periods (max 2 s in tests)
  CHECK(attempts() == at_cancel);
  CHECK(s.pushgw.metric("pushgw_pushes_total", "result=\"retry_later\"") >= 2);
}

TEST_CASE("MESSAGE: 202 and a message push carrying sender and body", "[calls]") {
  Scenario s;
  s.bind("phone", "1003", devices({{"apns", kApnsToken}}));
  int status = s.caller.message("sip:1003@127.0.0.1", s.proxy(), "sip:bob@127.0.0.1", "See you at 5");
  CHECK(status == 202);
  REQUIRE(waitUntil([&] { return !s.push.apns->pushesFor(kApnsToken).empty(); }, 5000));
  auto p = s.push.apns->pushesFor(kApnsToken)[0];
  CHECK(p.body["type"] == "message");
  CHECK(p.body["from"] == "sip:bob@127.0.0.1");
  CHECK(p.body["body"] == "See you at 5");
}

TEST_CASE("provider answers: gone tokens removed, 503 retried, expired credentials refreshed",
          "[calls]") {
  Scenario s;
  const std::string gone_apns = "0410" + std::string(60, 'a');
  const std::string retry_apns = "0503" + std::string(60, 'b');
  const std::string expired_jwt_apns = "0403" + std::string(60, 'c');
  const std::string gone_fcm = "unreg-token", auth_fcm = "auth-token", bad_fcm = "badtok-1";
  s.bind("phone", "1004", devices({{"apns", gone_apns}, {"apns", retry_apns},
                                   {"apns", expired_jwt_apns}, {"fcm", gone_fcm},
                                   {"fcm", auth_fcm}, {"fcm", bad_fcm}}));
  int call = s.call("1004");
  REQUIRE(s.waitFor180(call, "Push-Notification-Sent"));
  // 503: retried and delivered. Expired provider token: a new one, delivered.
  REQUIRE(waitUntil([&] { return s.push.apns->pushesFor(retry_apns).size() == 2; }, 8000));
  CHECK(s.push.apns->pushesFor(retry_apns)[0].status == 503);
  CHECK(s.push.apns->pushesFor(retry_apns)[1].status == 200);
  REQUIRE(waitUntil([&] { return s.push.apns->pushesFor(expired_jwt_apns).size() == 2; }, 8000));
  CHECK(s.push.apns->pushesFor(expired_jwt_apns)[1].status == 200);
  CHECK(s.push.apns->providerTokensSeen() >= 2);
  // FCM 401: a new access token, delivered.
  REQUIRE(waitUntil([&] { return s.push.fcm->pushesFor(auth_fcm).size() == 2; }, 8000));
  CHECK(s.push.fcm->pushesFor(auth_fcm)[1].status == 200);
  CHECK(s.push.fcm->accessTokensIssued() >= 2);

  // 410 / UNREGISTERED / token INVALID_ARGUMENT: gone from the binding...
  json binding;
  REQUIRE(waitUntil([&] {
    binding = s.registrar.binding("phone");
    return binding["devices"].size() == 3;
  }, 5000));
  INFO(binding.dump());
  std::set<std::string> left;
  for (const auto& d : binding["devices"]) left.insert(d["id"].get<std::string>());
  CHECK(left == std::set<std::string>{"apns2", "apns3", "fcm5"});
  CHECK(s.pushgw.metric("pushgw_tokens_removed_total") == 3);
  REQUIRE(s.caller.waitForFinal(call, 8000));
  // ...and never pushed again. (A push that raced the FCM 401 above was
  // answered 401 first and resent with the new access token, so the counts
  // before the second call are what must not change.)
  size_t apns_before = s.push.apns->pushesFor(gone_apns).size();
  size_t unreg_before = s.push.fcm->pushesFor(gone_fcm).size();
  size_t bad_before = s.push.fcm->pushesFor(bad_fcm).size();
  CHECK(s.push.fcm->pushesFor(bad_fcm).back().status == 400);
  CHECK(s.push.fcm->pushesFor(gone_fcm).back().status == 404);
  CHECK(s.push.apns->pushesFor(gone_apns).back().status == 410);
  int again = s.call("1004");
  REQUIRE(s.waitFor180(again, "Push-Notification-Sent"));
  REQUIRE(waitUntil([&] { return s.push.apns->pushesFor(retry_apns).size() == 3; }, 5000));
  sleepMs(300);
  CHECK(s.push.apns->pushesFor(gone_apns).size() == apns_before);
  CHECK(s.push.fcm->pushesFor(gone_fcm).size() == unreg_before);
  CHECK(s.push.fcm->pushesFor(bad_fcm).size() == bad_before);

  // Credentials never reach the log or the metrics: keys, provider tokens
  // (JWTs start "eyJ"), access tokens.
  for (const std::string& text : {s.pushgw.log(), s.pushgw.metricsText()}) {
    CHECK(text.find("PRIVATE KEY") == std::string::npos);
    CHECK(text.find("eyJ") == std::string::npos);
    CHECK(text.find("ya29.") == std::string::npos);
  }
}

TEST_CASE("a binding whose last token is gone is un-registered and deleted", "[calls]") {
  Scenario s;
  const std::string gone = "0410" + std::string(60, 'd');
  s.bind("lonely", "1005", devices({{"apns", gone}}));
  std::string contact = s.registrar.binding("lonely")["contact"];
  int call = s.call("1005");
  REQUIRE(s.waitFor180(call, "Alerting-Device"));
  REQUIRE(waitUntil([&] { return s.registrar.get("lonely").status == 404; }, 8000));
  CHECK(s.pbx.contacts("1005").empty());
}

TEST_CASE("a pushgw killed with jobs in flight: another one delivers them all", "[calls]") {
  Scenario s;
  s.bind("phone", "1006", devices({{"apns", kApnsToken}}));
  s.push.apns->setHang(true);  // pushgw-1 reads the jobs, sends them, never hears back
  const int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(s.caller.message("sip:1006@127.0.0.1", s.proxy(), "sip:bob@127.0.0.1",
                             "message " + std::to_string(i)) == 202);
  }
  REQUIRE(waitUntil([&] { return s.push.apns->pushes().size() >= 1; }, 5000));
  s.pushgw.kill9();
  s.push.apns->setHang(false);
  PushgwProcess second(s.redis.url(), s.push.apps_file, "pushgw-2");
  // Delivered exactly once, or at most twice where reclaimed; none lost.
  REQUIRE(waitUntil([&] {
    std::set<std::string> delivered;
    for (const auto& p : s.push.apns->pushes()) {
      if (p.status == 200) delivered.insert(p.body.value("body", ""));
    }
    return delivered.size() == kMessages;
  }, 20000));
  std::map<std::string, int> times;
  for (const auto& p : s.push.apns->pushes()) {
    if (p.status == 200) ++times[p.body.value("body", "")];
  }
  for (const auto& [body, n] : times) {
    INFO(body);
    CHECK(n <= 2);
  }
  RedisClient redis(s.redis.port());
  REQUIRE(waitUntil([&] {
    auto pending = redis.command({"XPENDING", "sipwake:push:jobs", "pushgw"});
    return !pending.elements.empty() && pending.elements[0].integer == 0;
  }, 10000));
}

TEST_CASE("a pushgw stopped with SIGTERM finishes the pushes under way first", "[calls]") {
  Scenario s;
  s.bind("phone", "1011", devices({{"apns", kApnsToken}}));
  s.push.apns->setDelay(150);  // ten pushes take about 1.5 s to answer
  const int kMessages = 10;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(s.caller.message("sip:1011@127.0.0.1", s.proxy(), "sip:bob@127.0.0.1",
                             "message " + std::to_string(i)) == 202);
  }
  REQUIRE(waitUntil([&] { return s.push.apns->pushCount() >= 1; }, 5000));
  s.pushgw.stop();  // SIGTERM, clean exit expected
  std::set<std::string> delivered;
  for (const auto& p : s.push.apns->pushes()) {
    if (p.status == 200) delivered.insert(p.body.value("body", ""));
  }
  CHECK(delivered.size() == kMessages);
  RedisClient redis(s.redis.port());
  auto pending = redis.command({"XPENDING", "sipwake:push:jobs", "pushgw"});
  REQUIRE(!pending.elements.empty());
  CHECK(pending.elements[0].integer == 0);
  CHECK(s.pushgw.log().find("jobs left pending") == std::string::npos);
}

TEST_CASE("bad input: foreign INVITEs, unknown contacts, malformed SIP, garbage jobs", "[calls]") {
  Scenario s;
  s.bind("phone", "1007", devices({{"apns", kApnsToken}}));
  std::string contact = s.registrar.binding("phone")["contact"];
  std::string registrar_sip = "sip:127.0.0.1:" + std::to_string(s.registrar.sipPort()) + ";transport=udp";

  // From 127.0.0.2: not the binding's PBX.
  SipTestUaOptions foreign_options;
  foreign_options.bind_ip = "127.0.0.2";
  SipTestUa foreign(foreign_options);
  int spoofed = foreign.invite(contact.substr(0, contact.find(';')), registrar_sip, "sip:mallory@127.0.0.2");
  REQUIRE(foreign.waitForFinal(spoofed, 5000));
  CHECK(foreign.finalStatus(spoofed) == 403);
  int message = foreign.message(contact.substr(0, contact.find(';')), registrar_sip, "sip:mallory@127.0.0.2", "spam");
  CHECK(message == 403);

  // An unknown Contact.
  int unknown = s.caller.invite("sip:nobody@127.0.0.1:" + std::to_string(s.registrar.sipPort()),
                                registrar_sip, "sip:alice@127.0.0.1");
  REQUIRE(s.caller.waitForFinal(unknown, 5000));
  CHECK(s.caller.finalStatus(unknown) == 404);

  // Garbage on the wire, and a garbage push job.
  SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", s.registrar.sipPort(), "INVITE garbage\r\n\r\n");
  SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", s.registrar.sipPort(), std::string(3000, '\x01'));
  RedisClient redis(s.redis.port());
  redis.command({"XADD", "sipwake:push:jobs", "*", "job", "{not json"});
  redis.command({"XADD", "sipwake:push:jobs", "*", "job", R"({"type":"call","tenant":"acme"})"});
  REQUIRE(waitUntil([&] {
    auto dead = redis.command({"XLEN", "sipwake:push:dead"});
    return dead.integer == 2;
  }, 5000));
  CHECK(waitUntil([&] { return s.pushgw.metric("pushgw_dead_letters_total", "cause=\"malformed\"") == 2; },
                  3000));

  // Nothing was pushed; both services still work.
  sleepMs(300);
  CHECK(s.push.apns->pushes().empty());
  CHECK(s.registrar.running());
  CHECK(s.pushgw.running());
  int call = s.call("1007");
  REQUIRE(s.waitFor180(call, "Push-Notification-Sent"));
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"foreign_source\"") == 1);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"not_found\"") == 1);
}

TEST_CASE("a retransmitted or merged INVITE never pushes twice, malformed requests get 400", "[calls]") {
  Scenario s;
  s.bind("phone", "1008", devices({{"apns", kApnsToken}}));
  std::string contact = s.registrar.binding("phone")["contact"];
  std::string uri = contact.substr(0, contact.find(';'));
  uint16_t port = s.registrar.sipPort();
  auto invite = [&](const std::string& branch) {
    return "INVITE " + uri + " SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=" + branch + "\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=rt1\r\nTo: <sip:1008@127.0.0.1>\r\n"
           "Call-ID: retransmitted-1@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
           "Contact: <sip:alice@127.0.0.1:5999>\r\nContent-Length: 0\r\n\r\n";
  };
  // The raw sender is 127.0.0.1, the PBX's address: strict source lets it in.
  std::string first = SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", port, invite("z9hG4bK-rt-1"), 500);
  CHECK(first.find("SIP/2.0 180 Ringing") != std::string::npos);
  // The retransmission (same branch) is absorbed by the transaction layer; its
  // answer goes to the first sender's port, closed by now, so what shows it is
  // that it was neither a new call nor a merged request (counted below).
  SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", port, invite("z9hG4bK-rt-1"), 300);
  std::string merged = SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", port, invite("z9hG4bK-rt-2"), 500);
  CHECK(merged.rfind("SIP/2.0 482", 0) == 0);
  REQUIRE(waitUntil([&] { return !s.push.apns->pushesFor(kApnsToken).empty(); }, 5000));
  sleepMs(500);
  CHECK(s.push.apns->pushesFor(kApnsToken).size() == 1);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"duplicate\"") == 1);

  // Parseable but broken: a CSeq that is not one, a request without Call-ID.
  std::string bad_cseq = invite("z9hG4bK-rt-3");
  bad_cseq.replace(bad_cseq.find("CSeq: 1 INVITE"), 14, "CSeq: one INVITE");
  CHECK(SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", port, bad_cseq, 500).rfind("SIP/2.0 400", 0) == 0);
  std::string no_call_id = invite("z9hG4bK-rt-4");
  no_call_id.erase(no_call_id.find("Call-ID:"), no_call_id.find("CSeq:") - no_call_id.find("Call-ID:"));
  std::string reply = SipTestUa::sendRawUdp("127.0.0.1", "127.0.0.1", port, no_call_id, 500);
  INFO(reply);
  CHECK(reply.rfind("SIP/2.0 400", 0) == 0);
  sleepMs(300);
  CHECK(s.push.apns->pushesFor(kApnsToken).size() == 1);
  CHECK(s.registrar.running());
}
