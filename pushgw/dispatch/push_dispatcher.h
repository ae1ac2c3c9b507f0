#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/event/event_loop.h"
#include "pushgw/feedback/binding_feedback.h"
#include "pushgw/provider/push_provider.h"
#include "pushgw/pushgw_metrics.h"
#include "pushgw/queue/job_stream.h"

namespace sipwake::pushgw {

struct RetryPolicy {
  Millis base = kSecond;        // first retry after ~1 s, doubling, jittered
  Millis max = kMinute;
  int max_attempts = 8;         // non-call pushes; calls retry while they ring
};

// Which provider serves a device's app.
class ProviderDirectory {
 public:
  virtual ~ProviderDirectory() = default;
  virtual PushProvider* find(const std::string& provider, const std::string& app) = 0;
};

// Sends each push job through its provider and acts on the answer, once:
// delivered -> acknowledge (and tell the registrar for calls); invalid token
// -> remove it from its binding; retry later -> back off (Retry-After
// honoured), calls only while they still ring; rejected credential ->
// refresh once and resend; permanent error -> dead letter.
// Runs on its EventLoop; submit() may be called from any thread.
class PushDispatcher {
 public:
  PushDispatcher(EventLoop& loop, RetryPolicy policy, ProviderDirectory& providers,
                 JobStream& stream, BindingFeedback& feedback, PushgwMetrics& metrics,
                 Clock& clock);
  ~PushDispatcher();

  void submit(std::vector<PushJob> jobs);
  std::size_t active() const { return active_; }  // loop thread

 private:
  struct Attempt {
    PushJob job;
    PushProvider* provider = nullptr;
    int attempts = 0;
    bool refreshed = false;
    BindingFeedback::Attempt last;  // the provider's last answer (traces, test results)
  };
  using AttemptPtr = std::shared_ptr<Attempt>;

  void begin(PushJob job);
  void send(const AttemptPtr& a);
  void onOutcome(const AttemptPtr& a, const ClassifiedResponse& outcome, double latency);
  void scheduleRetry(const AttemptPtr& a, std::optional<Millis> retry_after);
  void runRetries();
  void finish(const AttemptPtr& a, const char* result);
  // Test pushes: what the registrar waiting for them hears, once per job.
  void reportTest(const AttemptPtr& a, const char* result);
  void deadLetter(const AttemptPtr& a, const char* result, const std::string& reason);
  bool expired(const PushJob& job) const;

  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // callbacks check it: we may be gone
  EventLoop& loop_;
  RetryPolicy policy_;
  ProviderDirectory& providers_;
  JobStream& stream_;
  BindingFeedback& feedback_;
  PushgwMetrics& metrics_;
  Clock& clock_;
  std::multimap<Millis, AttemptPtr> retries_;
  LoopTimer retry_timer_;
  std::mt19937_64 random_;
  std::size_t active_ = 0;
};

}  // namespace sipwake::pushgw
