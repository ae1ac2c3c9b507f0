#pragma once

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "registrar/binding/binding_store.h"

namespace sipwake::registrar {

// What GET /v1/bindings/{id} shows: the state, and in words why a binding
// is not registered. Never the password; push tokens shortened.
nlohmann::json bindingView(const BindingFields& fields, Millis now);

// "a1b2c3d4…" : enough for support staff to match a device, not to push to it.
std::string shortenToken(const std::string& token);

}  // namespace sipwake::registrar
