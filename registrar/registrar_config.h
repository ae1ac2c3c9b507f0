#pragma once

#include <optional>
#include <string>

#include "common/config/config_table.h"
#include "common/log/logger.h"
#include "common/redis/redis_url.h"
#include "registrar/api/api_rate_limiter.h"
#include "registrar/binding/binding_request.h"
#include "registrar/binding/target_policy.h"
#include "registrar/call/call_manager.h"
#include "registrar/registration/registration_engine.h"
#include "registrar/device/device_sign_in.h"
#include "registrar/sip/device_listener.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

// Everything the registrar reads at start-up, typed and validated before
// any socket is opened.
struct RegistrarConfig {
  std::string instance;
  log::Level log_level = log::Level::Info;

  std::string api_listen;
  std::string api_tls_cert;
  std::string api_tls_key;
  bool api_allow_plain = false;
  std::string api_keys_file;
  std::string admin_keys_file;  // REGISTRAR_ADMIN_KEYS_FILE: the operators' API
  std::size_t api_max_body_bytes = 65536;
  std::size_t api_max_connections = 1024;
  std::size_t api_max_header_bytes = 16384;
  Millis api_request_timeout = 10 * kSecond;
  ApiRateLimiter::Limits api_rate;
  std::string metrics_listen;

  SipAgentConfig sip;
  std::string device_listen;  // empty: no device listener
  DeviceListenerConfig device;
  DeviceSignInPolicy device_sign_in;

  redis::RedisUrl redis;
  std::string credential_keys_file;
  std::string credential_keys_inline;  // REGISTRAR_CREDENTIAL_KEYS: the file's content

  ExpiresLimits expires;
  RegistrationPolicy policy;
  TargetPolicyConfig target;
  Millis unregister_wait = 5 * kSecond;
  CallPolicy call;
  // Ownership: bindings fall in shards; instances lease a fair share each.
  std::uint32_t shards = 64;
  Millis lease_ttl = 10 * kSecond;
  Millis handover_timeout = 20 * kSecond;
  TraceOptions trace;
  Millis test_push_timeout = 10 * kSecond;
};

const config::ConfigTable& registrarConfigTable();

// Throws config::ConfigError naming the key and its environment variable.
RegistrarConfig loadRegistrarConfig(const std::optional<std::string>& file,
                                    const config::EnvLookup& env);

}  // namespace sipwake::registrar
