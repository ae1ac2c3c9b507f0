#pragma once

#include <deque>
#include <limits>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "common/crypto/credential_sealer.h"
#include "common/crypto/random.h"
#include "registrar/registration/registration_engine.h"

namespace sipwake::registrar::testing {

// Records REGISTERs instead of sending them; the test answers them.
class ScriptedTransport : public RegisterTransport {
 public:
  struct Sent {
    RegisterRequest request;
    std::string contact_user;
    ResponseHandler handler;
  };
  void send(const RegisterRequest& request, std::string_view contact_user,
            ResponseHandler handler) override {
    sent.push_back({request, std::string(contact_user), std::move(handler)});
    ++total;
  }
  // Answers the oldest outstanding REGISTER.
  RegisterRequest respond(const RegisterResponse& response) {
    Sent s = std::move(sent.front());
    sent.pop_front();
    s.handler(response);
    return s.request;
  }
  std::deque<Sent> sent;
  int total = 0;
};

class FakeWakeup : public WakeupScheduler {
 public:
  void wakeAt(Millis when) override { next = when; }
  Millis next = std::numeric_limits<Millis>::max();
};

class RecordingObserver : public RegistrationObserver {
 public:
  void onStatus(const RegistrationStatus& s) override { statuses.push_back(s); }
  void onFailed(const RegistrationStatus& s, FailureReason r) override {
    failed.push_back({s, r});
  }
  void onExpired(const std::string& key, std::uint64_t) override { expired.push_back(key); }
  std::vector<RegistrationStatus> statuses;
  std::vector<std::pair<RegistrationStatus, FailureReason>> failed;
  std::vector<std::string> expired;
};

inline RegisterResponse response(int status, std::string reason = "") {
  RegisterResponse r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}

inline RegisterResponse challenge(std::string nonce, bool stale = false) {
  RegisterResponse r = response(401, "Unauthorized");
  r.www_authenticate.push_back("Digest realm=\"pbx.test\", nonce=\"" + nonce +
                               "\", qop=\"auth\"" + (stale ? ", stale=true" : ""));
  return r;
}

inline RegisterResponse ok(std::uint32_t expires) {
  RegisterResponse r = response(200, "OK");
  r.contact_listed = true;
  r.contact_expires = expires;
  return r;
}

struct EngineFixture {
  // Pacing is tested on its own; elsewhere it would only delay answers.
  static RegistrationPolicy unpaced() {
    RegistrationPolicy p;
    p.pacing.rate_per_second = 1e9;
    return p;
  }
  EngineFixture() : EngineFixture(unpaced()) {}
  explicit EngineFixture(RegistrationPolicy p)
      : policy(p),
        sealer({{"k1", crypto::randomBytes(32)}}),
        metrics(registry),
        engine(policy, {"192.0.2.10:5060", "192.0.2.10:5061"}, clock, transport, sealer,
               observer, &metrics, wakeup, [] { return 0.5; }) {}

  RegistrationSpec spec(const std::string& id, const std::string& password = "secret") {
    RegistrationSpec s;
    s.key = "acme/" + id;
    s.generation = 1;
    s.aor = "sip:" + id + "@pbx.test";
    s.request_uri = "sip:pbx.test";
    s.destination = "sip:127.0.0.1:5060;transport=tcp";
    s.auth_username = id;
    s.sealed_password = sealer.seal(password, s.key);
    s.contact_user = "tok" + id;
    s.call_id = "call-" + id;
    s.cseq = 0;
    s.expires = 600;
    s.put_at = clock.now();
    return s;
  }

  // Moves time forward to `t`, running every wake-up the engine asked for.
  void advanceTo(Millis t) {
    while (wakeup.next <= t) {
      clock.set(std::max(clock.now(), wakeup.next));
      wakeup.next = std::numeric_limits<Millis>::max();
      engine.runDue();
    }
    clock.set(t);
    engine.runDue();
  }
  void advance(Millis delta) { advanceTo(clock.now() + delta); }

  RegistrationPolicy policy;
  ManualClock clock;
  ScriptedTransport transport;
  RecordingObserver observer;
  FakeWakeup wakeup;
  crypto::CredentialSealer sealer;
  prometheus::Registry registry;

  // registrar_bindings{state=...}
  double bindingsGauge(const std::string& state) {
    for (const auto& family : registry.Collect()) {
      if (family.name != "registrar_bindings") continue;
      for (const auto& m : family.metric) {
        if (m.label[0].value == state) return m.gauge.value;
      }
    }
    return 0;
  }
  RegistrationMetrics metrics;
  RegistrationEngine engine;
};

}  // namespace sipwake::registrar::testing
