#include "registrar/registration/registration_metrics.h"

#include <string>

namespace sipwake::registrar {

std::string_view toString(FailureReason reason) {
  switch (reason) {
    case FailureReason::AuthRejected: return "auth_rejected";
    case FailureReason::Rejected: return "rejected";
    case FailureReason::Unreachable: return "unreachable";
  }
  return "unreachable";
}

RegistrationMetrics::RegistrationMetrics(prometheus::Registry& registry) {
  auto& bindings = prometheus::BuildGauge()
                       .Name("registrar_bindings")
                       .Help("Bindings held by this instance, by registration state")
                       .Register(registry);
  for (auto s : {RegistrationState::Registering, RegistrationState::Registered,
                 RegistrationState::Retrying, RegistrationState::Failed,
                 RegistrationState::Unregistered}) {
    bindings_[index(s)] = &bindings.Add({{"state", std::string(toString(s))}});
  }
  auto& requests = prometheus::BuildCounter()
                       .Name("registrar_register_requests_total")
                       .Help("REGISTER transactions sent to PBXs, by how they ended")
                       .Register(registry);
  const char* results[] = {"ok",          "challenged",   "auth_rejected", "rejected",
                           "too_brief",   "server_error", "timeout",       "transport_error"};
  for (std::size_t i = 0; i < requests_.size(); ++i) {
    requests_[i] = &requests.Add({{"result", results[i]}});
  }
  auto& failed = prometheus::BuildCounter()
                     .Name("registrar_bindings_failed_total")
                     .Help("Bindings given up (credentials deleted), by reason")
                     .Register(registry);
  for (auto r : {FailureReason::AuthRejected, FailureReason::Rejected, FailureReason::Unreachable}) {
    failed_[static_cast<std::size_t>(r)] = &failed.Add({{"reason", std::string(toString(r))}});
  }
  target_forbidden_ = &prometheus::BuildCounter()
                           .Name("registrar_register_refused_total")
                           .Help("REGISTERs not sent: the target policy forbids their destination")
                           .Register(registry)
                           .Add({{"reason", "target_forbidden"}});
  auto& paced = prometheus::BuildCounter()
                    .Name("registrar_register_paced_total")
                    .Help("REGISTERs that waited for a rate cap (per target, or global)")
                    .Register(registry);
  paced_target_ = &paced.Add({{"cap", "target"}});
  paced_global_ = &paced.Add({{"cap", "global"}});
  latency_ = &prometheus::BuildHistogram()
                  .Name("registrar_register_latency_seconds")
                  .Help("Time from sending a REGISTER to its final response")
                  .Register(registry)
                  .Add({}, prometheus::Histogram::BucketBoundaries{
                               0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                               1, 2.5, 5, 10, 32});
}

void RegistrationMetrics::requestEnded(RegisterResult result, double latency_seconds) {
  requests_[static_cast<std::size_t>(result)]->Increment();
  latency_->Observe(latency_seconds);
}

void RegistrationMetrics::bindingFailed(FailureReason reason) {
  failed_[static_cast<std::size_t>(reason)]->Increment();
}

}  // namespace sipwake::registrar
