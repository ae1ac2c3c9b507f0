#include "common/metrics/redis_metrics.h"

namespace sipwake::metrics {

RedisMetrics::RedisMetrics(prometheus::Registry& registry, const std::string& service) {
  up_ = &prometheus::BuildGauge()
             .Name(service + "_redis_up")
             .Help("1 when every Redis connection of this process works, 0 when one failed "
                   "within the last 30 s without succeeding since")
             .Register(registry)
             .Add({});
  auto& errors = prometheus::BuildCounter()
                     .Name(service + "_redis_errors_total")
                     .Help("Failed Redis operations by kind: connect (no connection), io (broken "
                           "or timed out during a command), role_change (a demoted primary)")
                     .Register(registry);
  for (std::size_t i = 0; i < errors_.size(); ++i) {
    errors_[i] = &errors.Add({{"kind", redis::failureName(static_cast<redis::RedisFailure>(i))}});
  }
  refresh();
}

void RedisMetrics::refresh() {
  const auto& health = redis::RedisHealth::instance();
  up_->Set(health.up(SystemClock::instance().now()) ? 1 : 0);
  for (std::size_t i = 0; i < errors_.size(); ++i) {
    auto total = static_cast<double>(health.errors(static_cast<redis::RedisFailure>(i)));
    // Counters only go up: add what happened since the last refresh.
    if (total > errors_[i]->Value()) errors_[i]->Increment(total - errors_[i]->Value());
  }
}

}  // namespace sipwake::metrics
