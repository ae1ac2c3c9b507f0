#pragma once

#include "common/event/clock.h"

namespace sipwake {

// Arms the owner's timer so the component's runDue() is called at (or soon
// after) `when`. Lets state machines keep their own deadlines without knowing
// which event loop drives them.
class WakeupScheduler {
 public:
  virtual ~WakeupScheduler() = default;
  virtual void wakeAt(Millis when) = 0;
};

}  // namespace sipwake
