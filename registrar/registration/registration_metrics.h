#pragma once

#include <array>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "registrar/registration/registration_spec.h"
#include "registrar/registration/registration_state.h"

namespace sipwake::registrar {

// How one REGISTER transaction ended; the `result` label.
enum class RegisterResult {
  Ok,              // 2xx
  Challenged,      // 401/407 answered with credentials
  AuthRejected,    // 401/407 to our credentials, or 403
  Rejected,        // other 4xx (and 3xx) we do not retry soon
  TooBrief,        // 423
  ServerError,     // 408/480/5xx/6xx from the PBX
  Timeout,         // no answer
  TransportError,  // connection refused, TLS, DNS
};

// Metric handles of the registration engine, resolved once at start-up.
// Names and labels are a contract for dashboards (PRODUCT.md).
class RegistrationMetrics {
 public:
  explicit RegistrationMetrics(prometheus::Registry& registry);

  void bindingEntered(RegistrationState state) { bindings_[index(state)]->Increment(); }
  void bindingLeft(RegistrationState state) { bindings_[index(state)]->Decrement(); }
  void requestEnded(RegisterResult result, double latency_seconds);
  void bindingFailed(FailureReason reason);
  // A REGISTER not sent: its target is forbidden by the target policy.
  void targetForbidden() { target_forbidden_->Increment(); }
  // REGISTERs that waited for the per-target or the global rate cap.
  void pacedByTarget(std::uint64_t n) { paced_target_->Increment(static_cast<double>(n)); }
  void pacedByGlobal(std::uint64_t n) { paced_global_->Increment(static_cast<double>(n)); }

 private:
  static std::size_t index(RegistrationState s) { return static_cast<std::size_t>(s); }
  std::array<prometheus::Gauge*, 5> bindings_{};
  std::array<prometheus::Counter*, 8> requests_{};
  std::array<prometheus::Counter*, 3> failed_{};
  prometheus::Histogram* latency_ = nullptr;
  prometheus::Counter* target_forbidden_ = nullptr;
  prometheus::Counter* paced_target_ = nullptr;
  prometheus::Counter* paced_global_ = nullptr;
};

}  // namespace sipwake::registrar
