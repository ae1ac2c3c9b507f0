#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"

namespace sipwake::registrar {

// The trace entry of a push job the registrar queued for pushgw (which adds
// one per provider attempt): {"at", "kind": "push", "event": "queued", "type",
// "device", "provider", "token" (shortened), "call_id"?}.
std::string pushQueuedTrace(const nlohmann::json& job, Millis now);

}  // namespace sipwake::registrar
