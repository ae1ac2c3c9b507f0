#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace sipwake::registrar {

// registrar_api_requests_total{route, code}: every API answer, by the route
// pattern it matched ("PUT /v1/bindings/{id}", never the binding id, so the
// series stay few) and its HTTP status: 401s, 429s and 503s show up here.
// Answers may be sent from any thread (a DELETE answers when the PBX has);
// without a registry it counts nothing.
class ApiMetrics {
 public:
  explicit ApiMetrics(prometheus::Registry* registry);
  void answered(const std::string& route, int status);

 private:
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  std::mutex mutex_;
  std::map<std::pair<std::string, int>, prometheus::Counter*> series_;
};

}  // namespace sipwake::registrar
