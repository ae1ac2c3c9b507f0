#include "registrar/registration/registration_engine.h"

#include <catch2/catch.hpp>

#include "registration_engine_fixture.h"

using namespace sipwake;
using namespace sipwake::registrar;
using namespace sipwake::registrar::testing;

namespace {

bool hasCredentials(const RegisterRequest& r) { return !r.authorization.empty(); }

// Drives a new binding through challenge and success.
void registerFully(EngineFixture& f, const std::string& id, std::uint32_t granted = 600) {
  f.engine.upsert(f.spec(id));
  f.transport.respond(challenge("n1"));
  f.transport.respond(ok(granted));
}

}  // namespace

TEST_CASE("a new binding registers: challenge, credentials, success, refresh", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000"));
  REQUIRE(f.transport.sent.size() == 1);
  RegisterRequest first = f.transport.sent.front().request;
  CHECK(first.authorization.empty());
  CHECK(first.expires == 600);
  CHECK(first.contact == "sip:tok1000@192.0.2.10:5060;transport=tcp");
  CHECK(first.call_id == "call-1000");
  CHECK(first.request_uri == "sip:pbx.test");
  CHECK(f.transport.sent.front().contact_user == "tok1000");

  f.transport.respond(challenge("n1"));
  REQUIRE(f.transport.sent.size() == 1);  // answered at once
  RegisterRequest second = f.transport.sent.front().request;
  CHECK(second.cseq == first.cseq + 1);
  CHECK(second.call_id == first.call_id);
  CHECK(second.contact == first.contact);
  CHECK(second.authorization.find("username=\"1000\"") != std::string::npos);
  CHECK(second.authorization.find("nonce=\"n1\"") != std::string::npos);
  CHECK(second.authorization.find("nc=00000001") != std::string::npos);

  f.transport.respond(ok(600));
  auto status = f.engine.status("acme/1000");
  REQUIRE(status);
  CHECK(status->state == RegistrationState::Registered);
  CHECK(status->expires_at == f.clock.now() + 600'000);
  CHECK(status->failures == 0);
  CHECK(f.transport.sent.empty());

  // Refresh at 82.5 % (75..90 %, jitter fixed at 0.5) of 600 s, reusing the nonce.
  f.advance(494'000);
  CHECK(f.transport.sent.empty());
  f.advance(2'000);
  REQUIRE(f.transport.sent.size() == 1);
  RegisterRequest refresh = f.transport.sent.front().request;
  CHECK(refresh.call_id == first.call_id);
  CHECK(refresh.contact == first.contact);
  CHECK(refresh.cseq == second.cseq + 1);
  CHECK(refresh.authorization.find("nc=00000002") != std::string::npos);
}

TEST_CASE("a wrong password fails after exactly three rejected attempts", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000", "wrong"));
  f.transport.respond(challenge("n1"));  // no credentials yet: answered at once
  int with_credentials = 0;
  int nonce = 2;
  while (!f.transport.sent.empty() || f.observer.failed.empty()) {
    if (f.transport.sent.empty()) {
      f.advance(kHour);
      continue;
    }
    if (hasCredentials(f.transport.sent.front().request)) ++with_credentials;
    f.transport.respond(challenge("n" + std::to_string(nonce++)));
    if (with_credentials > 5) break;
  }
  CHECK(with_credentials == 3);
  REQUIRE(f.observer.failed.size() == 1);
  CHECK(f.observer.failed[0].second == FailureReason::AuthRejected);
  CHECK(f.observer.failed[0].first.state == RegistrationState::Failed);
  CHECK_FALSE(f.engine.contains("acme/1000"));
  f.advance(10 * kDay);
  CHECK(f.transport.sent.empty());
}

TEST_CASE("rejections are spaced by the back-off, not hammered", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000", "wrong"));
  f.transport.respond(challenge("n1"));
  f.transport.respond(challenge("n2"));  // rejection 1
  Millis t1 = f.clock.now();
  CHECK(f.transport.sent.empty());
  f.advance(23'000);  // back-off 30 s -20 % at the earliest
  CHECK(f.transport.sent.empty());
  f.advance(8'000);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.clock.now() - t1 >= 24'000);
  // The retry answers the challenge that came with the rejection.
  CHECK(f.transport.sent.front().request.authorization.find("nonce=\"n2\"") != std::string::npos);
}

TEST_CASE("a stale nonce is answered at once and is not a rejection", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  f.advance(600'000);
  REQUIRE(f.transport.sent.size() == 1);
  f.transport.respond(challenge("n-new", /*stale=*/true));
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.authorization.find("n-new") != std::string::npos);
  f.transport.respond(ok(600));
  auto status = f.engine.status("acme/1000");
  CHECK(status->state == RegistrationState::Registered);
  CHECK(status->failures == 0);
}

TEST_CASE("a 401 to a cached nonce is a new challenge, not a rejection", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  f.advance(600'000);
  f.transport.respond(challenge("n-other"));  // not stale, but our nonce was an old one
  REQUIRE(f.transport.sent.size() == 1);
  f.transport.respond(ok(600));
  CHECK(f.engine.status("acme/1000")->failures == 0);
  CHECK(f.observer.failed.empty());
}

TEST_CASE("503 with Retry-After delays the next attempt at least that long", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000"));
  RegisterResponse busy = response(503, "Service Unavailable");
  busy.retry_after = 120;
  f.transport.respond(busy);
  Millis t = f.clock.now();
  f.advance(119'000);
  CHECK(f.transport.sent.empty());
  f.advance(2'000);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.clock.now() - t >= 120'000);
  auto status = f.engine.status("acme/1000");
  CHECK(status->state == RegistrationState::Retrying);
  CHECK(status->last.code == 503);
}

TEST_CASE("temporary failures back off exponentially and fail after ten", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000"));
  std::vector<Millis> gaps;
  Millis last = f.clock.now();
  int attempts = 0;
  while (f.observer.failed.empty() && attempts < 20) {
    if (f.transport.sent.empty()) {
      f.advanceTo(f.wakeup.next);
      continue;
    }
    gaps.push_back(f.clock.now() - last);
    last = f.clock.now();
    RegisterResponse timeout = response(408, "Request Timeout");
    timeout.local = true;
    f.transport.respond(timeout);
    ++attempts;
  }
  CHECK(attempts == 10);
  REQUIRE(f.observer.failed.size() == 1);
  CHECK(f.observer.failed[0].second == FailureReason::Unreachable);
  // 30 s, 60 s, 120 s, ... capped at 30 min (jitter fixed at the middle).
  CHECK(gaps[1] == 30'000);
  CHECK(gaps[2] == 60'000);
  CHECK(gaps[3] == 120'000);
  CHECK(gaps[7] == 1'800'000);
  CHECK(gaps[9] == 1'800'000);
}

TEST_CASE("twelve hours without success fail a binding", "[engine]") {
  RegistrationPolicy p = EngineFixture::unpaced();
  p.backoff_base = 4 * kHour;
  p.backoff_max = 4 * kHour;
  EngineFixture f(p);
  f.engine.upsert(f.spec("1000"));
  int attempts = 0;
  while (f.observer.failed.empty() && attempts < 10) {
    if (f.transport.sent.empty()) {
      f.advanceTo(f.wakeup.next);
      continue;
    }
    f.transport.respond(response(500, "Server Error"));
    ++attempts;
  }
  CHECK(attempts == 4);  // t=0, 4 h, 8 h, 12 h
  CHECK(f.observer.failed.size() == 1);
}

TEST_CASE("a success resets the failure counters", "[engine]") {
  EngineFixture f;
  f.engine.upsert(f.spec("1000"));
  f.transport.respond(response(503));
  f.advance(kHour);
  f.transport.respond(challenge("n1"));
  f.transport.respond(challenge("n2"));  // one rejection
  CHECK(f.engine.status("acme/1000")->failures == 2);
  f.advance(kHour);
  f.transport.respond(ok(600));
  CHECK(f.engine.status("acme/1000")->failures == 0);
}

TEST_CASE("423 Min-Expires is honoured at once", "[engine]") {
  EngineFixture f;
  auto s = f.spec("1000");
  s.expires = 60;
  f.engine.upsert(s);
  RegisterResponse brief = response(423, "Interval Too Brief");
  brief.min_expires = 120;
  f.transport.respond(brief);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.expires == 120);
  f.transport.respond(challenge("n1"));
  CHECK(f.transport.sent.front().request.expires == 120);
  f.transport.respond(ok(120));
  CHECK(f.engine.status("acme/1000")->state == RegistrationState::Registered);
}

TEST_CASE("the granted expiry wins over the requested one", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000", /*granted=*/10);
  CHECK(f.engine.status("acme/1000")->granted_expires == 10);
  f.advance(8'000);
  CHECK(f.transport.sent.empty());
  f.advance(500);
  REQUIRE(f.transport.sent.size() == 1);  // 82.5 % of 10 s
  CHECK(f.transport.sent.front().request.expires == 600);
}

TEST_CASE("remove sends expires=0 for our contact only, then forgets", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  std::optional<bool> done;
  f.engine.remove("acme/1000", [&](bool ok) { done = ok; });
  REQUIRE(f.transport.sent.size() == 1);
  auto req = f.transport.sent.front().request;
  CHECK(req.expires == 0);
  CHECK(req.contact == "sip:tok1000@192.0.2.10:5060;transport=tcp");
  CHECK(req.call_id == "call-1000");
  CHECK(hasCredentials(req));
  f.transport.respond(ok(0));
  REQUIRE(done);
  CHECK(*done);
  CHECK_FALSE(f.engine.contains("acme/1000"));
  f.advance(kDay);
  CHECK(f.transport.sent.empty());
}

TEST_CASE("remove of an unknown binding completes at once", "[engine]") {
  EngineFixture f;
  std::optional<bool> done;
  f.engine.remove("acme/none", [&](bool ok) { done = ok; });
  REQUIRE(done);
  CHECK_FALSE(*done);
}

TEST_CASE("a PUT with the same account does not re-register", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  auto again = f.spec("1000");
  again.generation = 2;
  f.engine.upsert(again);
  CHECK(f.transport.sent.empty());
  CHECK(f.engine.status("acme/1000")->state == RegistrationState::Registered);
}

TEST_CASE("a PUT with a new password re-registers at once", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  f.engine.upsert(f.spec("1000", "new-secret"));
  CHECK(f.transport.sent.size() == 1);
}

TEST_CASE("a PUT moving the binding to another PBX removes the old contact", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  auto moved = f.spec("1000");
  moved.destination = "sip:127.0.0.2:5060;transport=udp";
  moved.transport = SipTransport::Udp;
  moved.call_id = "call-1000-b";
  f.engine.upsert(moved);
  REQUIRE(f.transport.sent.size() == 2);
  bool saw_unregister_old = false, saw_register_new = false;
  for (const auto& s : f.transport.sent) {
    if (s.request.expires == 0 && s.request.destination == "sip:127.0.0.1:5060;transport=tcp" &&
        s.request.call_id == "call-1000")
      saw_unregister_old = true;
    if (s.request.expires == 600 && s.request.destination == "sip:127.0.0.2:5060;transport=udp")
      saw_register_new = true;
  }
  CHECK(saw_unregister_old);
  CHECK(saw_register_new);
}

TEST_CASE("a binding its app did not refresh for the TTL is unregistered and erased", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000", 86400);
  f.advance(7 * kDay - kMinute);
  while (!f.transport.sent.empty()) f.transport.respond(ok(86400));
  CHECK(f.observer.expired.empty());
  f.advance(2 * kMinute);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.expires == 0);
  f.transport.respond(ok(0));
  REQUIRE(f.observer.expired.size() == 1);
  CHECK(f.observer.expired[0] == "acme/1000");
  CHECK_FALSE(f.engine.contains("acme/1000"));
}

TEST_CASE("a restarted instance resumes with the persisted counters", "[engine]") {
  EngineFixture f;
  ResumeState resume;
  resume.state = RegistrationState::Retrying;
  resume.auth_rejections = 2;
  resume.first_failure_at = f.clock.now() - kHour;
  f.engine.upsert(f.spec("1000", "wrong"), resume);
  REQUIRE(f.transport.sent.size() == 1);
  f.transport.respond(challenge("n1"));
  f.transport.respond(challenge("n2"));  // third rejection in a row
  CHECK(f.observer.failed.size() == 1);
}

TEST_CASE("the pacer caps the REGISTER rate toward one PBX", "[engine]") {
  RegistrationPolicy p;
  p.pacing.rate_per_second = 50;
  p.pacing.max_in_flight = 1000;
  EngineFixture f(p);
  for (int i = 0; i < 200; ++i) f.engine.upsert(f.spec(std::to_string(1000 + i)));
  CHECK(f.transport.total <= 2);
  f.advance(1000);
  CHECK(f.transport.total <= 52);
  CHECK(f.transport.total >= 49);
  f.advance(3000);
  CHECK(f.transport.total == 200);
}

TEST_CASE("the in-flight window holds back requests until answers come", "[engine]") {
  RegistrationPolicy p = EngineFixture::unpaced();
  p.pacing.rate_per_second = 1e6;
  p.pacing.max_in_flight = 5;
  EngineFixture f(p);
  for (int i = 0; i < 20; ++i) f.engine.upsert(f.spec(std::to_string(1000 + i)));
  f.advance(10);
  CHECK(f.transport.sent.size() == 5);
  f.transport.respond(ok(600));
  f.advance(10);
  CHECK(f.transport.sent.size() == 5);
  CHECK(f.transport.total == 6);
}

TEST_CASE("challenge answers jump the pacer queue", "[engine]") {
  RegistrationPolicy p = EngineFixture::unpaced();
  p.pacing.rate_per_second = 1e6;
  p.pacing.max_in_flight = 1;
  EngineFixture f(p);
  f.engine.upsert(f.spec("1000"));
  f.engine.upsert(f.spec("1001"));
  REQUIRE(f.transport.sent.size() == 1);
  f.transport.respond(challenge("n1"));
  f.advance(1);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.aor == "sip:1000@pbx.test");
  CHECK(hasCredentials(f.transport.sent.front().request));
}

TEST_CASE("the bindings gauge follows the states", "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  f.engine.upsert(f.spec("1001"));
  CHECK(f.bindingsGauge("registered") == 1);
  CHECK(f.bindingsGauge("registering") == 1);
  CHECK(f.bindingsGauge("failed") == 0);
}

TEST_CASE("a restarted instance answers the persisted challenge in its first REGISTER",
          "[engine]") {
  EngineFixture f;
  registerFully(f, "1000");
  RegistrationStatus before = *f.engine.status("acme/1000");
  REQUIRE_FALSE(before.challenge.empty());

  EngineFixture restarted;
  ResumeState resume;
  resume.state = RegistrationState::Registered;
  resume.expires_at = restarted.clock.now() + 300'000;
  resume.challenge = before.challenge;
  resume.nonce_count = before.nonce_count;
  auto spec = restarted.spec("1000");
  spec.sealed_password = restarted.sealer.seal("secret", spec.key);
  restarted.engine.upsert(spec, resume);
  REQUIRE(restarted.transport.sent.size() == 1);
  auto first = restarted.transport.sent.front().request;
  CHECK(first.authorization.find("nonce=\"n1\"") != std::string::npos);
  CHECK(first.authorization.find("nc=00000002") != std::string::npos);
  restarted.transport.respond(ok(600));
  CHECK(restarted.engine.status("acme/1000")->state == RegistrationState::Registered);
}

TEST_CASE("challenges survive serialization, and odd ones are refused", "[digest]") {
  DigestChallenge c;
  c.realm = "pbx.test";
  c.nonce = "abc/def=";
  c.opaque = "o";
  c.algorithm = "SHA-256";
  c.qop_auth = true;
  c.proxy = true;
  auto back = deserializeChallenge(serializeChallenge(c));
  REQUIRE(back);
  CHECK(back->realm == c.realm);
  CHECK(back->nonce == c.nonce);
  CHECK(back->opaque == c.opaque);
  CHECK(back->algorithm == c.algorithm);
  CHECK(back->qop_auth);
  CHECK_FALSE(back->qop_auth_int);
  CHECK(back->proxy);
  CHECK_FALSE(deserializeChallenge(""));
  CHECK_FALSE(deserializeChallenge("a\x1f\x1f\x1fMD5\x1f"));
  c.realm = std::string("bad\x1f", 4);
  CHECK(serializeChallenge(c).empty());
}

TEST_CASE("taking a binding over adds our contact and removes the previous owner's in one REGISTER",
          "[engine][cluster]") {
  EngineFixture f;
  ResumeState resume;
  resume.state = RegistrationState::Registered;
  resume.expires_at = f.clock.now() + 300'000;
  resume.previous_contact = "sip:tok1000@192.0.2.99:5060;transport=tcp";  // the dead instance's
  f.engine.upsert(f.spec("1000"), resume);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.contact == "sip:tok1000@192.0.2.10:5060;transport=tcp");
  CHECK(f.transport.sent.front().request.removed_contact == resume.previous_contact);
  CHECK(f.transport.sent.front().request.expires == 600);
  f.transport.respond(challenge("n1"));
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.removed_contact == resume.previous_contact);
  f.transport.respond(ok(600));
  auto status = f.engine.status("acme/1000");
  REQUIRE(status);
  CHECK(status->registered_contact == "sip:tok1000@192.0.2.10:5060;transport=tcp");

  // Refreshes carry our contact alone.
  f.advance(600'000);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.removed_contact.empty());
}

TEST_CASE("a restart with our own contact removes nothing", "[engine][cluster]") {
  EngineFixture f;
  ResumeState resume;
  resume.previous_contact = "sip:tok1000@192.0.2.10:5060;transport=tcp";
  f.engine.upsert(f.spec("1000"), resume);
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.removed_contact.empty());
}

TEST_CASE("a parked binding stops refreshing and writing, answers calls, then goes", "[engine][cluster]") {
  RegistrationPolicy policy = EngineFixture::unpaced();
  policy.handover_grace = 30'000;
  EngineFixture f(policy);
  registerFully(f, "1000");
  std::size_t statuses = f.observer.statuses.size();
  CHECK(f.bindingsGauge("registered") == 1);
  f.engine.park("acme/1000");
  CHECK(f.engine.findByContact("tok1000"));  // calls to our contact still ring here
  CHECK(f.bindingsGauge("registered") == 0);  // counted by the new owner now
  f.advance(29'000);
  CHECK(f.transport.sent.empty());
  CHECK(f.engine.contains("acme/1000"));
  f.advance(2'000);
  CHECK_FALSE(f.engine.contains("acme/1000"));
  CHECK(f.transport.sent.empty());  // never un-registered: the new owner replaced our contact
  CHECK(f.observer.statuses.size() == statuses);
}

TEST_CASE("a parked binding taken back refreshes again", "[engine][cluster]") {
  EngineFixture f;
  registerFully(f, "1000");
  f.engine.park("acme/1000");
  f.engine.upsert(f.spec("1000"), ResumeState{});
  REQUIRE(f.transport.sent.size() == 1);
  f.transport.respond(ok(600));
  f.advance(600'000);  // past the refresh time, past the handover grace
  CHECK(f.engine.contains("acme/1000"));
  CHECK(f.transport.sent.size() == 1);
}

TEST_CASE("an older spec never replaces a newer one", "[engine][cluster]") {
  EngineFixture f;
  auto fresh = f.spec("1000");
  fresh.generation = 5;
  f.engine.upsert(fresh);
  auto stale = f.spec("1000", "old-password");
  stale.generation = 4;
  stale.destination = "sip:198.51.100.1:5060;transport=tcp";
  f.engine.upsert(stale);
  f.transport.respond(challenge("n1"));
  REQUIRE(f.transport.sent.size() == 1);
  CHECK(f.transport.sent.front().request.destination == fresh.destination);
}
