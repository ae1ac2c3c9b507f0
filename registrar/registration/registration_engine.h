#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/crypto/credential_sealer.h"
#include "registrar/device/device_secret.h"
#include "common/event/clock.h"
#include "common/event/wakeup_scheduler.h"
#include "registrar/registration/digest_auth.h"
#include "registrar/registration/register_transport.h"
#include "registrar/registration/registration_metrics.h"
#include "registrar/registration/registration_observer.h"
#include "registrar/registration/registration_spec.h"
#include "registrar/registration/target_pacer.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

// The failure policy and timing of PRODUCT.md; every number configurable.
struct RegistrationPolicy {
  Millis backoff_base = 30 * kSecond;
  Millis backoff_max = 30 * kMinute;
  double backoff_jitter = 0.2;  // +-20 %
  int max_rejections = 3;       // auth (or other 4xx) rejections in a row
  int max_temporary_failures = 10;
  Millis max_failure_duration = 12 * kHour;
  double refresh_min_ratio = 0.75;  // refresh between 75 % and 90 % of the granted time
  double refresh_max_ratio = 0.9;
  Millis binding_ttl = 7 * kDay;  // erased when its app has not PUT it for this long
  Millis failed_retention = 24 * kHour;
  // A binding handed to another instance is kept this long without refreshes
  // (calls to our Contact still ring) until the new owner replaced our Contact.
  Millis handover_grace = 30 * kSecond;
  // binding_expiring pushes this long before binding_ttl runs out, largest first.
  std::vector<Millis> expiry_warnings = {24 * kHour, kHour};
  TargetPacer::Limits pacing;
};

// Our Contact's host:port per transport, as advertised to PBXs.
struct ContactAddresses {
  std::string udp_tcp;  // REGISTRAR_SIP_ADVERTISE
  std::string tls;      // empty: TLS not offered
};

using sipwake::WakeupScheduler;

// Keeps every binding of this instance registered at its PBX: one small
// state machine per binding (no sofia objects held between transactions),
// one timer heap, and a pacer per PBX. Runs on the SIP thread.
class RegistrationEngine {
 public:
  // true when the PBX confirmed the un-registration.
  using UnregisterDone = std::function<void(bool unregistered)>;

  RegistrationEngine(RegistrationPolicy policy, ContactAddresses contacts, Clock& clock,
                     RegisterTransport& transport, const crypto::CredentialSealer& sealer,
                     RegistrationObserver& observer, RegistrationMetrics* metrics,
                     WakeupScheduler& wakeup, std::function<double()> uniform01);
  ~RegistrationEngine();
  RegistrationEngine(const RegistrationEngine&) = delete;
  RegistrationEngine& operator=(const RegistrationEngine&) = delete;

  // A new binding, or a PUT replacing one. `resume` carries persisted state
  // when an instance starts up.
  void upsert(RegistrationSpec spec, std::optional<ResumeState> resume = std::nullopt);
  // Un-REGISTERs our contact (expires=0) and forgets the binding; `done`
  // runs once when the PBX answered or gave no answer.
  void remove(const std::string& key, UnregisterDone done);
  // Forgets a binding without a packet (another instance took it over).
  void forget(const std::string& key);
  // Another instance takes the binding over: no more refreshes or status
  // writes from here, but calls to our Contact keep working until the new
  // owner's REGISTER replaced it (handover_grace); then it is forgotten.
  // An upsert takes it back.
  void park(const std::string& key);
  // Every binding key held here (parked ones included).
  std::vector<std::string> keys() const;
  // Key rotation re-sealed the stored credential: hold the new blob (same
  // password) if no PUT came since `generation`. No packet, no state change.
  void replaceSealedCredential(const std::string& key, std::uint64_t generation,
                               std::string sealed_password);

  // Runs due timers and sends what the pacer allows.
  void runDue();

  // What incoming requests need to know of the binding behind a Contact.
  struct ContactOwner {
    std::string key;
    RegistrationState state;
    std::string pbx_ip;  // where the PBX answered our last successful REGISTER from
  };
  std::optional<ContactOwner> findByContact(std::string_view contact_user) const;
  // For a woken app signing in at the device listener: the binding behind
  // the Contact token, its username and H(username:realm:password) (MD5),
  // cached like the PBX's HA1. nullopt for unknown or failed bindings.
  std::optional<DeviceSecret> deviceSecret(std::string_view contact_user, std::string_view realm);

  // Every REGISTER sent and every answer go there (nullptr: no tracing).
  void setTrace(TraceSink* trace) { trace_ = trace; }

  bool contains(const std::string& key) const { return by_key_.count(key) != 0; }
  std::size_t size() const { return by_key_.size(); }
  std::optional<RegistrationStatus> status(const std::string& key) const;
  std::string contactFor(const RegistrationSpec& spec) const;

 private:
  struct Registration;
  struct TimerEntry {
    Millis at;
    std::uint32_t slot;
    std::uint64_t epoch;
    enum class Kind : std::uint8_t { Attempt, Ttl, Warning } kind;
    bool operator>(const TimerEntry& o) const { return at > o.at; }
  };

  Registration* lookup(std::uint32_t slot) const;
  std::uint32_t allocate(std::unique_ptr<Registration> reg);
  void release(std::uint32_t slot);

  void setState(Registration& reg, RegistrationState state);
  void scheduleAttempt(std::uint32_t slot, Registration& reg, Millis at);
  void scheduleTtl(std::uint32_t slot, Registration& reg);
  void requestSend(std::uint32_t slot, Registration& reg, bool urgent);
  bool sendNow(std::uint32_t slot, std::uint64_t epoch);
  void onResponse(std::uint32_t slot, std::uint64_t epoch, const std::string& target,
                  const RegisterResponse& response);
  // Returns how the transaction counts in metrics.
  RegisterResult handleResponse(std::uint32_t slot, Registration& reg, const RegisterResponse& r);
  void handleSuccess(std::uint32_t slot, Registration& reg, const RegisterResponse& r);
  // True when answered with credentials; false when it counted as a rejection.
  bool handleChallenge(std::uint32_t slot, Registration& reg, const RegisterResponse& r);
  void handleRejection(std::uint32_t slot, Registration& reg, FailureReason kind);
  void handleTemporary(std::uint32_t slot, Registration& reg, std::optional<std::uint32_t> retry_after);
  void fail(std::uint32_t slot, Registration& reg, FailureReason reason);
  void startUnregister(std::uint32_t slot, Registration& reg, UnregisterDone done);
  void finishUnregister(std::uint32_t slot, Registration& reg, bool ok);
  void unregisterReplaced(const Registration& old);
  void onTtl(std::uint32_t slot, Registration& reg);
  // Arms the binding's next expiry warning after `after` (its PUT, or the last warning).
  void scheduleWarning(std::uint32_t slot, Registration& reg, Millis after);
  void onWarning(std::uint32_t slot, Registration& reg);
  void traceRequest(const Registration& reg, const RegisterRequest& req);
  void traceResponse(const Registration& reg, const RegisterResponse& r);
  void publish(const Registration& reg, bool routine = false);
  RegistrationStatus makeStatus(const Registration& reg) const;
  Millis backoff(int failures) const;
  void pumpAndRearm();
  void pruneFailed(Millis now);
  void dropFailed(const std::string& key);

  RegistrationPolicy policy_;
  ContactAddresses contacts_;
  Clock& clock_;
  RegisterTransport& transport_;
  const crypto::CredentialSealer& sealer_;
  RegistrationObserver& observer_;
  RegistrationMetrics* metrics_;
  TraceSink* trace_ = nullptr;
  WakeupScheduler& wakeup_;
  std::function<double()> uniform01_;

  std::vector<std::unique_ptr<Registration>> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::unordered_map<std::string, std::uint32_t> by_key_;
  std::unordered_map<std::string, std::uint32_t> by_contact_;  // contact user -> slot
  // Failed bindings, kept (key -> until) for the gauge and for later lookups.
  std::unordered_map<std::string, Millis> failed_;
  Millis next_failed_prune_ = 0;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  TargetPacer pacer_;
  std::optional<Millis> pacer_next_;
  TargetPacer::Stats reported_paced_;  // what the metrics have seen
  std::uint64_t next_epoch_ = 0;
  bool in_run_ = false;
};

}  // namespace sipwake::registrar
