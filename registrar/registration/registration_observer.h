#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/event/clock.h"
#include "registrar/registration/registration_spec.h"
#include "registrar/registration/registration_state.h"

namespace sipwake::registrar {

// The last answer a binding got: a SIP response, or our own transport error.
struct LastResponse {
  int code = 0;  // 0: nothing yet
  std::string reason;
  bool local = false;  // timeout / unreachable, not from the PBX
};

// A binding's state as the engine sees it, to be persisted and shown by GET.
struct RegistrationStatus {
  std::string key;
  std::uint64_t generation = 0;
  RegistrationState state = RegistrationState::Registering;
  int failures = 0;  // consecutive
  int auth_rejections = 0;
  int temporary_failures = 0;
  Millis first_failure_at = 0;
  LastResponse last;
  Millis expires_at = 0;
  Millis next_attempt_at = 0;
  std::uint32_t granted_expires = 0;
  std::uint32_t cseq = 0;
  std::string call_id;
  std::string contact;
  std::string registered_contact;  // set on a success: the Contact the PBX accepted
  std::optional<FailureReason> failure_reason;
  std::string challenge;  // serializeChallenge() of the PBX's last challenge, if any
  std::uint32_t nonce_count = 0;
  // A refresh that changed only timing (expires_at, next_attempt_at, cseq,
  // nonce_count, updated_at): the other fields are not filled in.
  bool routine = false;
  Millis updated_at = 0;
};

// Receives what the engine decides; implemented by the store (write-behind to
// Redis) and the push queue. Called on the SIP thread; must not block.
class RegistrationObserver {
 public:
  virtual ~RegistrationObserver() = default;
  virtual void onStatus(const RegistrationStatus& status) = 0;
  // The binding failed for good: delete its credentials, tell its devices.
  virtual void onFailed(const RegistrationStatus& status, FailureReason reason) = 0;
  // Not refreshed by its app within the binding TTL: erase it (un-REGISTER sent).
  virtual void onExpired(const std::string& key, std::uint64_t generation) = 0;
  // The binding will be erased at `expires_at` unless its app PUTs it again:
  // warn its devices (binding_expiring), once per warning `offset` and PUT.
  virtual void onExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                          Millis expires_at) {
    (void)key, (void)generation, (void)offset, (void)expires_at;
  }
};

}  // namespace sipwake::registrar
