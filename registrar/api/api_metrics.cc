#include "registrar/api/api_metrics.h"

namespace sipwake::registrar {

ApiMetrics::ApiMetrics(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  requests_ = &prometheus::BuildCounter()
                   .Name("registrar_api_requests_total")
                   .Help("HTTP API answers by route pattern and status code (route 'unknown': "
                         "no such path; 'method_not_allowed': a path served with other methods)")
                   .Register(*registry);
}

void ApiMetrics::answered(const std::string& route, int status) {
  if (requests_ == nullptr) return;
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(route, status);
  auto it = series_.find(key);
  if (it == series_.end()) {
    it = series_.emplace(key, &requests_->Add({{"route", route}, {"code", std::to_string(status)}})).first;
  }
  it->second->Increment();
}

}  // namespace sipwake::registrar
