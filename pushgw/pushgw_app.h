#pragma once

#include "pushgw/pushgw_config.h"

namespace sipwake::pushgw {

// The composition root: stream consumer, dispatcher with its providers,
// feedback to Redis, /metrics; runs until SIGTERM/SIGINT. Jobs in progress
// when it stops stay pending in the group and are claimed by another
// instance (or this one after a restart).
int runPushgw(const PushgwConfig& config);

}  // namespace sipwake::pushgw
