#include "pushgw/pushgw_metrics.h"

namespace sipwake::pushgw {
namespace {

const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

}  // namespace

PushgwMetrics::PushgwMetrics(prometheus::Registry& registry) {
  pushes_ = &prometheus::BuildCounter()
                 .Name("pushgw_pushes_total")
                 .Help("Pushes by provider and final outcome of each attempt")
                 .Register(registry);
  latency_ = &prometheus::BuildHistogram()
                  .Name("pushgw_push_latency_seconds")
                  .Help("From sending a push to the provider's answer")
                  .Register(registry);
  tokens_removed_ = &prometheus::BuildCounter()
                         .Name("pushgw_tokens_removed_total")
                         .Help("Device tokens removed because the provider says they are gone")
                         .Register(registry);
  invite_to_push_ = &prometheus::BuildHistogram()
                         .Name("invite_to_push_seconds")
                         .Help("From the INVITE reaching the registrar to a provider accepting its push")
                         .Register(registry)
                         .Add({}, kLatencyBuckets);
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("pushgw_queue_depth")
                      .Help("Push jobs waiting or in progress in the stream's consumer group")
                      .Register(registry)
                      .Add({});
  dead_letters_ = &prometheus::BuildCounter()
                       .Name("pushgw_dead_letters_total")
                       .Help("Push jobs moved to sipwake:push:dead, by cause")
                       .Register(registry);
  for (const char* cause : {"malformed", "redelivered", "undeliverable"}) deadLetters(cause, 0);
  stream_trims_ = &prometheus::BuildCounter()
                       .Name("pushgw_stream_trimmed_total")
                       .Help("Entries removed from sipwake:push:jobs: acknowledged (our trims), "
                             "lost_pending (deleted before delivery by someone else)")
                       .Register(registry);
  for (const char* kind : {"acknowledged", "lost_pending"}) streamTrims(kind, 0);
  credential_expiry_ = &prometheus::BuildGauge()
                            .Name("pushgw_provider_credential_expiry_timestamp_seconds")
                            .Help("When the provider credential in hand (FCM access token) runs "
                                  "out, Unix time; 0 before the first one")
                            .Register(registry);
  credential_refresh_failures_ = &prometheus::BuildCounter()
                                      .Name("pushgw_provider_credential_refresh_failures_total")
                                      .Help("Failed renewals of a provider credential (FCM token "
                                            "endpoint unreachable or refusing the service account)")
                                      .Register(registry);
  // Pre-create the usual series so dashboards see zeros, not gaps.
  for (const char* provider : {"apns", "fcm"}) {
    for (const char* result : {"delivered", "invalid_token", "retry_later", "permanent_error"}) {
      pushCounter(provider, result);
    }
  }
}

prometheus::Counter& PushgwMetrics::pushCounter(const std::string& provider,
                                               const std::string& result) {
  auto key = std::make_pair(provider, result);
  auto it = push_counters_.find(key);
  if (it == push_counters_.end()) {
    it = push_counters_.emplace(key, &pushes_->Add({{"provider", provider}, {"result", result}})).first;
  }
  return *it->second;
}

void PushgwMetrics::push(const std::string& provider, const std::string& result) {
  pushCounter(provider, result).Increment();
}

void PushgwMetrics::latency(const std::string& provider, double seconds) {
  auto it = latency_histograms_.find(provider);
  if (it == latency_histograms_.end()) {
    it = latency_histograms_.emplace(provider, &latency_->Add({{"provider", provider}}, kLatencyBuckets)).first;
  }
  it->second->Observe(seconds);
}

void PushgwMetrics::tokenRemoved(const std::string& provider) {
  auto it = removed_counters_.find(provider);
  if (it == removed_counters_.end()) {
    it = removed_counters_.emplace(provider, &tokens_removed_->Add({{"provider", provider}})).first;
  }
  it->second->Increment();
}

void PushgwMetrics::inviteToPush(double seconds) { invite_to_push_->Observe(seconds); }

void PushgwMetrics::bringUpTo(prometheus::Family<prometheus::Counter>& family,
                              CounterSeries& series, const std::string& label,
                              const std::string& value, double total) {
  auto it = series.find(value);
  if (it == series.end()) it = series.emplace(value, &family.Add({{label, value}})).first;
  if (total > it->second->Value()) it->second->Increment(total - it->second->Value());
}

void PushgwMetrics::deadLetters(const std::string& cause, double total) {
  bringUpTo(*dead_letters_, dead_letter_counters_, "cause", cause, total);
}

void PushgwMetrics::streamTrims(const std::string& kind, double total) {
  bringUpTo(*stream_trims_, stream_trim_counters_, "kind", kind, total);
}

void PushgwMetrics::credentialState(const std::string& provider, const std::string& app,
                                    Millis expires_at, bool refresh_failed) {
  auto key = std::make_pair(provider, app);
  auto it = credentials_.find(key);
  if (it == credentials_.end()) {
    prometheus::Labels labels{{"provider", provider}, {"app", app}};
    it = credentials_
             .emplace(key, CredentialSeries{&credential_expiry_->Add(labels),
                                            &credential_refresh_failures_->Add(labels)})
             .first;
  }
  it->second.expiry->Set(static_cast<double>(expires_at) / 1000.0);
  if (refresh_failed) it->second.refresh_failures->Increment();
}

}  // namespace sipwake::pushgw
