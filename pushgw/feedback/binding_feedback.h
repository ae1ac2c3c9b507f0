#pragma once

#include <functional>
#include <string>

#include "common/redis/redis_worker.h"
#include "pushgw/queue/push_job.h"

namespace sipwake::pushgw {

// What pushgw tells the rest of the system, through Redis: a provider accepted
// a call's push (the owning registrar sends another 180), a token is gone
// (removed from its binding; a binding left without devices is handed to its
// registrar to un-register), and whether a call still rings before a retry.
// Every call returns at once; Redis work runs on the worker's thread.
class BindingFeedback {
 public:
  explicit BindingFeedback(redis::RedisWorker& worker) : worker_(worker) {}

  void pushDelivered(const PushJob& job);
  // `done(removed)` runs on the worker thread.
  void removeToken(const PushJob& job, std::function<void(bool removed)> done);
  // `done(ringing)` runs on the worker thread; true when unknown (be generous).
  void callStillRinging(const PushJob& job, std::function<void(bool ringing)> done);

 private:
  redis::RedisWorker& worker_;
};

}  // namespace sipwake::pushgw
