#include "tests/support/registrar_process.h"

#include <csignal>
#include <sstream>
#include <stdexcept>

#include "common/crypto/random.h"
#include "common/util/encoding.h"

#include <catch2/catch.hpp>

namespace sipwake::testing {

RegistrarProcess::RegistrarProcess(std::string redis_url, Env extra_env)
    : redis_url_(std::move(redis_url)),
      extra_env_(std::move(extra_env)),
      log_file_(dir_.file("registrar.log")),
      credential_keys_file_(dir_.file("credential_keys")),
      api_port_(freePort()),
      metrics_port_(freePort()),
      sip_port_(freePort()),
      sip_tls_port_(freePort()) {
  writeCredentialKeys("k1 " + base64Encode(crypto::randomBytes(32)) + "\n");
  writeFile(dir_.file("admin_keys"), std::string("ops ") + kAdminKey + "\n");
  writeFile(dir_.file("api_keys"), std::string("acme ") + kTenantKey + "\nglobex " +
                                       kOtherTenantKey + "\n");
  start();
}

RegistrarProcess::~RegistrarProcess() {
  client_.reset();
  if (!process_ || !process_->running()) return;
  // A graceful stop, so sanitizers report at exit and a bad exit fails the test.
  std::string problem = stopAndCheckExit(*process_, "registrar");
  if (!problem.empty()) FAIL_CHECK(problem);
}

void RegistrarProcess::start() {
  Env env = {
      {"REGISTRAR_INSTANCE", "test-registrar"},
      {"REGISTRAR_REDIS_URL", redis_url_},
      {"REGISTRAR_API_LISTEN", "127.0.0.1:" + std::to_string(api_port_)},
      {"REGISTRAR_METRICS_LISTEN", "127.0.0.1:" + std::to_string(metrics_port_)},
      {"REGISTRAR_SIP_LISTEN", "127.0.0.1:" + std::to_string(sip_port_)},
      {"REGISTRAR_API_KEYS_FILE", dir_.file("api_keys")},
      {"REGISTRAR_CREDENTIAL_KEYS_FILE", credential_keys_file_},
      {"REGISTRAR_ADMIN_KEYS_FILE", dir_.file("admin_keys")},
      {"REGISTRAR_REGISTRATION_MIN_EXPIRES", "10"},
      {"REGISTRAR_REGISTRATION_BACKOFF_BASE", "1s"},
      {"REGISTRAR_REGISTRATION_BACKOFF_MAX", "4s"},
      {"REGISTRAR_SIP_TRANSACTION_TIMEOUT", "4s"},
      {"REGISTRAR_LOG_LEVEL", "debug"},
      // Every PBX of the tests is on loopback, which the target policy
      // refuses by default; abuse tests drop this allow.
      {"REGISTRAR_TARGET_ALLOW", "127.0.0.0/8"},
      // Load tests drive one key and a few bindings hard; the caps have
      // their own tests, which set them.
      {"REGISTRAR_API_RATE_PER_KEY", "100000"},
      {"REGISTRAR_API_RATE_BURST", "100000"},
      {"REGISTRAR_CALL_PUSH_CALLS_PER_MINUTE", "100000"},
      {"REGISTRAR_CALL_PUSH_MESSAGES_PER_MINUTE", "100000"},
  };
  for (const auto& e : extra_env_) {
    bool replaced = false;
    for (auto& d : env) {
      if (d.first == e.first) d.second = e.second, replaced = true;
    }
    if (!replaced) env.push_back(e);
  }
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{std::string(SIPWAKE_BINARY_DIR) + "/registrar"}, log_file_, env);
  client_ = std::make_unique<HttpClient>("127.0.0.1", api_port_);
  bool up = waitForReadyz(*process_, api_port_);
  if (!up) throw std::runtime_error("registrar did not become ready; log:\n" + log());
}

void RegistrarProcess::stop() {
  client_.reset();
  if (!process_) return;
  process_->signal(SIGTERM);
  if (process_->waitExit(15000) != 0) {
    throw std::runtime_error("registrar did not exit cleanly; log:\n" + log());
  }
}

void RegistrarProcess::kill9() {
  client_.reset();
  if (process_) process_->kill9();
}

void RegistrarProcess::writeCredentialKeys(const std::string& text) {
  writeFile(credential_keys_file_, text);
  runCommand("chmod 600 " + shellQuote(credential_keys_file_));
}

void RegistrarProcess::signal(int sig) {
  if (process_) process_->signal(sig);
}

HttpReply RegistrarProcess::admin(const std::string& method, const std::string& target,
                                  const std::string& body) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", std::string("Bearer ") + kAdminKey}};
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  return request(method, target, body, std::move(headers));
}

bool RegistrarProcess::running() { return process_ && process_->running(); }

std::string RegistrarProcess::log() const { return readFile(log_file_); }

HttpReply RegistrarProcess::request(const std::string& method, const std::string& target,
                                    const std::string& body,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  if (!client_) client_ = std::make_unique<HttpClient>("127.0.0.1", api_port_);
  return client_->request(method, target, body, std::move(headers));
}

HttpReply RegistrarProcess::put(const std::string& id, const nlohmann::json& body,
                                const std::string& key) {
  return request("PUT", "/v1/bindings/" + id, body.dump(),
                 {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}});
}

HttpReply RegistrarProcess::get(const std::string& id, const std::string& key) {
  return request("GET", "/v1/bindings/" + id, "", {{"Authorization", "Bearer " + key}});
}

HttpReply RegistrarProcess::del(const std::string& id, const std::string& key) {
  return request("DELETE", "/v1/bindings/" + id, "", {{"Authorization", "Bearer " + key}});
}

nlohmann::json RegistrarProcess::binding(const std::string& id) {
  HttpReply reply = get(id);
  if (reply.status != 200) return nlohmann::json::object();
  return nlohmann::json::parse(reply.body);
}

std::string RegistrarProcess::metricsText() {
  HttpClient metrics("127.0.0.1", metrics_port_);
  return metrics.request("GET", "/metrics").body;
}

double RegistrarProcess::metric(const std::string& name, const std::string& label_filter) {
  return sumMetric(metricsText(), name, label_filter);
}

bool RegistrarProcess::waitForState(const std::string& id, const std::string& state,
                                    int timeout_ms) {
  return waitUntil(
      [&] {
        auto b = binding(id);
        return b.contains("state") && b["state"] == state;
      },
      timeout_ms, 50);
}

nlohmann::json bindingBody(const std::string& user, std::uint16_t pbx_port,
                           const std::string& transport, const std::string& password,
                           int expires) {
  return {
      {"aor", "sip:" + user + "@127.0.0.1"},
      {"auth", {{"username", user}, {"password", password.empty() ? "pw-" + user : password}}},
      {"registrar", "sip:127.0.0.1:" + std::to_string(pbx_port) + ";transport=" + transport},
      {"expires", expires},
      {"devices",
       {{{"id", "iphone"},
         {"provider", "apns"},
         {"token", "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"},
         {"app", "com.example.talk"}},
        {{"id", "pixel"}, {"provider", "fcm"}, {"token", "dXk:APA91b-test_token"}, {"app", "example-project"}}}}};
}

}  // namespace sipwake::testing
