// Diagnostics for one binding, end to end (issue 6): the trace of its SIP
// messages and push attempts, GET explaining why it is not registered, a test
// push reporting each provider's answer, and the binding_expiring warnings.
// Real redis-server, Kamailio as the PBX, our registrar and pushgw, HTTP/2
// mocks of APNs and FCM.

#include <chrono>
#include <regex>
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
constexpr const char* kGoneToken = "0410d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90ab";
constexpr const char* kFcmToken = "fcm-token-diagnostics-1";

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

json device(const std::string& id, const std::string& provider, const std::string& token) {
  return {{"id", id},
          {"provider", provider},
          {"token", token},
          {"app", provider == "apns" ? "com.example.talk" : "example-project"}};
}

HttpReply call(RegistrarProcess& r, const std::string& method, const std::string& target,
               const std::string& key = kTenantKey) {
  return r.request(method, target, "", {{"Authorization", "Bearer " + key}});
}

json traceOf(RegistrarProcess& r, const std::string& id) {
  HttpReply reply = call(r, "GET", "/v1/bindings/" + id + "/trace");
  REQUIRE(reply.status == 200);
  return json::parse(reply.body);
}

// A field of a trace entry, "" when absent (const json's [] must not miss).
std::string str(const json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int num(const json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_number_integer() ? it->get<int>() : 0;
}
std::string header(const json& e, const char* name) {
  auto it = e.find("headers");
  return it != e.end() ? str(*it, name) : std::string();
}

bool hasEntry(const json& trace, const std::function<bool(const json&)>& match) {
  for (const auto& e : trace["entries"]) {
    if (match(e)) return true;
  }
  return false;
}

struct Services {
  explicit Services(RegistrarProcess::Env env = {}, bool with_apps = true)
      : registrar(redis.url(), std::move(env)),
        pushgw(redis.url(), with_apps ? push.apps_file : "", "pushgw-1") {}

  void bind(const std::string& id, const std::string& user, const json& devices,
            const std::string& password = "") {
    json body = bindingBody(user, pbx.port(), "udp", password);
    body["devices"] = devices;
    REQUIRE(registrar.put(id, body).status / 100 == 2);
  }

  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar;
  PushgwProcess pushgw;
};

}  // namespace

TEST_CASE("trace: REGISTER, 401, REGISTER, 200 and a call's INVITE and push, redacted", "[diagnostics]") {
  Services s(RegistrarProcess::Env{{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "2s"}});
  s.bind("phone", "1100", json::array({device("iphone", "apns", kApnsToken), device("pixel", "fcm", kFcmToken)}));
  REQUIRE(s.registrar.waitForState("phone", "registered", 10000));

  SipTestUa caller;
  int invite = caller.invite("sip:1100@127.0.0.1",
                             "sip:127.0.0.1:" + std::to_string(s.pbx.port()) + ";transport=udp",
                             "sip:alice@127.0.0.1", "Alice",
                             "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                             "m=audio 40000 RTP/AVP 0\r\n");
  REQUIRE(caller.waitForResponse(invite, [](const SipMessageRecord& r) {
    return r.status == 180 && r.header("x-push-status") == "Push-Notification-Sent";
  }, 5000));
  REQUIRE(caller.waitForFinal(invite, 6000));
  std::string call_id = caller.callId(invite);

  json trace;
  // Written behind: the attempts of both providers land within a flush or two.
  REQUIRE(waitUntil([&] {
    trace = traceOf(s.registrar, "phone");
    return hasEntry(trace, [](const json& e) { return str(e, "event") == "attempt" && str(e, "provider") == "fcm"; }) &&
           hasEntry(trace, [](const json& e) { return str(e, "kind") == "sip" && num(e, "status") == 480; });
  }, 5000));
  INFO(trace.dump(2));
  CHECK(trace["id"] == "phone");
  const json& entries = trace["entries"];

  // The registration, in order: REGISTER without credentials, 401, REGISTER with them, 200.
  std::vector<json> registration;
  for (const auto& e : entries) {
    if (str(e, "kind") != "sip") continue;
    if (str(e, "method") == "REGISTER" || (str(e, "method").empty() && str(e, "direction") == "in")) {
      registration.push_back(e);
    }
  }
  REQUIRE(registration.size() >= 4);
  CHECK(registration[0]["summary"].get<std::string>().rfind("REGISTER sip:127.0.0.1", 0) == 0);
  CHECK(header(registration[0], "Authorization").empty());
  CHECK(num(registration[1], "status") == 401);
  CHECK(header(registration[1], "WWW-Authenticate").find("nonce=\"…\"") != std::string::npos);
  CHECK(str(registration[2], "method") == "REGISTER");
  const std::string auth = header(registration[2], "Authorization");
  CHECK(auth.find("username=\"1100\"") != std::string::npos);
  CHECK(auth.find("response=\"…\"") != std::string::npos);
  CHECK(auth.find("cnonce=\"…\"") != std::string::npos);
  CHECK(num(registration[3], "status") == 200);
  CHECK(num(registration[2], "cseq") == num(registration[0], "cseq") + 1);
  for (const auto& e : registration) CHECK(str(e, "at").back() == 'Z');

  // The call: INVITE in, 100 and 180 out, the pushes queued and answered.
  CHECK(hasEntry(trace, [&](const json& e) {
    return str(e, "method") == "INVITE" && str(e, "direction") == "in" && str(e, "call_id") == call_id;
  }));
  CHECK(hasEntry(trace, [&](const json& e) {
    return str(e, "direction") == "out" && num(e, "status") == 180 && str(e, "call_id") == call_id &&
           header(e, "X-Push-Status") == "Alerting-Device";
  }));
  CHECK(hasEntry(trace, [&](const json& e) {
    return str(e, "event") == "queued" && str(e, "type") == "call" && str(e, "device") == "iphone" &&
           str(e, "call_id") == call_id && str(e, "token") == "a1b2c3d4…";
  }));
  CHECK(hasEntry(trace, [&](const json& e) {
    return str(e, "event") == "attempt" && str(e, "type") == "call" && str(e, "provider") == "apns" &&
           num(e, "status") == 200 && str(e, "result") == "delivered" && str(e, "token") == "a1b2c3d4…";
  }));
  CHECK(hasEntry(trace, [&](const json& e) {
    return str(e, "direction") == "out" && num(e, "status") == 480 && str(e, "call_id") == call_id;
  }));

  // Nothing secret: no password, no full token, no digest value.
  const std::string text = trace.dump();
  CHECK(text.find("pw-1100") == std::string::npos);
  CHECK(text.find(kApnsToken) == std::string::npos);
  CHECK(text.find(kFcmToken) == std::string::npos);
  std::smatch m;
  std::regex secret(R"re((^|[^a-z])(response|nonce|cnonce)=(\\"[^\\…]|[^\\…"]))re");
  CHECK_FALSE(std::regex_search(text, m, secret));

  // ?limit=N gives the newest N; others are refused; tenants stay apart.
  HttpReply two = call(s.registrar, "GET", "/v1/bindings/phone/trace?limit=2");
  REQUIRE(two.status == 200);
  CHECK(json::parse(two.body)["entries"].size() == 2);
  CHECK(json::parse(two.body)["entries"].back() == entries.back());
  CHECK(call(s.registrar, "GET", "/v1/bindings/phone/trace?limit=0").status == 400);
  CHECK(call(s.registrar, "GET", "/v1/bindings/phone/trace?verbose=1").status == 400);
  CHECK(call(s.registrar, "GET", "/v1/bindings/phone/trace", kOtherTenantKey).status == 404);
  CHECK(call(s.registrar, "GET", "/v1/bindings/nobody/trace").status == 404);
  CHECK(call(s.registrar, "POST", "/v1/bindings/phone/trace").status == 405);
  CHECK(call(s.registrar, "GET", "/v1/bindings/phone/trace", "wrong-key").status == 401);
}

TEST_CASE("trace off: no trace is kept and the path says so", "[diagnostics]") {
  Services s(RegistrarProcess::Env{{"REGISTRAR_TRACE_ENABLED", "false"}});
  s.bind("phone", "1101", json::array({device("iphone", "apns", kApnsToken)}));
  REQUIRE(s.registrar.waitForState("phone", "registered", 10000));
  HttpReply reply = call(s.registrar, "GET", "/v1/bindings/phone/trace");
  CHECK(reply.status == 404);
  CHECK(reply.body.find("trace_disabled") != std::string::npos);
  CHECK_FALSE(RedisClient(s.redis.port()).exists("sipwake:trace:{acme/phone}"));
}

TEST_CASE("GET explains a binding the PBX refuses: the answer, the count, the next attempt", "[diagnostics]") {
  Services s(RegistrarProcess::Env{{"REGISTRAR_REGISTRATION_BACKOFF_BASE", "3s"}, {"REGISTRAR_REGISTRATION_MAX_REJECTIONS", "2"}});
  s.bind("phone", "1102", json::array({device("iphone", "apns", kApnsToken)}), "wrong-password");
  REQUIRE(s.registrar.waitForState("phone", "retrying", 10000));
  json b = s.registrar.binding("phone");
  INFO(b.dump(2));
  CHECK(b["last_response"]["code"] == 401);
  CHECK(b["failures"] == 1);
  CHECK(b["next_attempt_at"].is_string());
  const std::string reason = b["reason"];
  CHECK(reason.find("the PBX rejected our credentials (401 Unauthorized) 1 time") != std::string::npos);
  CHECK(reason.find("next attempt at " + b["next_attempt_at"].get<std::string>()) != std::string::npos);

  // The second rejection fails it for good, and the reason says so.
  REQUIRE(s.registrar.waitForState("phone", "failed", 10000));
  b = s.registrar.binding("phone");
  CHECK(b["next_attempt_at"].is_null());
  CHECK(b["reason"].get<std::string>().find("gave up: the PBX rejected the credentials repeatedly") !=
        std::string::npos);
  // The trace shows the challenges answered and rejected, still without secrets.
  json trace = traceOf(s.registrar, "phone");
  int rejected = 0;
  for (const auto& e : trace["entries"]) {
    rejected += num(e, "status") == 401 && !header(e, "WWW-Authenticate").empty();
  }
  CHECK(rejected >= 3);
  CHECK(trace.dump().find("wrong-password") == std::string::npos);
}

TEST_CASE("test-push: each provider's answer, a gone token removed", "[diagnostics]") {
  Services s;
  s.bind("phone", "1103", json::array({device("iphone", "apns", kApnsToken), device("old", "apns", kGoneToken),
                                       device("pixel", "fcm", kFcmToken)}));
  HttpReply reply = call(s.registrar, "POST", "/v1/bindings/phone/test-push");
  REQUIRE(reply.status == 200);
  json results = json::parse(reply.body)["results"];
  INFO(reply.body);
  REQUIRE(results.size() == 3);
  CHECK(results[0] == json{{"device", "iphone"}, {"provider", "apns"}, {"status", 200}, {"result", "delivered"}, {"reason", "ok"}});
  CHECK(results[1]["device"] == "old");
  CHECK(results[1]["status"] == 410);
  CHECK(results[1]["result"] == "token_removed");
  CHECK(results[1]["reason"] == "Unregistered");
  CHECK(results[2]["device"] == "pixel");
  CHECK(results[2]["provider"] == "fcm");
  CHECK(results[2]["status"] == 200);
  CHECK(results[2]["result"] == "delivered");

  // APNs got an alert (a VoIP push reporting no call would get the app killed).
  auto pushed = s.push.apns->pushesFor(kApnsToken);
  REQUIRE(pushed.size() == 1);
  CHECK(pushed[0].headers.at("apns-push-type") == "alert");
  CHECK(pushed[0].headers.at("apns-topic") == "com.example.talk");
  CHECK(pushed[0].body["type"] == "test");
  CHECK(pushed[0].body["binding"] == "phone");
  REQUIRE(waitUntil([&] { return s.push.fcm->pushesFor(kFcmToken).size() == 1; }, 2000));
  CHECK(s.push.fcm->pushesFor(kFcmToken)[0].body["message"]["data"]["type"] == "test");
  // The gone token left the binding.
  REQUIRE(waitUntil([&] { return s.registrar.binding("phone")["devices"].size() == 2; }, 3000));

  CHECK(call(s.registrar, "POST", "/v1/bindings/nobody/test-push").status == 404);
  CHECK(call(s.registrar, "POST", "/v1/bindings/phone/test-push", kOtherTenantKey).status == 404);
  CHECK(call(s.registrar, "GET", "/v1/bindings/phone/test-push").status == 405);
}

TEST_CASE("test-push: the log provider's answer, and a timeout without pushgw", "[diagnostics]") {
  {
    Services s({}, /*with_apps=*/false);
    s.bind("phone", "1104", json::array({device("iphone", "apns", kApnsToken)}));
    HttpReply reply = call(s.registrar, "POST", "/v1/bindings/phone/test-push");
    REQUIRE(reply.status == 200);
    INFO(reply.body);
    json r = json::parse(reply.body)["results"];
    REQUIRE(r.size() == 1);
    CHECK(r[0] == json{{"device", "iphone"}, {"provider", "log"}, {"status", nullptr}, {"result", "delivered"}, {"reason", "logged"}});
  }
  {
    Services s(RegistrarProcess::Env{{"REGISTRAR_PUSH_TEST_TIMEOUT", "1500ms"}});
    s.pushgw.stop();
    s.bind("phone", "1105", json::array({device("iphone", "apns", kApnsToken)}));
    auto started = std::chrono::steady_clock::now();
    HttpReply reply = call(s.registrar, "POST", "/v1/bindings/phone/test-push");
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    REQUIRE(reply.status == 200);
    json r = json::parse(reply.body)["results"];
    REQUIRE(r.size() == 1);
    CHECK(r[0]["result"] == "timeout");
    CHECK(r[0]["status"].is_null());
    CHECK(waited >= 1.4);
    CHECK(waited < 5);
  }
}

TEST_CASE("binding_expiring: each warning once before the TTL, a PUT re-arms them", "[diagnostics]") {
  Services s(RegistrarProcess::Env{{"REGISTRAR_REGISTRATION_BINDING_TTL", "6s"}, {"REGISTRAR_EXPIRY_WARNINGS", "4s,2s"}});
  auto warnings = [&] {
    std::vector<MockPush> out;
    for (const auto& p : s.push.apns->pushesFor(kApnsToken)) {
      if (p.body.value("type", "") == "binding_expiring") out.push_back(p);
    }
    return out;
  };
  json devices = json::array({device("iphone", "apns", kApnsToken), device("pixel", "fcm", kFcmToken)});
  auto put_at = std::chrono::system_clock::now();
  auto ms = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  };
  s.bind("phone", "1106", devices);
  REQUIRE(waitUntil([&] { return warnings().size() == 1; }, 4000));
  auto first = warnings()[0];
  CHECK(first.headers.at("apns-push-type") == "alert");
  CHECK(first.body["binding"] == "phone");
  long long expires_at = first.body["expires_at"];
  CHECK(std::llabs(expires_at - (ms(put_at) + 6000)) < 1000);
  CHECK(first.body["sent_at"].get<long long>() - ms(put_at) >= 1500);  // 4 s before 6 s

  // The app PUTs again: a new generation, both warnings come again.
  auto reput_at = std::chrono::system_clock::now();
  s.bind("phone", "1106", devices);
  REQUIRE(waitUntil([&] { return warnings().size() == 3; }, 6000));
  // Past the TTL the binding goes (un-REGISTER, erase), and nothing more is sent.
  REQUIRE(waitUntil([&] { return s.registrar.get("phone").status == 404; }, 4000));
  sleepMs(500);
  auto all = warnings();
  REQUIRE(all.size() == 3);
  for (std::size_t i = 1; i < 3; ++i) {
    CHECK(std::llabs(all[i].body["expires_at"].get<long long>() - (ms(reput_at) + 6000)) < 1000);
  }
  CHECK(all[2].body["sent_at"].get<long long>() - all[1].body["sent_at"].get<long long>() >= 1500);
  int fcm = 0;
  for (const auto& p : s.push.fcm->pushesFor(kFcmToken)) {
    fcm += p.body["message"]["data"].value("type", "") == "binding_expiring";
  }
  CHECK(fcm == 3);
}
