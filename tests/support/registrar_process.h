#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace sipwake::testing {

// Two tenants with known keys, for every test.
inline constexpr const char* kTenantKey = "acme-test-key-0123456789";
inline constexpr const char* kOtherTenantKey = "globex-test-key-9876543210";
// The operators' key of the admin API (/v1/admin).
inline constexpr const char* kAdminKey = "ops-admin-test-key-5555555555";

// Our registrar binary, started on free loopback ports with its own key
// files; restartable with the same identity, files and ports.
class RegistrarProcess {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;
  RegistrarProcess(std::string redis_url, Env extra_env = {});
  ~RegistrarProcess();

  void start();
  void stop();  // SIGTERM, waits for a clean exit
  void kill9();
  bool running();

  std::uint16_t apiPort() const { return api_port_; }
  std::uint16_t sipPort() const { return sip_port_; }
  std::uint16_t sipTlsPort() const { return sip_tls_port_; }
  std::string log() const;
  const std::string& logFile() const { return log_file_; }
  // The API keys file it was given (secrets scans look for its contents).
  std::string apiKeysFile() const { return dir_.file("api_keys"); }

  HttpReply put(const std::string& id, const nlohmann::json& body, const std::string& key = kTenantKey);
  HttpReply get(const std::string& id, const std::string& key = kTenantKey);
  HttpReply del(const std::string& id, const std::string& key = kTenantKey);
  HttpReply request(const std::string& method, const std::string& target, const std::string& body,
                    std::vector<std::pair<std::string, std::string>> headers);
  // A request to the admin API with the operators' key.
  HttpReply admin(const std::string& method, const std::string& target, const std::string& body = "");
  // The credential keys file ("key-id base64" lines, the first seals): read
  // at start, on SIGHUP and by POST /v1/admin/rotate-keys.
  const std::string& credentialKeysFile() const { return credential_keys_file_; }
  void writeCredentialKeys(const std::string& text);
  void signal(int sig);
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  nlohmann::json binding(const std::string& id);  // GET body, {} when not 200
  std::string metricsText();
  // Sum of a metric's samples whose labels contain `label_filter` (e.g. state="registered").
  double metric(const std::string& name, const std::string& label_filter = "");
  // Waits until the binding's state is `state`.
  bool waitForState(const std::string& id, const std::string& state, int timeout_ms);

 private:
  std::string redis_url_;
  Env extra_env_;
  TempDir dir_{"sipwake-registrar"};
  std::string log_file_;
  std::string credential_keys_file_;
  std::uint16_t api_port_, metrics_port_, sip_port_, sip_tls_port_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<HttpClient> client_;
};

// A PUT body for user `user` at a PBX on 127.0.0.1:port.
nlohmann::json bindingBody(const std::string& user, std::uint16_t pbx_port,
                           const std::string& transport = "udp",
                           const std::string& password = "", int expires = 120);

}  // namespace sipwake::testing
