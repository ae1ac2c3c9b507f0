#pragma once

#include <optional>
#include <string_view>

namespace sipwake::registrar {

// The state of one binding's registration at its PBX, as the API shows it.
enum class RegistrationState {
  Registering,   // first REGISTER (or one after a change) in progress
  Registered,    // the PBX holds our contact
  Retrying,      // the last attempt failed; waiting for the next one
  Failed,        // gave up: credentials deleted
  Unregistered,  // removed on request (DELETE, expiry, no devices left)
};

std::string_view toString(RegistrationState state);
std::optional<RegistrationState> registrationStateFromString(std::string_view text);

}  // namespace sipwake::registrar
