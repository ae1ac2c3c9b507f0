#include "registrar/registration/registration_state.h"

namespace sipwake::registrar {

std::string_view toString(RegistrationState state) {
  switch (state) {
    case RegistrationState::Registering: return "registering";
    case RegistrationState::Registered: return "registered";
    case RegistrationState::Retrying: return "retrying";
    case RegistrationState::Failed: return "failed";
    case RegistrationState::Unregistered: return "unregistered";
  }
  return "registering";
}

std::optional<RegistrationState> registrationStateFromString(std::string_view text) {
  for (auto s : {RegistrationState::Registering, RegistrationState::Registered,
                 RegistrationState::Retrying, RegistrationState::Failed,
                 RegistrationState::Unregistered}) {
    if (toString(s) == text) return s;
  }
  return std::nullopt;
}

}  // namespace sipwake::registrar
