#pragma once

#include <functional>
#include <string>

#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// One app's way to a push service (APNs, FCM, or the log for local runs).
// Runs on the dispatcher's loop thread.
class PushProvider {
 public:
  using Done = std::function<void(ClassifiedResponse outcome, double latency_seconds)>;
  virtual ~PushProvider() = default;
  virtual const char* name() const = 0;  // "apns" | "fcm" | "log": the metrics label
  // `done` runs once, on the loop thread, never inside send().
  virtual void send(const PushMessage& message, Done done) = 0;
  // The service rejected our credential (provider token / access token):
  // get a new one before the next send.
  virtual void refreshCredentials() = 0;
};

}  // namespace sipwake::pushgw
