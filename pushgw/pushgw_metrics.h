#pragma once

#include <map>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "pushgw/provider/credential_observer.h"

namespace sipwake::pushgw {

// pushgw's metric handles; names are a contract for dashboards (PRODUCT.md).
class PushgwMetrics final : public CredentialObserver {
 public:
  explicit PushgwMetrics(prometheus::Registry& registry);
  // pushgw_provider_credential_expiry_timestamp_seconds{provider,app} and
  // pushgw_provider_credential_refresh_failures_total{provider,app}. Called
  // on the dispatcher's loop thread only.
  void credentialState(const std::string& provider, const std::string& app, Millis expires_at,
                       bool refresh_failed) override;
  // result: delivered, invalid_token, retry_later, refresh_credentials,
  // permanent_error, expired (call over or too late), unknown_app.
  void push(const std::string& provider, const std::string& result);
  void latency(const std::string& provider, double seconds);
  void tokenRemoved(const std::string& provider);
  void inviteToPush(double seconds);
  void queueDepth(double depth) { queue_depth_->Set(depth); }
  // pushgw_dead_letters_total{cause}: brought up to `total` (a count kept by
  // the stream). Called from one thread only.
  void deadLetters(const std::string& cause, double total);
  // pushgw_stream_trimmed_total{kind}: "acknowledged" entries our trims
  // removed; "lost_pending" pending entries found deleted before delivery
  // (never by our trims; a foreign XTRIM/XDEL). Same convention.
  void streamTrims(const std::string& kind, double total);

 private:
  using CounterSeries = std::map<std::string, prometheus::Counter*>;
  static void bringUpTo(prometheus::Family<prometheus::Counter>& family, CounterSeries& series,
                        const std::string& label, const std::string& value, double total);
  prometheus::Counter& pushCounter(const std::string& provider, const std::string& result);
  prometheus::Family<prometheus::Counter>* pushes_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* tokens_removed_;
  prometheus::Histogram* invite_to_push_;
  prometheus::Gauge* queue_depth_;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> push_counters_;
  std::map<std::string, prometheus::Histogram*> latency_histograms_;
  std::map<std::string, prometheus::Counter*> removed_counters_;
  prometheus::Family<prometheus::Counter>* dead_letters_;
  CounterSeries dead_letter_counters_;
  prometheus::Family<prometheus::Counter>* stream_trims_;
  CounterSeries stream_trim_counters_;
  struct CredentialSeries {
    prometheus::Gauge* expiry;
    prometheus::Counter* refresh_failures;
  };
  prometheus::Family<prometheus::Gauge>* credential_expiry_;
  prometheus::Family<prometheus::Counter>* credential_refresh_failures_;
  std::map<std::pair<std::string, std::string>, CredentialSeries> credentials_;
};

}  // namespace sipwake::pushgw
