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
  // One provider answer to a job that asked for tracing (trace_max > 0):
  // appended to its binding's trace list (capped, expiring).
  struct Attempt {
    std::string provider;  // the provider that answered ("log" without an apps file)
    int attempt = 1;
    int status = 0;        // HTTP status; 0: none
    std::string result;    // delivered, invalid_token, retry_later, refresh_credentials, permanent_error, ...
    std::string reason;
    double latency_seconds = 0;
    Millis at = 0;
  };
  void traceAttempt(const PushJob& job, const Attempt& attempt);
  // A test push's final outcome, published to the registrar that waits for it.
  void testResult(const PushJob& job, const Attempt& attempt, const std::string& result);

 private:
  redis::RedisWorker& worker_;
};

}  // namespace sipwake::pushgw
