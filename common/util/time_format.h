#pragma once

#include <string>

#include "common/event/clock.h"

namespace sipwake {

// RFC 3339 UTC with milliseconds: 2026-11-26T05:30:56.123Z.
std::string isoTime(Millis t);

}  // namespace sipwake
