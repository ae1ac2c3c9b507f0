#pragma once

#include <array>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/redis/redis_health.h"

namespace sipwake::metrics {

// `<service>_redis_up` and `<service>_redis_errors_total{kind}` from
// redis::RedisHealth. The counters are kept by the connections (on their
// threads); refresh() copies them into the registry before a scrape, on the
// thread that serves /metrics.
class RedisMetrics {
 public:
  RedisMetrics(prometheus::Registry& registry, const std::string& service);
  void refresh();

 private:
  prometheus::Gauge* up_;
  std::array<prometheus::Counter*, redis::kRedisFailureKinds> errors_{};
};

}  // namespace sipwake::metrics
