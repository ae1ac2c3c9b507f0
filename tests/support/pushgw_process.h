#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/process.h"

namespace sipwake::testing {

// Our pushgw binary on free loopback ports, with its own name in the group.
class PushgwProcess {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;
  PushgwProcess(std::string redis_url, std::string apps_file, std::string instance,
                Env extra_env = {});
  ~PushgwProcess();
  void start();
  void stop();   // SIGTERM, clean exit expected
  void kill9();
  bool running();
  std::string log() const;
  std::uint16_t metricsPort() const { return metrics_port_; }
  std::string metricsText();
  double metric(const std::string& name, const std::string& label_filter = "");

 private:
  std::string redis_url_, apps_file_, instance_;
  Env extra_env_;
  TempDir dir_{"sipwake-pushgw"};
  std::uint16_t metrics_port_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace sipwake::testing
