#pragma once

#include <optional>

#include "common/event/clock.h"
#include "common/http2/http2_message.h"

namespace sipwake::pushgw {

// The Retry-After header of a provider response in delta-seconds form (what
// APNs and Google send). The HTTP-date form is ignored: without it the caller
// falls back to its own back-off. Capped at one hour.
std::optional<Millis> retryAfter(const http2::Response& response);

}  // namespace sipwake::pushgw
