// A real Prometheus (Debian's /usr/bin/prometheus) for integration tests of
// the monitoring files: it scrapes our services and evaluates alerts.yml.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace sipwake::testing {

// One scrape job: `port` on 127.0.0.1, path /metrics.
struct PrometheusTarget {
  std::string job;  // the job label, e.g. "sipwake-registrar"
  std::uint16_t port = 0;
};

// Prometheus on 127.0.0.1:freePort(), its TSDB in a TempDir, scraping the
// targets every second and evaluating `rule_file` (if any) every second.
// The constructor returns once /-/ready answers 200; throws otherwise.
class PrometheusServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus";

  explicit PrometheusServer(std::vector<PrometheusTarget> targets, std::string rule_file = "");
  ~PrometheusServer();  // ChildProcess: SIGTERM, then SIGKILL
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string log() const;

  // An instant query (POST /api/v1/query). Returns Prometheus's JSON answer
  // whatever the HTTP status: {"status": "success", "data": {"resultType",
  // "result"}} or {"status": "error", "errorType", "error"}. An answer that is
  // not JSON comes back as {"status": "error", "error": <body>}.
  nlohmann::json query(const std::string& expr);
  // GET of an API path (e.g. "/api/v1/rules"), parsed the same way.
  nlohmann::json get(const std::string& target);

 private:
  void start();
  HttpReply exchange(const std::string& method, const std::string& target, const std::string& body,
                     const std::string& content_type);
  static nlohmann::json parse(const HttpReply& reply);

  std::vector<PrometheusTarget> targets_;
  std::string rule_file_;
  TempDir dir_{"sipwake-prometheus"};
  std::uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<HttpClient> client_;
};

}  // namespace sipwake::testing
