#include "registrar/trace/binding_trace.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/registrar/registration/registration_engine_fixture.h"

using namespace sipwake;
using namespace sipwake::registrar;
using namespace sipwake::registrar::testing;

namespace {

struct RecordingTrace : TraceSink {
  void trace(const std::string& key, SipTraceEntry entry) override {
    entries.emplace_back(key, std::move(entry));
  }
  std::vector<std::pair<std::string, SipTraceEntry>> entries;
};

std::string header(const SipTraceEntry& e, const std::string& name) {
  for (const auto& [n, v] : e.headers) {
    if (n == name) return v;
  }
  return {};
}

}  // namespace

TEST_CASE("the engine traces REGISTER, 401, REGISTER with redacted credentials, 200", "[trace]") {
  EngineFixture f;
  RecordingTrace trace;
  f.engine.setTrace(&trace);
  f.engine.upsert(f.spec("1000", "pass-WORD-9"));
  f.transport.respond(challenge("secret-nonce-77"));
  RegisterRequest second = f.transport.respond(ok(600));
  REQUIRE(!second.authorization.empty());

  REQUIRE(trace.entries.size() == 4);
  for (const auto& [key, e] : trace.entries) CHECK(key == "acme/1000");
  const SipTraceEntry& r1 = trace.entries[0].second;
  CHECK(r1.sent);
  CHECK(r1.method == "REGISTER");
  CHECK(header(r1, "Authorization").empty());
  CHECK(header(r1, "Expires") == "600");
  const SipTraceEntry& c = trace.entries[1].second;
  CHECK_FALSE(c.sent);
  CHECK(c.status == 401);
  CHECK(header(c, "WWW-Authenticate").find("nonce=\"…\"") != std::string::npos);
  const SipTraceEntry& r2 = trace.entries[2].second;
  CHECK(r2.cseq == r1.cseq + 1);
  std::string auth = header(r2, "Authorization");
  CHECK(auth.find("username=\"1000\"") != std::string::npos);
  CHECK(auth.find("response=\"…\"") != std::string::npos);
  CHECK(trace.entries[3].second.status == 200);

  std::string all;
  for (const auto& [key, e] : trace.entries) all += toJson(e);
  CHECK(all.find("secret-nonce-77") == std::string::npos);
  CHECK(all.find("pass-WORD-9") == std::string::npos);
  auto pos = second.authorization.find("response=\"");
  REQUIRE(pos != std::string::npos);
  CHECK(all.find(second.authorization.substr(pos + 10, 32)) == std::string::npos);

  auto json = nlohmann::json::parse(toJson(r1));
  CHECK(json["kind"] == "sip");
  CHECK(json["direction"] == "out");
  CHECK(json["summary"] == "REGISTER sip:pbx.test");
  CHECK(json["at"].get<std::string>().back() == 'Z');
  auto answer = nlohmann::json::parse(toJson(c));
  CHECK(answer["direction"] == "in");
  CHECK(answer["status"] == 401);
  CHECK(answer["summary"] == "401 Unauthorized");
}

namespace {

struct ExpiringObserver : RecordingObserver {
  void onExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                  Millis expires_at) override {
    warnings.push_back({key, generation, offset, expires_at});
  }
  struct Warning {
    std::string key;
    std::uint64_t generation;
    Millis offset, expires_at;
  };
  std::vector<Warning> warnings;
};

// An engine whose observer records expiry warnings; REGISTERs answered 200.
struct WarningEngine {
  explicit WarningEngine(RegistrationPolicy p)
      : sealer({{"k1", crypto::randomBytes(32)}}),
        engine(p, {"192.0.2.10:5060", ""}, clock, transport, sealer, observer, nullptr, wakeup,
               [] { return 0.5; }) {}
  void answerAll() {
    while (!transport.sent.empty()) transport.respond(ok(86400));
  }
  void advanceTo(Millis t) {
    while (wakeup.next <= t) {
      clock.set(std::max(clock.now(), wakeup.next));
      wakeup.next = std::numeric_limits<Millis>::max();
      engine.runDue();
      answerAll();
    }
    clock.set(t);
    engine.runDue();
  }
  void put(std::uint64_t generation) {
    RegistrationSpec spec;
    spec.key = "acme/1000";
    spec.generation = generation;
    spec.aor = "sip:1000@pbx.test";
    spec.request_uri = "sip:pbx.test";
    spec.destination = "sip:127.0.0.1:5060;transport=tcp";
    spec.auth_username = "1000";
    spec.sealed_password = sealer.seal("pw", spec.key);
    spec.contact_user = "tok1000";
    spec.call_id = "call-1000";
    spec.put_at = clock.now();
    engine.upsert(spec);
    answerAll();
  }
  ExpiringObserver observer;
  ManualClock clock;
  ScriptedTransport transport;
  FakeWakeup wakeup;
  crypto::CredentialSealer sealer;
  RegistrationEngine engine;
};

RegistrationPolicy warningPolicy(Millis ttl, std::vector<Millis> warnings) {
  RegistrationPolicy p = EngineFixture::unpaced();
  p.binding_ttl = ttl;
  p.expiry_warnings = std::move(warnings);
  return p;
}

}  // namespace

TEST_CASE("expiry warnings fire once each before the TTL, and a PUT re-arms them", "[engine][trace]") {
  WarningEngine w(warningPolicy(10 * kHour, {4 * kHour, kHour}));
  const Millis start = w.clock.now();
  w.put(1);
  w.advanceTo(start + 6 * kHour - kSecond);
  CHECK(w.observer.warnings.empty());
  w.advanceTo(start + 6 * kHour);
  REQUIRE(w.observer.warnings.size() == 1);
  CHECK(w.observer.warnings[0].key == "acme/1000");
  CHECK(w.observer.warnings[0].offset == 4 * kHour);
  CHECK(w.observer.warnings[0].expires_at == start + 10 * kHour);
  w.advanceTo(start + 8 * kHour);
  CHECK(w.observer.warnings.size() == 1);

  // The app PUTs again at 8 h: a new generation, both warnings re-armed.
  w.put(2);
  const Millis put = w.clock.now();
  w.advanceTo(put + 9 * kHour);
  REQUIRE(w.observer.warnings.size() == 3);
  CHECK(w.observer.warnings[1].offset == 4 * kHour);
  CHECK(w.observer.warnings[1].generation == 2);
  CHECK(w.observer.warnings[2].offset == kHour);
  CHECK(w.observer.warnings[2].expires_at == put + 10 * kHour);
  w.advanceTo(put + 10 * kHour + kMinute);
  CHECK(w.observer.warnings.size() == 3);
  CHECK(w.observer.expired.size() == 1);
}

TEST_CASE("an expiry warning longer than the TTL is skipped, not sent at PUT time", "[engine][trace]") {
  WarningEngine w(warningPolicy(2 * kHour, {24 * kHour, kHour}));
  const Millis start = w.clock.now();
  w.put(1);
  w.advanceTo(start + 30 * kMinute);
  CHECK(w.observer.warnings.empty());
  w.advanceTo(start + kHour);
  REQUIRE(w.observer.warnings.size() == 1);
  CHECK(w.observer.warnings[0].offset == kHour);
}

TEST_CASE("warnings that fell due together are sent once, as the latest", "[engine][trace]") {
  WarningEngine w(warningPolicy(10 * kHour, {4 * kHour, kHour}));
  const Millis start = w.clock.now();
  w.put(1);
  // One wake-up long after both were due (a stalled loop, a restart).
  w.clock.set(start + 9 * kHour + 30 * kMinute);
  w.engine.runDue();
  REQUIRE(w.observer.warnings.size() == 1);
  CHECK(w.observer.warnings[0].offset == kHour);
}
