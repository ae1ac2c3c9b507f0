#include "pushgw/dispatch/push_dispatcher.h"

#include <cmath>

#include "common/log/logger.h"

namespace sipwake::pushgw {

PushDispatcher::PushDispatcher(EventLoop& loop, RetryPolicy policy, ProviderDirectory& providers,
                               JobStream& stream, BindingFeedback& feedback,
                               PushgwMetrics& metrics, Clock& clock)
    : loop_(loop),
      policy_(policy),
      providers_(providers),
      stream_(stream),
      feedback_(feedback),
      metrics_(metrics),
      clock_(clock),
      retry_timer_(loop, [this] { runRetries(); }),
      random_(std::random_device{}()) {}

PushDispatcher::~PushDispatcher() { alive_.reset(); }

void PushDispatcher::submit(std::vector<PushJob> jobs) {
  loop_.post([this, jobs = std::move(jobs)]() mutable {
    for (auto& job : jobs) begin(std::move(job));
  });
}

bool PushDispatcher::expired(const PushJob& job) const {
  return job.expires_at != 0 && clock_.now() >= job.expires_at;
}

void PushDispatcher::begin(PushJob job) {
  ++active_;
  auto a = std::make_shared<Attempt>();
  a->job = std::move(job);
  a->provider = providers_.find(a->job.provider, a->job.app);
  a->last.provider = a->job.provider;
  if (!a->provider) {
    deadLetter(a, "unknown_app", "no provider configured for app '" + a->job.app + "'");
    return;
  }
  if (expired(a->job)) {
    finish(a, "expired");
    return;
  }
  if (a->job.isCall() && a->job.deliveries > 1) {
    // Reclaimed from a consumer that died: only if the call still rings.
    feedback_.callStillRinging(a->job, [this, a, alive = std::weak_ptr<int>(alive_)](bool ringing) {
      loop_.post([this, a, ringing, alive] {
        if (alive.expired()) return;
        ringing ? send(a) : finish(a, "expired");
      });
    });
    return;
  }
  send(a);
}

void PushDispatcher::send(const AttemptPtr& a) {
  ++a->attempts;
  PushMessage message = toPushMessage(a->job, clock_.now());
  // Providers fail what is outstanding when they are destroyed, which may be
  // after us (shutdown): such late answers are dropped, their jobs stay pending.
  a->provider->send(message, [this, a, alive = std::weak_ptr<int>(alive_)](ClassifiedResponse outcome,
                                                                           double latency) {
    if (alive.expired()) return;
    onOutcome(a, outcome, latency);
  });
}

void PushDispatcher::onOutcome(const AttemptPtr& a, const ClassifiedResponse& outcome,
                               double latency) {
  const std::string provider = a->provider->name();
  metrics_.latency(provider, latency);
  a->last = BindingFeedback::Attempt{provider,         a->attempts,
                                     outcome.status,   toString(outcome.outcome),
                                     outcome.reason,   latency,
                                     clock_.now()};
  feedback_.traceAttempt(a->job, a->last);
  switch (outcome.outcome) {
    case PushOutcome::Delivered:
      if (a->job.isCall()) {
        feedback_.pushDelivered(a->job);
        if (a->job.received_at > 0) {
          metrics_.inviteToPush(static_cast<double>(clock_.now() - a->job.received_at) / 1000.0);
        }
      }
      reportTest(a, "delivered");
      finish(a, "delivered");
      return;
    case PushOutcome::InvalidToken:
      // Counted when it really left the binding: a second push that raced
      // the removal gets its own 410, but there was one token.
      feedback_.removeToken(a->job, [this, provider, alive = std::weak_ptr<int>(alive_)](bool removed) {
        if (!removed) return;
        loop_.post([this, provider, alive] {
          if (!alive.expired()) metrics_.tokenRemoved(provider);
        });
      });
      reportTest(a, "token_removed");
      finish(a, "invalid_token");
      return;
    case PushOutcome::RefreshCredentials:
      metrics_.push(provider, "refresh_credentials");
      if (!a->refreshed) {
        a->refreshed = true;
        a->provider->refreshCredentials();
        send(a);
        return;
      }
      deadLetter(a, "permanent_error", "credential rejected again after a refresh: " + outcome.reason);
      return;
    case PushOutcome::RetryLater:
      metrics_.push(provider, "retry_later");
      scheduleRetry(a, outcome.retry_after);
      return;
    case PushOutcome::PermanentError:
      deadLetter(a, "permanent_error", outcome.reason);
      return;
  }
}

void PushDispatcher::scheduleRetry(const AttemptPtr& a, std::optional<Millis> retry_after) {
  if (!a->job.isCall() && a->attempts >= policy_.max_attempts) {
    deadLetter(a, "permanent_error", "gave up after " + std::to_string(a->attempts) + " attempts");
    return;
  }
  double backoff = std::min<double>(std::ldexp(static_cast<double>(policy_.base),
                                               std::min(a->attempts - 1, 30)),
                                    static_cast<double>(policy_.max));
  backoff *= std::uniform_real_distribution<double>(0.8, 1.2)(random_);
  Millis delay = static_cast<Millis>(backoff);
  if (retry_after) delay = std::max(delay, *retry_after);
  Millis at = clock_.now() + delay;
  if (a->job.expires_at != 0 && at >= a->job.expires_at) {
    finish(a, "expired");  // a call push is only worth it while the call rings
    return;
  }
  retries_.emplace(at, a);
  if (retries_.begin()->first == at) retry_timer_.start(delay);
}

void PushDispatcher::runRetries() {
  Millis now = clock_.now();
  std::vector<AttemptPtr> due;
  while (!retries_.empty() && retries_.begin()->first <= now) {
    due.push_back(retries_.begin()->second);
    retries_.erase(retries_.begin());
  }
  if (!retries_.empty()) retry_timer_.start(retries_.begin()->first - now);
  for (auto& a : due) {
    if (expired(a->job)) {
      finish(a, "expired");
    } else if (a->job.isCall()) {
      feedback_.callStillRinging(a->job, [this, a, alive = std::weak_ptr<int>(alive_)](bool ringing) {
        loop_.post([this, a, ringing, alive] {
          if (alive.expired()) return;
          ringing ? send(a) : finish(a, "expired");
        });
      });
    } else {
      send(a);
    }
  }
}

void PushDispatcher::reportTest(const AttemptPtr& a, const char* result) {
  if (a->job.test_id.empty()) return;
  feedback_.testResult(a->job, a->last, result);
  a->job.test_id.clear();
}

void PushDispatcher::finish(const AttemptPtr& a, const char* result) {
  log::debug("push finished", {{"binding", a->job.bindingKey()},
                               {"call_id", a->job.call_id},
                               {"device", a->job.device_id},
                               {"type", a->job.type},
                               {"result", result}});
  reportTest(a, "failed");  // expired while retrying: the last answer says why
  metrics_.push(a->provider ? a->provider->name() : a->job.provider, result);
  stream_.ack(a->job.entry_id);
  --active_;
}

void PushDispatcher::deadLetter(const AttemptPtr& a, const char* result, const std::string& reason) {
  if (a->last.reason.empty()) a->last.reason = reason;
  reportTest(a, "failed");
  log::warn("push given up", {{"binding", a->job.bindingKey()},
                              {"call_id", a->job.call_id},
                              {"device", a->job.device_id},
                              {"type", a->job.type},
                              {"reason", reason}});
  metrics_.push(a->provider ? a->provider->name() : a->job.provider, result);
  stream_.deadLetter(a->job, reason);
  --active_;
}

}  // namespace sipwake::pushgw
