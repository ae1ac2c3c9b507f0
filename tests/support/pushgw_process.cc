#include "tests/support/pushgw_process.h"

#include <csignal>
#include <sstream>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "tests/support/http_client.h"

namespace sipwake::testing {

PushgwProcess::PushgwProcess(std::string redis_url, std::string apps_file, std::string instance,
                             Env extra_env)
    : redis_url_(std::move(redis_url)),
      apps_file_(std::move(apps_file)),
      instance_(std::move(instance)),
      extra_env_(std::move(extra_env)),
      metrics_port_(freePort()) {
  start();
}

PushgwProcess::~PushgwProcess() {
  if (!process_ || !process_->running()) return;
  // A graceful stop, so sanitizers report at exit and a bad exit fails the test.
  std::string problem = stopAndCheckExit(*process_, "pushgw");
  if (!problem.empty()) FAIL_CHECK(problem);
}

void PushgwProcess::start() {
  Env env = {{"PUSHGW_INSTANCE", instance_},
             {"PUSHGW_REDIS_URL", redis_url_},
             {"PUSHGW_METRICS_LISTEN", "127.0.0.1:" + std::to_string(metrics_port_)},
             {"PUSHGW_APPS_FILE", apps_file_},
             {"PUSHGW_RETRY_BASE", "200ms"},
             {"PUSHGW_RETRY_MAX", "2s"},
             {"PUSHGW_QUEUE_CLAIM_IDLE", "2s"},
             {"PUSHGW_LOG_LEVEL", "debug"}};
  for (const auto& e : extra_env_) {
    bool replaced = false;
    for (auto& d : env) {
      if (d.first == e.first) d.second = e.second, replaced = true;
    }
    if (!replaced) env.push_back(e);
  }
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{std::string(SIPWAKE_BINARY_DIR) + "/pushgw"},
      dir_.file("pushgw.log"), env);
  bool up = waitForReadyz(*process_, metrics_port_);
  if (!up) throw std::runtime_error("pushgw did not become ready; log:\n" + log());
}

void PushgwProcess::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  if (process_->waitExit(15000) != 0) throw std::runtime_error("pushgw did not exit cleanly:\n" + log());
}

void PushgwProcess::kill9() {
  if (process_) process_->kill9();
}

bool PushgwProcess::running() { return process_ && process_->running(); }

std::string PushgwProcess::log() const { return readFile(dir_.file("pushgw.log")); }

std::string PushgwProcess::metricsText() {
  HttpClient client("127.0.0.1", metrics_port_);
  return client.request("GET", "/metrics").body;
}

double PushgwProcess::metric(const std::string& name, const std::string& label_filter) {
  return sumMetric(metricsText(), name, label_filter);
}

}  // namespace sipwake::testing
