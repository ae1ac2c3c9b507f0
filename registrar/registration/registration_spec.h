#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/event/clock.h"
#include "registrar/binding/sip_uri.h"
#include "registrar/registration/registration_state.h"

namespace sipwake::registrar {

// What the engine needs to keep one binding registered. Built from the
// stored binding; the password stays sealed until a challenge needs it.
struct RegistrationSpec {
  std::string key;           // "<tenant>/<binding id>": unique, also the sealing AAD
  std::uint64_t generation = 0;  // bumps on every PUT; stale status writes are dropped
  std::string aor;           // sip:1000@pbx.example.com
  std::string request_uri;   // sip:pbx.example.com
  std::string destination;   // sip:203.0.113.7:5060;transport=tcp
  SipTransport transport = SipTransport::Tcp;
  std::string auth_username;
  std::string sealed_password;
  std::string contact_user;  // our unguessable per-binding token
  std::string call_id;
  std::uint32_t cseq = 0;    // last CSeq used
  std::uint32_t expires = 600;  // what we ask for
  Millis put_at = 0;         // last time the app refreshed the binding (PUT)
};

// Where a binding stood when it was last persisted; lets a restarted
// instance carry on (failure counters, the failure window).
struct ResumeState {
  RegistrationState state = RegistrationState::Registering;
  int auth_rejections = 0;
  int temporary_failures = 0;
  Millis first_failure_at = 0;
  Millis expires_at = 0;
  // The PBX's last challenge: a restarted instance answers it at once instead
  // of sending a REGISTER without credentials first.
  std::string challenge;  // serializeChallenge()
  std::uint32_t nonce_count = 0;
  // The Contact the PBX last accepted for this binding. When it is not ours
  // (another instance registered it), our first REGISTER removes it.
  std::string previous_contact;
};

// Why the engine gave a binding up.
enum class FailureReason { AuthRejected, Rejected, Unreachable };
std::string_view toString(FailureReason reason);

}  // namespace sipwake::registrar
