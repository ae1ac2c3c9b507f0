#pragma once

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "registrar/binding/binding_store.h"

namespace sipwake::registrar {

// What GET /v1/bindings/{id} shows: the state, and in words why a binding
// is not registered. Never the password; push tokens shortened.
nlohmann::json bindingView(const BindingFields& fields, Millis now);

}  // namespace sipwake::registrar
