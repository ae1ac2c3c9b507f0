#include "registrar/registration/registration_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/crypto/hash.h"
#include "common/crypto/random.h"
#include "common/log/logger.h"
#include "common/util/redact.h"
#include "registrar/binding/target_policy.h"

namespace sipwake::registrar {

// One binding's registration. Holds no sofia object between transactions:
// a few strings and counters, so 100k of them stay small.
struct RegistrationEngine::Registration {
  RegistrationSpec spec;
  std::uint32_t requested_expires = 0;  // from the PUT; spec.expires may be raised by 423
  RegistrationState state = RegistrationState::Registering;

  bool unregistering = false;
  bool replaced_ghost = false;  // un-registers a replaced contact; not in by_key_
  bool parked = false;          // handed to another instance; see park()
  std::string previous_contact;  // another instance's Contact to remove
  std::string registered_contact;
  UnregisterDone unregister_done;

  // Digest state. A 401 to credentials that answered a challenge we just got
  // is a rejection; a 401 to credentials built from an older (cached) nonce
  // is merely a new challenge (nua does the same, see PITFALLS).
  std::optional<DigestChallenge> challenge;
  std::uint32_t nonce_count = 0;
  // H(user:realm:password) for the challenge's realm and algorithm: cached so
  // refreshes neither decrypt the password nor hash it (wiped on release).
  std::string ha1;
  // The same for the device listener's realm (woken apps sign in with the
  // binding's credentials), with the realm it was computed for.
  std::string device_ha1;
  std::string device_realm;
  bool challenge_fresh = false;
  bool sent_credentials = false;
  bool sent_fresh_answer = false;
  std::uint8_t challenges_in_row = 0;
  std::uint8_t too_brief_in_row = 0;

  std::uint64_t send_epoch = 0;  // the transaction we wait for; older answers are ignored
  Millis sent_at = 0;

  int rejections = 0;
  int temporary_failures = 0;
  Millis first_failure_at = 0;
  Millis expires_at = 0;
  Millis next_attempt_at = 0;
  std::uint32_t granted = 0;
  std::string pbx_ip;
  LastResponse last;
  std::optional<FailureReason> failure_reason;

  std::uint64_t attempt_timer = 0;  // epoch of the live attempt timer, 0: none
  std::uint64_t ttl_timer = 0;
  std::uint64_t warning_timer = 0;
  std::uint8_t next_warning = 0;  // index into policy.expiry_warnings
};

namespace {

constexpr int kMaxChallengesInRow = 3;  // stale nonces or cached ones; then it is a rejection
constexpr int kMaxTooBriefInRow = 2;
constexpr std::uint32_t kMaxExpires = 24 * 3600;

RegisterResult resultOf(const RegisterResponse& r) {
  if (r.local) return r.status == 408 ? RegisterResult::Timeout : RegisterResult::TransportError;
  if (r.status >= 200 && r.status < 300) return RegisterResult::Ok;
  if (r.status == 401 || r.status == 407) return RegisterResult::Challenged;
  if (r.status == 403) return RegisterResult::AuthRejected;
  if (r.status == 423) return RegisterResult::TooBrief;
  if (r.status == 408 || r.status == 480 || r.status >= 500) return RegisterResult::ServerError;
  return RegisterResult::Rejected;
}

std::optional<DigestChallenge> bestChallenge(const RegisterResponse& r) {
  std::optional<DigestChallenge> best;
  auto consider = [&](const std::vector<std::string>& headers, bool proxy) {
    for (const auto& h : headers) {
      auto c = parseDigestChallenge(h, proxy);
      if (c && (!best || digestAlgorithmRank(c->algorithm) > digestAlgorithmRank(best->algorithm))) {
        best = std::move(c);
      }
    }
  };
  consider(r.www_authenticate, false);
  consider(r.proxy_authenticate, true);
  return best;
}

}  // namespace

RegistrationEngine::RegistrationEngine(RegistrationPolicy policy, ContactAddresses contacts,
                                       Clock& clock, RegisterTransport& transport,
                                       const crypto::CredentialSealer& sealer,
                                       RegistrationObserver& observer,
                                       RegistrationMetrics* metrics, WakeupScheduler& wakeup,
                                       std::function<double()> uniform01)
    : policy_(policy),
      contacts_(std::move(contacts)),
      clock_(clock),
      transport_(transport),
      sealer_(sealer),
      observer_(observer),
      metrics_(metrics),
      wakeup_(wakeup),
      uniform01_(std::move(uniform01)),
      pacer_(policy.pacing) {}

RegistrationEngine::~RegistrationEngine() = default;

RegistrationEngine::Registration* RegistrationEngine::lookup(std::uint32_t slot) const {
  return slot < slots_.size() ? slots_[slot].get() : nullptr;
}

std::uint32_t RegistrationEngine::allocate(std::unique_ptr<Registration> reg) {
  if (metrics_) metrics_->bindingEntered(reg->state);
  if (!free_slots_.empty()) {
    std::uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(reg);
    return slot;
  }
  slots_.push_back(std::move(reg));
  return static_cast<std::uint32_t>(slots_.size() - 1);
}

void RegistrationEngine::release(std::uint32_t slot) {
  Registration* reg = lookup(slot);
  if (!reg) return;
  if (metrics_ && !reg->parked) metrics_->bindingLeft(reg->state);
  if (!reg->replaced_ghost) {
    auto it = by_key_.find(reg->spec.key);
    if (it != by_key_.end() && it->second == slot) by_key_.erase(it);
    auto c = by_contact_.find(reg->spec.contact_user);
    if (c != by_contact_.end() && c->second == slot) by_contact_.erase(c);
  }
  crypto::wipe(reg->spec.sealed_password);
  crypto::wipe(reg->ha1);
  crypto::wipe(reg->device_ha1);
  slots_[slot].reset();
  free_slots_.push_back(slot);
}

std::string RegistrationEngine::contactFor(const RegistrationSpec& spec) const {
  const std::string& hostport =
      spec.transport == SipTransport::Tls ? contacts_.tls : contacts_.udp_tcp;
  return "sip:" + spec.contact_user + "@" + hostport + ";transport=" +
         std::string(toString(spec.transport));
}

void RegistrationEngine::setState(Registration& reg, RegistrationState state) {
  if (reg.state == state) return;
  if (metrics_ && !reg.parked) {  // a parked binding is counted by its new owner
    metrics_->bindingLeft(reg.state);
    metrics_->bindingEntered(state);
  }
  reg.state = state;
}

void RegistrationEngine::scheduleAttempt(std::uint32_t slot, Registration& reg, Millis at) {
  // Attempts fall on a coarse grid so one wake-up sends many of them and
  // their answers arrive together: a wake-up per refresh costs more CPU
  // than the refresh itself (measured). Refresh and back-off times have
  // seconds of slack; 100 ms changes nothing for them.
  if (reg.parked) return;  // the new owner refreshes
  constexpr Millis kGrid = 100;
  at = (at + kGrid - 1) / kGrid * kGrid;
  reg.attempt_timer = ++next_epoch_;
  reg.next_attempt_at = at;
  timers_.push({at, slot, reg.attempt_timer, TimerEntry::Kind::Attempt});
}

void RegistrationEngine::scheduleTtl(std::uint32_t slot, Registration& reg) {
  reg.ttl_timer = ++next_epoch_;
  timers_.push({reg.spec.put_at + policy_.binding_ttl, slot, reg.ttl_timer, TimerEntry::Kind::Ttl});
  reg.next_warning = 0;
  scheduleWarning(slot, reg, reg.spec.put_at);
}

void RegistrationEngine::scheduleWarning(std::uint32_t slot, Registration& reg, Millis after) {
  reg.warning_timer = 0;
  const Millis expiry = reg.spec.put_at + policy_.binding_ttl;
  const auto& offsets = policy_.expiry_warnings;
  // A warning due before `after` (a TTL shorter than the offset) is skipped.
  while (reg.next_warning < offsets.size() && expiry - offsets[reg.next_warning] <= after) {
    ++reg.next_warning;
  }
  if (reg.next_warning >= offsets.size()) return;
  reg.warning_timer = ++next_epoch_;
  timers_.push({expiry - offsets[reg.next_warning], slot, reg.warning_timer, TimerEntry::Kind::Warning});
}

void RegistrationEngine::onWarning(std::uint32_t slot, Registration& reg) {
  const Millis now = clock_.now();
  const Millis expiry = reg.spec.put_at + policy_.binding_ttl;
  const auto& offsets = policy_.expiry_warnings;
  // After a pause (a restart, a busy loop) several may be due: the latest says it all.
  std::size_t due = reg.next_warning;
  while (due + 1 < offsets.size() && expiry - offsets[due + 1] <= now) ++due;
  reg.next_warning = static_cast<std::uint8_t>(due + 1);
  if (!reg.unregistering && reg.state != RegistrationState::Failed) {
    log::info("binding expiring: warning its devices",
              {{"binding", reg.spec.key}, {"in_seconds", std::to_string((expiry - now) / kSecond)}});
    observer_.onExpiring(reg.spec.key, reg.spec.generation, offsets[due], expiry);
  }
  scheduleWarning(slot, reg, now);
}

void RegistrationEngine::traceRequest(const Registration& reg, const RegisterRequest& req) {
  SipTraceEntry e;
  e.at = clock_.now();
  e.sent = true;
  e.method = "REGISTER";
  e.uri = req.request_uri;
  e.call_id = req.call_id;
  e.cseq = req.cseq;
  e.headers = {{"To", "<" + req.aor + ">"},
               {"Contact", "<" + req.contact + ">"},
               {"Expires", std::to_string(req.expires)}};
  if (!req.authorization.empty()) {
    e.headers.emplace_back(req.proxy_authorization ? "Proxy-Authorization" : "Authorization",
                           redactDigest(req.authorization));
  }
  e.headers.emplace_back("X-Sent-To", req.destination);  // not a header: where it went
  trace_->trace(reg.spec.key, std::move(e));
}

void RegistrationEngine::traceResponse(const Registration& reg, const RegisterResponse& r) {
  SipTraceEntry e;
  e.at = clock_.now();
  e.status = r.status;
  e.reason = r.reason;
  e.local = r.local;
  e.call_id = reg.spec.call_id;
  e.cseq = reg.spec.cseq;
  for (const auto& c : r.www_authenticate) e.headers.emplace_back("WWW-Authenticate", redactDigest(c));
  for (const auto& c : r.proxy_authenticate) e.headers.emplace_back("Proxy-Authenticate", redactDigest(c));
  if (r.contact_listed && r.contact_expires) {
    e.headers.emplace_back("Contact", "ours;expires=" + std::to_string(*r.contact_expires));
  }
  if (r.expires_header) e.headers.emplace_back("Expires", std::to_string(*r.expires_header));
  if (r.min_expires) e.headers.emplace_back("Min-Expires", std::to_string(*r.min_expires));
  if (r.retry_after) e.headers.emplace_back("Retry-After", std::to_string(*r.retry_after));
  if (!r.source_ip.empty()) e.headers.emplace_back("X-Received-From", r.source_ip);
  trace_->trace(reg.spec.key, std::move(e));
}

void RegistrationEngine::requestSend(std::uint32_t slot, Registration& reg, bool urgent) {
  if (reg.parked && !reg.unregistering) return;
  reg.attempt_timer = 0;
  reg.next_attempt_at = 0;
  reg.send_epoch = ++next_epoch_;
  pacer_.enqueue(reg.spec.destination, slot, reg.send_epoch, urgent);
}

void RegistrationEngine::upsert(RegistrationSpec spec, std::optional<ResumeState> resume) {
  const Millis now = clock_.now();
  dropFailed(spec.key);
  auto it = by_key_.find(spec.key);
  if (it == by_key_.end()) {
    auto reg = std::make_unique<Registration>();
    reg->requested_expires = spec.expires;
    reg->spec = std::move(spec);
    if (resume) {
      reg->rejections = resume->auth_rejections;
      reg->temporary_failures = resume->temporary_failures;
      reg->first_failure_at = resume->first_failure_at;
      reg->expires_at = resume->expires_at;
      reg->challenge = deserializeChallenge(resume->challenge);
      reg->nonce_count = resume->nonce_count;
      if (!resume->previous_contact.empty() && resume->previous_contact != contactFor(reg->spec)) {
        reg->previous_contact = resume->previous_contact;
        reg->registered_contact = resume->previous_contact;
      } else {
        reg->registered_contact = resume->previous_contact;
      }
      if (resume->state == RegistrationState::Registered && resume->expires_at > now) {
        reg->state = RegistrationState::Registered;
      } else if (resume->state == RegistrationState::Retrying) {
        reg->state = RegistrationState::Retrying;
      }
    }
    std::string key = reg->spec.key;
    std::string contact_user = reg->spec.contact_user;
    std::uint32_t slot = allocate(std::move(reg));
    by_key_[key] = slot;
    by_contact_[contact_user] = slot;
    Registration& r = *slots_[slot];
    scheduleTtl(slot, r);
    // A restarted instance refreshes at once (paced): the PBX may have lost
    // us meanwhile, and the same Contact and Call-ID make it a refresh.
    requestSend(slot, r, false);
    publish(r);
    pumpAndRearm();
    return;
  }

  std::uint32_t slot = it->second;
  Registration& reg = *slots_[slot];
  if (spec.generation < reg.spec.generation) return;  // an older read of Redis
  if (reg.parked) {
    // The shard came back before the grace ran out: carry on refreshing.
    reg.parked = false;
    if (metrics_) metrics_->bindingEntered(reg.state);
    if (resume && !resume->previous_contact.empty() &&
        resume->previous_contact != contactFor(reg.spec)) {
      reg.previous_contact = resume->previous_contact;
    }
    reg.spec.cseq = std::max(reg.spec.cseq, spec.cseq);
    scheduleTtl(slot, reg);
    scheduleWarning(slot, reg, clock_.now());
    requestSend(slot, reg, false);
  }
  if (reg.unregistering) {
    // A PUT overtook a DELETE or expiry: the app wants the binding after all.
    reg.unregistering = false;
    if (auto done = std::move(reg.unregister_done)) done(false);
  }
  const RegistrationSpec& old = reg.spec;
  bool moved = old.aor != spec.aor || old.destination != spec.destination ||
               old.request_uri != spec.request_uri || old.call_id != spec.call_id ||
               old.contact_user != spec.contact_user || old.transport != spec.transport;
  bool credentials_changed = old.auth_username != spec.auth_username;
  if (!credentials_changed) {
    auto a = sealer_.open(old.sealed_password, old.key);
    auto b = sealer_.open(spec.sealed_password, spec.key);
    credentials_changed = !a || !b || !crypto::constantTimeEqual(a->reveal(), b->reveal());
  }
  bool expires_changed = reg.requested_expires != spec.expires;

  if (moved) unregisterReplaced(reg);
  std::uint32_t cseq = moved ? spec.cseq : std::max(spec.cseq, reg.spec.cseq);
  std::uint32_t effective_expires = expires_changed ? spec.expires : reg.spec.expires;
  crypto::wipe(reg.spec.sealed_password);
  if (reg.spec.contact_user != spec.contact_user) {
    by_contact_.erase(reg.spec.contact_user);
    by_contact_[spec.contact_user] = slot;
  }
  reg.requested_expires = spec.expires;
  reg.spec = std::move(spec);
  reg.spec.cseq = cseq;
  reg.spec.expires = effective_expires;
  scheduleTtl(slot, reg);

  if (moved || credentials_changed || expires_changed || reg.state == RegistrationState::Failed) {
    reg.challenge.reset();
    crypto::wipe(reg.ha1);
    crypto::wipe(reg.device_ha1);
    reg.challenge_fresh = false;
    reg.rejections = 0;
    reg.temporary_failures = 0;
    reg.first_failure_at = 0;
    if (moved) reg.expires_at = 0;
    setState(reg, moved || reg.state != RegistrationState::Registered
                      ? RegistrationState::Registering
                      : reg.state);
    requestSend(slot, reg, false);
  }
  publish(reg);
  pumpAndRearm();
}

void RegistrationEngine::unregisterReplaced(const Registration& old) {
  if (old.state != RegistrationState::Registered || old.spec.sealed_password.empty()) return;
  auto ghost = std::make_unique<Registration>();
  ghost->spec = old.spec;
  ghost->replaced_ghost = true;
  ghost->challenge = old.challenge;
  ghost->ha1 = old.ha1;
  ghost->nonce_count = old.nonce_count;
  ghost->state = old.state;
  std::uint32_t slot = allocate(std::move(ghost));
  startUnregister(slot, *slots_[slot], nullptr);
}

void RegistrationEngine::remove(const std::string& key, UnregisterDone done) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    dropFailed(key);
    if (done) done(false);
    return;
  }
  std::uint32_t slot = it->second;
  startUnregister(slot, *slots_[slot], std::move(done));
  pumpAndRearm();
}

void RegistrationEngine::forget(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  release(it->second);
}

void RegistrationEngine::park(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  Registration& reg = *slots_[it->second];
  if (reg.parked || reg.unregistering) return;
  reg.parked = true;
  if (metrics_) metrics_->bindingLeft(reg.state);
  reg.attempt_timer = 0;
  reg.next_attempt_at = 0;
  // The grace timer reuses the TTL slot: a parked binding cannot expire here.
  reg.ttl_timer = ++next_epoch_;
  reg.warning_timer = 0;  // the new owner warns
  timers_.push({clock_.now() + policy_.handover_grace, it->second, reg.ttl_timer, TimerEntry::Kind::Ttl});
  pumpAndRearm();
}

std::vector<std::string> RegistrationEngine::keys() const {
  std::vector<std::string> out;
  out.reserve(by_key_.size());
  for (const auto& [key, slot] : by_key_) out.push_back(key);
  return out;
}

void RegistrationEngine::replaceSealedCredential(const std::string& key, std::uint64_t generation,
                                                 std::string sealed_password) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  Registration& reg = *slots_[it->second];
  if (reg.spec.generation != generation || reg.spec.sealed_password.empty()) return;
  crypto::wipe(reg.spec.sealed_password);
  reg.spec.sealed_password = std::move(sealed_password);
}

void RegistrationEngine::startUnregister(std::uint32_t slot, Registration& reg,
                                         UnregisterDone done) {
  if (reg.unregistering && reg.unregister_done) reg.unregister_done(false);
  reg.unregistering = true;
  reg.unregister_done = std::move(done);
  reg.ttl_timer = 0;
  reg.warning_timer = 0;
  reg.attempt_timer = 0;
  reg.challenges_in_row = 0;
  if (reg.spec.sealed_password.empty()) {
    finishUnregister(slot, reg, false);
    return;
  }
  requestSend(slot, reg, true);
}

void RegistrationEngine::finishUnregister(std::uint32_t slot, Registration& reg, bool ok) {
  UnregisterDone done = std::move(reg.unregister_done);
  setState(reg, RegistrationState::Unregistered);
  release(slot);
  if (done) done(ok);
}

bool RegistrationEngine::sendNow(std::uint32_t slot, std::uint64_t epoch) {
  Registration* reg = lookup(slot);
  if (!reg || reg->send_epoch != epoch) return false;
  RegistrationSpec& spec = reg->spec;

  RegisterRequest req;
  req.request_uri = spec.request_uri;
  req.destination = spec.destination;
  req.tenant = tenantOfKey(spec.key);
  req.aor = spec.aor;
  req.contact = contactFor(spec);
  req.call_id = spec.call_id;
  req.cseq = ++spec.cseq;
  req.expires = reg->unregistering ? 0 : spec.expires;
  req.removed_contact = reg->previous_contact;
  reg->sent_credentials = false;
  reg->sent_fresh_answer = reg->challenge_fresh;
  reg->challenge_fresh = false;
  if (reg->challenge) {
    if (reg->ha1.empty()) {
      if (auto password = sealer_.open(spec.sealed_password, spec.key)) {
        reg->ha1 = digestHa1(*reg->challenge, spec.auth_username, password->reveal());
      } else {
        // Sealed under a key we no longer have: nothing we can send will work.
        log::error("cannot open sealed credentials", {{"binding", spec.key}});
      }
    }
    if (!reg->ha1.empty()) {
      std::string cnonce = crypto::uniqueToken(64);
      DigestInput in{spec.auth_username, "", "REGISTER", spec.request_uri, "",
                     ++reg->nonce_count, cnonce, reg->ha1};
      req.authorization = buildDigestAuthorization(*reg->challenge, in);
      req.proxy_authorization = reg->challenge->proxy;
      reg->sent_credentials = true;
    }
  }
  reg->sent_at = clock_.now();
  if (trace_ && !reg->replaced_ghost) traceRequest(*reg, req);
  std::string target = spec.destination;
  transport_.send(req, spec.contact_user,
                  [this, slot, epoch, target](const RegisterResponse& response) {
                    onResponse(slot, epoch, target, response);
                  });
  return true;
}

void RegistrationEngine::onResponse(std::uint32_t slot, std::uint64_t epoch,
                                    const std::string& target, const RegisterResponse& response) {
  pacer_.release(target);
  Registration* reg = lookup(slot);
  if (reg && reg->send_epoch == epoch) {
    reg->send_epoch = 0;
    double latency = static_cast<double>(clock_.now() - reg->sent_at) / 1000.0;
    reg->last = LastResponse{response.status, response.reason, response.local};
    if (trace_ && !reg->replaced_ghost) traceResponse(*reg, response);
    RegisterResult result = handleResponse(slot, *reg, response);
    if (metrics_ && response.target_forbidden) {
      metrics_->targetForbidden();
    } else if (metrics_) {
      metrics_->requestEnded(result, latency);
    }
  }
  pumpAndRearm();
}

RegisterResult RegistrationEngine::handleResponse(std::uint32_t slot, Registration& reg,
                                                  const RegisterResponse& r) {
  RegisterResult result = resultOf(r);
  // An answer to a refresh sent before we let the binding go: the new owner
  // decides what happens next.
  if (reg.parked && !reg.unregistering) return result;
  if (result == RegisterResult::Challenged) {
    return handleChallenge(slot, reg, r) ? RegisterResult::Challenged
                                         : RegisterResult::AuthRejected;
  }
  reg.challenges_in_row = 0;
  if (result == RegisterResult::Ok) {
    handleSuccess(slot, reg, r);
    return result;
  }
  if (reg.unregistering) {
    finishUnregister(slot, reg, false);
    return result;
  }
  switch (result) {
    case RegisterResult::AuthRejected:
      handleRejection(slot, reg, FailureReason::AuthRejected);
      break;
    case RegisterResult::Rejected:
      handleRejection(slot, reg, FailureReason::Rejected);
      break;
    case RegisterResult::TooBrief:
      if (r.min_expires && *r.min_expires > reg.spec.expires && *r.min_expires <= kMaxExpires &&
          reg.too_brief_in_row < kMaxTooBriefInRow) {
        // RFC 3261 10.2.8: ask again with at least Min-Expires.
        ++reg.too_brief_in_row;
        reg.spec.expires = *r.min_expires;
        reg.challenge_fresh = reg.challenge.has_value();
        requestSend(slot, reg, true);
        break;
      }
      handleTemporary(slot, reg, std::nullopt);
      break;
    default:
      handleTemporary(slot, reg, r.retry_after);
      break;
  }
  return result;
}

bool RegistrationEngine::handleChallenge(std::uint32_t slot, Registration& reg,
                                         const RegisterResponse& r) {
  auto challenge = bestChallenge(r);
  if (!challenge || reg.spec.sealed_password.empty()) {
    if (reg.unregistering) {
      finishUnregister(slot, reg, false);
    } else {
      log::warn("PBX challenge cannot be answered",
                {{"binding", reg.spec.key}, {"status", std::to_string(r.status)}});
      handleRejection(slot, reg, FailureReason::AuthRejected);
    }
    return false;
  }
  bool rejection = reg.sent_credentials && reg.sent_fresh_answer && !challenge->stale;
  if (!rejection && reg.challenges_in_row >= kMaxChallengesInRow) rejection = true;
  if (!reg.challenge || reg.challenge->realm != challenge->realm ||
      reg.challenge->algorithm != challenge->algorithm) {
    crypto::wipe(reg.ha1);
  }
  reg.challenge = std::move(challenge);
  reg.nonce_count = 0;
  // Whatever happens next, the next request answers this very challenge.
  reg.challenge_fresh = true;
  if (!rejection) {
    ++reg.challenges_in_row;
    requestSend(slot, reg, true);
    return true;
  }
  reg.challenges_in_row = 0;
  if (reg.unregistering) {
    finishUnregister(slot, reg, false);
    return false;
  }
  handleRejection(slot, reg, FailureReason::AuthRejected);
  return false;
}

void RegistrationEngine::handleSuccess(std::uint32_t slot, Registration& reg,
                                       const RegisterResponse& r) {
  reg.too_brief_in_row = 0;
  if (r.next_nonce && reg.challenge) {
    reg.challenge->nonce = *r.next_nonce;
    reg.nonce_count = 0;
  }
  reg.previous_contact.clear();  // the PBX removed it with this REGISTER
  if (reg.unregistering) {
    finishUnregister(slot, reg, true);
    return;
  }
  if (reg.parked) return;  // a refresh that was under way when we let go
  reg.registered_contact = contactFor(reg.spec);
  std::uint32_t granted = reg.spec.expires;
  if (r.contact_listed && r.contact_expires) {
    granted = *r.contact_expires;
  } else if (r.expires_header) {
    granted = *r.expires_header;
  }
  if (granted == 0) {
    // The PBX answered 200 but keeps no contact for us.
    reg.last.reason = "contact not kept by the PBX";
    handleTemporary(slot, reg, std::nullopt);
    return;
  }
  const Millis now = clock_.now();
  bool routine = reg.state == RegistrationState::Registered && reg.granted == granted &&
                 reg.rejections == 0 && reg.temporary_failures == 0;
  reg.rejections = 0;
  reg.temporary_failures = 0;
  reg.first_failure_at = 0;
  reg.granted = granted;
  if (!r.source_ip.empty()) reg.pbx_ip = r.source_ip;
  reg.expires_at = now + static_cast<Millis>(granted) * kSecond;
  setState(reg, RegistrationState::Registered);
  // Refresh at 75-90 % of the granted time (jittered so bindings that were
  // registered together spread out), never later than 1 s before expiry.
  double ratio = policy_.refresh_min_ratio +
                 (policy_.refresh_max_ratio - policy_.refresh_min_ratio) * uniform01_();
  Millis delay = static_cast<Millis>(granted * 1000.0 * ratio);
  delay = std::min(delay, std::max<Millis>(granted * 1000 - kSecond, granted * 500));
  scheduleAttempt(slot, reg, now + delay);
  publish(reg, routine);
}

void RegistrationEngine::handleRejection(std::uint32_t slot, Registration& reg,
                                         FailureReason kind) {
  const Millis now = clock_.now();
  if (reg.first_failure_at == 0) reg.first_failure_at = now;
  ++reg.rejections;
  if (reg.rejections >= policy_.max_rejections) {
    fail(slot, reg, kind);
    return;
  }
  setState(reg, RegistrationState::Retrying);
  scheduleAttempt(slot, reg, now + backoff(reg.rejections));
  publish(reg);
}

void RegistrationEngine::handleTemporary(std::uint32_t slot, Registration& reg,
                                         std::optional<std::uint32_t> retry_after) {
  const Millis now = clock_.now();
  if (reg.first_failure_at == 0) reg.first_failure_at = now;
  ++reg.temporary_failures;
  if (reg.temporary_failures >= policy_.max_temporary_failures ||
      now - reg.first_failure_at >= policy_.max_failure_duration) {
    fail(slot, reg, FailureReason::Unreachable);
    return;
  }
  Millis delay = backoff(reg.temporary_failures);
  if (retry_after) delay = std::max(delay, static_cast<Millis>(*retry_after) * kSecond);
  setState(reg, RegistrationState::Retrying);
  scheduleAttempt(slot, reg, now + delay);
  publish(reg);
}

void RegistrationEngine::fail(std::uint32_t slot, Registration& reg, FailureReason reason) {
  log::warn("binding failed; credentials deleted",
            {{"binding", reg.spec.key}, {"reason", std::string(toString(reason))},
             {"last_code", std::to_string(reg.last.code)}});
  if (metrics_) metrics_->bindingFailed(reason);
  setState(reg, RegistrationState::Failed);
  reg.failure_reason = reason;
  reg.next_attempt_at = 0;
  RegistrationStatus status = makeStatus(reg);
  failed_[reg.spec.key] = clock_.now() + policy_.failed_retention;
  if (metrics_) metrics_->bindingEntered(RegistrationState::Failed);
  release(slot);
  observer_.onFailed(status, reason);
}

void RegistrationEngine::onTtl(std::uint32_t slot, Registration& reg) {
  log::info("binding expired: not refreshed by its app", {{"binding", reg.spec.key}});
  std::string key = reg.spec.key;
  std::uint64_t generation = reg.spec.generation;
  startUnregister(slot, reg, [this, key, generation](bool) {
    observer_.onExpired(key, generation);
  });
}

Millis RegistrationEngine::backoff(int failures) const {
  double exp = std::ldexp(static_cast<double>(policy_.backoff_base), std::clamp(failures - 1, 0, 40));
  double capped = std::min(exp, static_cast<double>(policy_.backoff_max));
  double jitter = 1.0 + policy_.backoff_jitter * (2.0 * uniform01_() - 1.0);
  return static_cast<Millis>(capped * jitter);
}

RegistrationStatus RegistrationEngine::makeStatus(const Registration& reg) const {
  RegistrationStatus s;
  s.key = reg.spec.key;
  s.generation = reg.spec.generation;
  s.state = reg.state;
  s.auth_rejections = reg.rejections;
  s.temporary_failures = reg.temporary_failures;
  s.failures = reg.rejections + reg.temporary_failures;
  s.first_failure_at = reg.first_failure_at;
  s.last = reg.last;
  s.expires_at = reg.expires_at;
  s.next_attempt_at = reg.next_attempt_at;
  s.granted_expires = reg.granted;
  s.cseq = reg.spec.cseq;
  s.call_id = reg.spec.call_id;
  s.contact = contactFor(reg.spec);
  s.registered_contact = reg.registered_contact;
  s.failure_reason = reg.failure_reason;
  if (reg.challenge) s.challenge = serializeChallenge(*reg.challenge);
  s.nonce_count = reg.nonce_count;
  s.updated_at = clock_.now();
  return s;
}

void RegistrationEngine::publish(const Registration& reg, bool routine) {
  if (reg.replaced_ghost || reg.parked) return;
  if (!routine) {
    observer_.onStatus(makeStatus(reg));
    return;
  }
  // Most publications are refreshes: keep them cheap.
  RegistrationStatus s;
  s.routine = true;
  s.key = reg.spec.key;
  s.generation = reg.spec.generation;
  s.state = reg.state;
  s.expires_at = reg.expires_at;
  s.next_attempt_at = reg.next_attempt_at;
  s.cseq = reg.spec.cseq;
  s.nonce_count = reg.nonce_count;
  s.updated_at = clock_.now();
  observer_.onStatus(s);
}

std::optional<RegistrationEngine::ContactOwner> RegistrationEngine::findByContact(
    std::string_view contact_user) const {
  auto it = by_contact_.find(std::string(contact_user));
  if (it == by_contact_.end()) return std::nullopt;
  const Registration& reg = *slots_[it->second];
  return ContactOwner{reg.spec.key, reg.state, reg.pbx_ip};
}

std::optional<DeviceSecret> RegistrationEngine::deviceSecret(std::string_view contact_user,
                                                             std::string_view realm) {
  auto it = by_contact_.find(std::string(contact_user));
  if (it == by_contact_.end()) return std::nullopt;
  Registration& reg = *slots_[it->second];
  if (reg.state == RegistrationState::Failed || reg.unregistering) return std::nullopt;
  if (reg.device_ha1.empty() || reg.device_realm != realm) {
    auto password = sealer_.open(reg.spec.sealed_password, reg.spec.key);
    if (!password) return std::nullopt;
    DigestChallenge ours;
    ours.realm = std::string(realm);
    reg.device_ha1 = digestHa1(ours, reg.spec.auth_username, password->reveal());
    reg.device_realm = std::string(realm);
  }
  return DeviceSecret{reg.spec.key, reg.spec.auth_username, reg.device_ha1};
}

std::optional<RegistrationStatus> RegistrationEngine::status(const std::string& key) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  return makeStatus(*slots_[it->second]);
}

void RegistrationEngine::runDue() {
  const Millis now = clock_.now();
  while (!timers_.empty() && timers_.top().at <= now) {
    TimerEntry e = timers_.top();
    timers_.pop();
    Registration* reg = lookup(e.slot);
    if (!reg) continue;
    if (e.kind == TimerEntry::Kind::Ttl) {
      if (reg->ttl_timer == e.epoch) {
        reg->ttl_timer = 0;
        if (reg->parked) {
          release(e.slot);  // the handover grace is over
        } else {
          onTtl(e.slot, *reg);
        }
      }
    } else if (e.kind == TimerEntry::Kind::Warning) {
      if (reg->warning_timer == e.epoch) onWarning(e.slot, *reg);
    } else if (reg->attempt_timer == e.epoch) {
      requestSend(e.slot, *reg, false);
    }
  }
  pruneFailed(now);
  pumpAndRearm();
}

void RegistrationEngine::dropFailed(const std::string& key) {
  if (failed_.erase(key) != 0 && metrics_) metrics_->bindingLeft(RegistrationState::Failed);
}

void RegistrationEngine::pruneFailed(Millis now) {
  if (now < next_failed_prune_) return;
  next_failed_prune_ = now + kMinute;
  for (auto it = failed_.begin(); it != failed_.end();) {
    if (it->second <= now) {
      if (metrics_) metrics_->bindingLeft(RegistrationState::Failed);
      it = failed_.erase(it);
    } else {
      ++it;
    }
  }
}

void RegistrationEngine::pumpAndRearm() {
  if (in_run_) return;  // the outermost call re-arms
  in_run_ = true;
  pacer_next_ = pacer_.dispatch(clock_.now(),
                                [this](std::uint32_t slot, std::uint64_t epoch) {
                                  return sendNow(slot, epoch);
                                });
  in_run_ = false;
  if (metrics_) {
    const TargetPacer::Stats& stats = pacer_.stats();
    metrics_->pacedByTarget(stats.delayed_by_target - reported_paced_.delayed_by_target);
    metrics_->pacedByGlobal(stats.delayed_by_global - reported_paced_.delayed_by_global);
    reported_paced_ = stats;
  }
  Millis next = std::numeric_limits<Millis>::max();
  if (!timers_.empty()) next = timers_.top().at;
  if (pacer_next_) next = std::min(next, *pacer_next_);
  if (!failed_.empty()) next = std::min(next, next_failed_prune_);
  if (next != std::numeric_limits<Millis>::max()) wakeup_.wakeAt(next);
}

}  // namespace sipwake::registrar
