#include "registrar/call/call_manager.h"

#include <limits>
#include <memory>

#include <catch2/catch.hpp>

#include "tests/support/scripted_transaction.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::testing::Answer;
using sipwake::testing::ScriptedTransaction;

namespace {

struct RecordingPushes : PushSink {
  void enqueue(PushRequest r) override { pushed.push_back(std::move(r)); }
  void callEnded(const std::string& key, const std::string& call_id) override {
    ended.push_back(key + "|" + call_id);
  }
  std::vector<PushRequest> pushed;
  std::vector<std::string> ended;
};

struct OneBinding : ContactDirectory {
  std::optional<Owner> findByContact(std::string_view user) const override {
    if (user != "tok1") return std::nullopt;
    return Owner{"acme/phone", state, "192.0.2.5"};
  }
  RegistrationState state = RegistrationState::Registered;
};

// A counter's value by its (only) label's value; -1 when absent.
double counter(prometheus::Registry& registry, const std::string& name, const std::string& label) {
  for (const auto& f : registry.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      if (m.label[0].value == label) return m.counter.value;
    }
  }
  return -1;
}

struct Wakeup : WakeupScheduler {
  void wakeAt(Millis when) override { next = std::min(next, when); }
  Millis next = std::numeric_limits<Millis>::max();
};

struct Fixture {
  explicit Fixture(bool redirect = false)
      : metrics(registry), calls(policy(redirect), clock, directory, pushes, &metrics, wakeup) {}
  static CallPolicy policy(bool redirect) {
    CallPolicy p;
    p.redirect = redirect;
    p.device_ack_timeout = 60'000;
    p.device_connect_timeout = 30'000;
    p.message_body_limit = 8;
    return p;
  }
  IncomingRequest request(IncomingRequest::Method method, std::string source = "192.0.2.5") {
    IncomingRequest r;
    r.method = method;
    r.contact_user = "tok1";
    r.call_id = "call-1";
    r.from_uri = "sip:alice@pbx.test";
    r.from_name = "Alice";
    r.to_uri = "sip:1000@pbx.test";
    r.source_ip = std::move(source);
    return r;
  }
  ScriptedTransaction* invite(std::vector<Answer>& log) {
    auto tx = std::make_unique<ScriptedTransaction>(log);
    auto* raw = tx.get();
    calls.onRequest(request(IncomingRequest::Method::Invite), std::move(tx));
    return raw;
  }
  void advance(Millis ms) {
    clock.advance(ms);
    if (wakeup.next <= clock.now()) {
      wakeup.next = std::numeric_limits<Millis>::max();
      calls.runDue();
    }
  }
  double invites(const std::string& result) { return counter(registry, "registrar_invites_total", result); }

  ManualClock clock;
  OneBinding directory;
  RecordingPushes pushes;
  Wakeup wakeup;
  prometheus::Registry registry;
  CallMetrics metrics;
  CallManager calls;
};

}  // namespace

TEST_CASE("an INVITE rings at once and pushes the call", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  REQUIRE(log.size() == 2);
  CHECK(log[0].status == 100);
  CHECK(log[1].status == 180);
  CHECK(log[1].header("X-Push-Status") == "Alerting-Device");
  REQUIRE(f.pushes.pushed.size() == 1);
  const auto& push = f.pushes.pushed[0];
  CHECK(push.type == "call");
  CHECK(push.binding_key == "acme/phone");
  CHECK(push.call_id == "call-1");
  CHECK(push.from_uri == "sip:alice@pbx.test");
  CHECK(push.from_name == "Alice");
  CHECK(push.expires_at == f.clock.now() + 60'000);
  CHECK(f.calls.ringing() == 1);
}

TEST_CASE("a delivered push gives one more 180, once", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  f.calls.onPushDelivered("acme/phone", "call-1");
  f.calls.onPushDelivered("acme/phone", "call-1");  // second device
  REQUIRE(log.size() == 3);
  CHECK(log[2].status == 180);
  CHECK(log[2].header("X-Push-Status") == "Push-Notification-Sent");
}

TEST_CASE("T1: no device acks, 480 No-Response-From-Device", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  f.advance(59'999);
  CHECK(log.size() == 2);
  f.advance(1);
  REQUIRE(log.size() == 3);
  CHECK(log[2].status == 480);
  CHECK(log[2].header("X-Push-Reason") == "No-Response-From-Device");
  CHECK(f.pushes.ended == std::vector<std::string>{"acme/phone|call-1"});
  CHECK(f.calls.ringing() == 0);
  CHECK(f.invites("no_device_ack") == 1);
}

TEST_CASE("an ack stops T1, starts T2 and says so to the caller", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  f.advance(50'000);
  CHECK(f.calls.onDeviceAck("acme/phone", "iphone", "call-1") == CallManager::AckResult::Accepted);
  REQUIRE(log.size() == 3);
  CHECK(log[2].header("X-Push-Status") == "Device-Making-Progress");
  CHECK(f.calls.onDeviceAck("acme/phone", "iphone", "call-1") == CallManager::AckResult::Accepted);
  CHECK(log.size() == 3);  // idempotent
  f.advance(20'000);        // past T1's deadline: T1 no longer counts
  CHECK(log.size() == 3);
  f.advance(10'000);        // T2 (30 s after the ack)
  REQUIRE(log.size() == 4);
  CHECK(log[3].status == 480);
  CHECK(log[3].header("X-Push-Reason") == "Device-Did-Not-Connect");
  CHECK(f.calls.onDeviceAck("acme/phone", "iphone", "call-1") == CallManager::AckResult::UnknownCall);
}

TEST_CASE("redirect mode: an ack naming a contact answers 302 toward it", "[calls]") {
  Fixture f(true);
  std::vector<Answer> log;
  f.invite(log);
  CHECK(f.calls.onDeviceAck("acme/phone", "iphone", "call-1", "sip:app@192.0.2.9:5061;transport=tls") ==
        CallManager::AckResult::Accepted);
  REQUIRE(log.size() == 3);
  CHECK(log[2].status == 302);
  CHECK(log[2].header("Contact") == "<sip:app@192.0.2.9:5061;transport=tls>");
  CHECK(f.calls.ringing() == 0);
  CHECK(f.pushes.ended == std::vector<std::string>{"acme/phone|call-1"});
  CHECK(f.invites("redirected") == 1);
  f.advance(120'000);
  CHECK(log.size() == 3);  // no T1 or T2 answer after the redirect
}

TEST_CASE("relay mode ignores an ack's contact: 180 and T2 as usual", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  CHECK(f.calls.onDeviceAck("acme/phone", "iphone", "call-1", "sip:app@192.0.2.9") ==
        CallManager::AckResult::Accepted);
  REQUIRE(log.size() == 3);
  CHECK(log[2].status == 180);
  CHECK(log[2].header("X-Push-Status") == "Device-Making-Progress");
}

TEST_CASE("CANCEL: 487 and a call_cancelled push, answered elsewhere or not", "[calls]") {
  for (bool elsewhere : {false, true}) {
    Fixture f;
    std::vector<Answer> log;
    auto* tx = f.invite(log);
    tx->cancel(elsewhere);
    REQUIRE(log.size() == 3);
    CHECK(log[2].status == 487);
    REQUIRE(f.pushes.pushed.size() == 2);
    CHECK(f.pushes.pushed[1].type == "call_cancelled");
    CHECK(f.pushes.pushed[1].answered_elsewhere == elsewhere);
    CHECK(f.pushes.ended.size() == 1);
    f.advance(120'000);
    CHECK(log.size() == 3);  // no 480 after the end
    CHECK(f.invites("cancelled") == 1);
  }
}

TEST_CASE("unknown, failed, or foreign-source requests are refused cheaply", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  auto unknown = f.request(IncomingRequest::Method::Invite);
  unknown.contact_user = "nobody";
  f.calls.onRequest(unknown, std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 404);

  f.calls.onRequest(f.request(IncomingRequest::Method::Invite, "198.51.100.9"),
                    std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 403);

  f.directory.state = RegistrationState::Failed;
  f.calls.onRequest(f.request(IncomingRequest::Method::Invite), std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 404);
  CHECK(f.pushes.pushed.empty());
  CHECK(f.invites("not_found") == 2);
  CHECK(f.invites("foreign_source") == 1);
}

TEST_CASE("MESSAGE: 202 and a message push with a trimmed body, OPTIONS: 200", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  auto message = f.request(IncomingRequest::Method::Message);
  message.body = "abcdefg\xC3\xA9!";  // 8 bytes would split the é: 7 are kept
  f.calls.onRequest(message, std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 202);
  REQUIRE(f.pushes.pushed.size() == 1);
  CHECK(f.pushes.pushed[0].type == "message");
  CHECK(f.pushes.pushed[0].body == "abcdefg");
  f.calls.onRequest(f.request(IncomingRequest::Method::Options), std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 200);
  auto bye = f.request(IncomingRequest::Method::Bye);
  f.calls.onRequest(bye, std::make_unique<ScriptedTransaction>(log));
  CHECK(log.back().status == 481);
}

TEST_CASE("a second INVITE transaction for a ringing call is refused, not pushed again", "[calls]") {
  Fixture f;
  std::vector<Answer> log1, log2;
  f.invite(log1);
  f.invite(log2);
  CHECK(log2.back().status == 482);
  CHECK(f.pushes.pushed.size() == 1);
}

TEST_CASE("shutdown ends ringing calls with 480", "[calls]") {
  Fixture f;
  std::vector<Answer> log;
  f.invite(log);
  f.calls.endAll();
  CHECK(log.back().status == 480);
  CHECK(log.back().header("X-Push-Reason") == "Service-Shutting-Down");
}

namespace {

struct TwoBindings : ContactDirectory {
  std::optional<Owner> findByContact(std::string_view user) const override {
    if (user == "tok1") return Owner{"acme/phone", RegistrationState::Registered, "192.0.2.5"};
    if (user == "tok2") return Owner{"acme/other", RegistrationState::Registered, "192.0.2.5"};
    return std::nullopt;
  }
};

struct CapFixture {
  CapFixture() : metrics(registry), calls(policy(), clock, directory, pushes, &metrics, wakeup) {}
  static CallPolicy policy() {
    CallPolicy p;
    p.push_calls_per_minute = 5;
    p.push_messages_per_minute = 3;
    return p;
  }
  Answer send(IncomingRequest::Method method, const std::string& token, int n) {
    std::vector<Answer> log;
    IncomingRequest r;
    r.method = method;
    r.contact_user = token;
    r.call_id = token + "-call-" + std::to_string(n);
    r.from_uri = "sip:alice@pbx.test";
    r.to_uri = "sip:1000@pbx.test";
    r.source_ip = "192.0.2.5";
    calls.onRequest(std::move(r), std::make_unique<ScriptedTransaction>(log));
    return log.empty() ? Answer{} : log.back();
  }
  double metric(const std::string& name, const std::string& label) { return counter(registry, name, label); }
  std::size_t pushed(const std::string& type, const std::string& key) {
    std::size_t n = 0;
    for (const auto& p : pushes.pushed) n += p.type == type && p.binding_key == key;
    return n;
  }

  ManualClock clock;
  TwoBindings directory;
  RecordingPushes pushes;
  Wakeup wakeup;
  prometheus::Registry registry;
  CallMetrics metrics;
  CallManager calls;
};

}  // namespace

TEST_CASE("push cap: a call storm to one binding pushes at most the cap per minute", "[calls][abuse]") {
  CapFixture f;
  int rung = 0, capped = 0;
  for (int i = 0; i < 50; ++i) {
    Answer a = f.send(IncomingRequest::Method::Invite, "tok1", i);
    if (a.status == 180) ++rung;
    if (a.status == 480) {
      ++capped;
      CHECK(a.header("X-Push-Reason") == "Push-Rate-Limited");
    }
    f.clock.advance(100);
  }
  CHECK(rung == 5);
  CHECK(capped == 45);
  CHECK(f.pushed("call", "acme/phone") == 5);
  CHECK(f.metric("registrar_pushes_capped_total", "call") == 45);
  CHECK(f.metric("registrar_invites_total", "push_capped") == 45);

  // Another binding is not affected.
  CHECK(f.send(IncomingRequest::Method::Invite, "tok2", 0).status == 180);
  CHECK(f.pushed("call", "acme/other") == 1);

  // Messages have their own cap, calls used up do not count against it.
  int accepted = 0;
  for (int i = 0; i < 10; ++i) {
    accepted += f.send(IncomingRequest::Method::Message, "tok1", 100 + i).status == 202;
  }
  CHECK(accepted == 3);
  CHECK(f.metric("registrar_pushes_capped_total", "message") == 7);
  CHECK(f.metric("registrar_messages_total", "push_capped") == 7);
  CHECK(f.metric("registrar_messages_total", "refused") == 0);

  // A sliding minute: once the first pushes are a minute old, calls ring again.
  f.clock.advance(60'000 - 5 * 100 + 1);
  CHECK(f.send(IncomingRequest::Method::Invite, "tok1", 1000).status == 180);
}

TEST_CASE("push cap: never more than the cap in any minute window", "[calls][abuse]") {
  CapFixture f;
  std::vector<Millis> pushed_at;
  for (int i = 0; i < 600; ++i) {  // one INVITE a second for ten minutes
    if (f.send(IncomingRequest::Method::Invite, "tok1", i).status == 180) {
      pushed_at.push_back(f.clock.now());
    }
    f.clock.advance(1000);
  }
  for (std::size_t i = 0; i < pushed_at.size(); ++i) {
    std::size_t in_window = 0;
    for (std::size_t j = i; j < pushed_at.size() && pushed_at[j] < pushed_at[i] + 60'000; ++j) {
      ++in_window;
    }
    CHECK(in_window <= 5);
  }
  CHECK(pushed_at.size() >= 50);  // 5 a minute over 10 minutes
}
