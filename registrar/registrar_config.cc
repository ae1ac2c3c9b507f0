#include "registrar/registrar_config.h"

#include <algorithm>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sipwake::registrar {

const config::ConfigTable& registrarConfigTable() {
  static const config::ConfigTable table(
      "REGISTRAR",
      {
          {"instance", "", "This instance's name, unique among live instances (default: host name)"},
          {"shards", "64",
           "binding shards the instances share (the same on every instance; more than instances)"},
          {"lease_ttl", "10s",
           "an instance's shard leases last this long unrenewed: a dead instance's bindings move after it"},
          {"handover_timeout", "20s",
           "on SIGTERM, how long to wait for peers to take this instance's bindings over"},
          {"log.level", "info", "debug, info, warn or error"},
          {"api.listen", "127.0.0.1:8080", "host:port of the HTTP API"},
          {"api.tls_cert", "", "PEM certificate (chain) file of the API; unset: plain HTTP"},
          {"api.tls_key", "", "PEM private key file of the API"},
          {"api.allow_plain", "false",
           "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy only)"},
          {"api.keys_file", "", "lines 'tenant key' or 'tenant sha256:<hex>'; unset: the API refuses all"},
          {"admin.keys_file", "",
           "operators' keys for /v1/admin: lines 'operator key' or 'operator sha256:<hex>'; unset: off"},
          {"api.max_body_bytes", "65536", "largest accepted request body"},
          {"api.max_connections", "1024", "simultaneous API connections"},
          {"api.max_header_bytes", "16384", "largest accepted request line and headers"},
          {"api.request_timeout", "10s",
           "a request (headers and body) must arrive within this (slow clients are cut off)"},
          {"api.rate_per_key", "100", "API requests per second per API key (then 429)"},
          {"api.rate_burst", "200", "API requests one key may send at once"},
          {"metrics.listen", "127.0.0.1:9101", "host:port serving /metrics (also on the API)"},
          {"sip.listen", "127.0.0.1:5060", "host:port for SIP over UDP and TCP toward PBXs"},
          {"sip.tls_listen", "", "host:port for SIP over TLS toward PBXs; empty: off"},
          {"sip.advertise", "", "host:port written in our Contacts and Via (default: sip.listen)"},
          {"sip.tls_cert", "", "PEM certificate of our SIP TLS side (needed with sip.tls_listen)"},
          {"sip.tls_key", "", "PEM private key of our SIP TLS side"},
          {"sip.tls_ca_file", "", "CA bundle to verify PBX certificates; unset: the system CAs"},
          {"sip.tls_verify", "true", "verify PBX certificates and host names"},
          {"sip.udp_receive_buffer", "4194304", "UDP receive buffer bytes (bursts of responses)"},
          {"sip.transaction_timeout", "32s", "how long a REGISTER waits for a final response"},
          {"device.listen", "", "host:port (TCP) where woken apps sign in for the call relay; empty: off"},
          {"device.advertise", "", "host:port written in the relay URIs of pushes (default: device.listen)"},
          {"device.tls_listen", "",
           "host:port for apps over TLS (sip.tls_cert and sip.tls_key); relay URIs then say TLS"},
          {"device.realm", "sipwake", "digest realm of the device listener"},
          {"device.max_failures", "5",
           "failed sign-ins from one address within a minute before it is refused unheard"},
          {"redis.url", "redis://127.0.0.1:6379/0",
           "redis://[:password@]host:port/db, redis-sentinel://h1:26379,h2/<master>/db "
           "or redis-cluster://h1:6379,h2:6379"},
          {"credential.keys_file", "",
           "lines 'key-id base64(32 bytes)'; the first seals, all open; must not be world-readable"},
          {"credential.keys", "", "the same lines as credential.keys_file, from the environment"},
          {"registration.default_expires", "600", "seconds asked for when a PUT gives none"},
          {"registration.min_expires", "60", "smallest 'expires' a PUT may ask for"},
          {"registration.max_expires", "86400", "largest 'expires' a PUT may ask for"},
          {"registration.backoff_base", "30s", "first retry delay after a failure"},
          {"registration.backoff_max", "30m", "longest retry delay"},
          {"registration.max_rejections", "3",
           "auth rejections (401/407 to our credentials, 403) in a row before the binding fails"},
          {"registration.max_temporary_failures", "10",
           "timeouts, refused connections, 408/480/5xx/6xx in a row before the binding fails"},
          {"registration.max_failure_duration", "12h", "time without success before the binding fails"},
          {"registration.refresh_min_ratio", "0.75", "earliest refresh, as a share of the granted time"},
          {"registration.refresh_max_ratio", "0.9", "latest refresh, as a share of the granted time"},
          {"registration.binding_ttl", "7d", "erase bindings their app has not PUT for this long"},
          {"registration.expiry_warnings", "24h,1h",
           "binding_expiring pushes this long before binding_ttl runs out (comma-separated; empty: none)",
           "REGISTRAR_EXPIRY_WARNINGS"},
          {"registration.failed_retention", "24h", "how long a failed binding stays readable"},
          {"registration.rate_per_target", "1000", "REGISTERs per second toward one PBX, at most"},
          {"registration.rate_global", "5000",
           "REGISTERs per second toward all PBXs together, at most"},
          {"target.allow", "",
           "comma-separated CIDRs a registrar target may always use (e.g. 127.0.0.0/8 for tests)"},
          {"target.deny", "", "comma-separated CIDRs a registrar target may never use"},
          {"target.tenant_policy_file", "",
           "JSON {\"tenants\": {\"<tenant>\": {\"domains\": [...], \"cidrs\": [...]}}}: "
           "restricts those tenants' targets (their CIDRs are allowed even if private)"},
          {"registration.max_in_flight_per_target", "100",
           "REGISTER transactions awaiting an answer from one PBX, at most"},
          {"registration.unregister_wait", "5s", "how long DELETE waits for the PBX to confirm"},
          {"call.device_ack_timeout", "60s",
           "T1: an INVITE waits this long for a device to ack, then 480 No-Response-From-Device"},
          {"call.device_connect_timeout", "60s",
           "T2: after an ack, how long until 480 Device-Did-Not-Connect"},
          {"call.strict_source", "true",
           "accept INVITE/MESSAGE only from the address the binding's PBX answers REGISTERs from"},
          {"call.message_body_limit", "1024", "bytes of a MESSAGE body carried in its push"},
          {"trace.enabled", "true",
           "keep each binding's last SIP messages and push attempts for GET /v1/bindings/{id}/trace"},
          {"trace.max_entries", "50", "trace entries kept per binding"},
          {"trace.ttl", "7d", "a binding's trace goes this long after its last entry"},
          {"push.test_timeout", "10s",
           "how long POST /v1/bindings/{id}/test-push waits for the providers' answers"},
          {"call.push_calls_per_minute", "30",
           "call pushes per binding per minute; beyond, INVITEs get 480 Push-Rate-Limited"},
          {"call.push_messages_per_minute", "60",
           "message pushes per binding per minute; beyond, MESSAGEs get 480 Push-Rate-Limited"},
          {"call.mode", "relay",
           "relay: the call waits for the app (T1/T2); redirect: an ack naming a contact "
           "answers the PBX 302 toward it"},
      });
  return table;
}

namespace {

std::string hostName() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "registrar";
  return name;
}

std::string joinHostPort(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

}  // namespace

RegistrarConfig loadRegistrarConfig(const std::optional<std::string>& file,
                                    const config::EnvLookup& env) {
  auto v = registrarConfigTable().load(file, env);
  RegistrarConfig c;
  c.instance = v.optionalString("instance").value_or(hostName());
  if (!log::parseLevel(v.string("log.level"), c.log_level)) {
    throw config::ConfigError("config log.level (" + v.envName("log.level") +
                              "): must be debug, info, warn or error");
  }
  auto [api_host, api_port] = v.hostPort("api.listen");
  c.api_listen = joinHostPort(api_host, api_port);
  c.api_tls_cert = v.string("api.tls_cert");
  c.api_tls_key = v.string("api.tls_key");
  if (c.api_tls_cert.empty() != c.api_tls_key.empty()) {
    throw config::ConfigError("config api.tls_cert and api.tls_key go together");
  }
  c.api_allow_plain = v.boolean("api.allow_plain");
  c.api_keys_file = v.string("api.keys_file");
  c.admin_keys_file = v.string("admin.keys_file");
  c.api_max_body_bytes = static_cast<std::size_t>(v.integer("api.max_body_bytes", 1024, 1 << 24));
  c.api_max_connections = static_cast<std::size_t>(v.integer("api.max_connections", 1, 100000));
  c.api_max_header_bytes = static_cast<std::size_t>(v.integer("api.max_header_bytes", 1024, 1 << 20));
  c.api_request_timeout = v.duration("api.request_timeout", 100, 10 * kMinute);
  c.api_rate.rate_per_second = v.number("api.rate_per_key", 0.01, 1e6);
  c.api_rate.burst = v.number("api.rate_burst", 1, 1e6);
  auto [m_host, m_port] = v.hostPort("metrics.listen");
  c.metrics_listen = joinHostPort(m_host, m_port);

  auto [sip_host, sip_port] = v.hostPort("sip.listen");
  c.sip.listen_host = sip_host;
  c.sip.listen_port = sip_port;
  if (auto adv = v.optionalString("sip.advertise")) {
    auto [adv_host, adv_port] = v.hostPort("sip.advertise");
    c.sip.advertise_host = adv_host;
    c.sip.advertise_port = adv_port;
  }
  if (v.optionalString("sip.tls_listen")) {
    auto [tls_host, tls_port] = v.hostPort("sip.tls_listen");
    c.sip.tls_listen_host = tls_host;
    c.sip.tls_listen_port = tls_port;
    c.sip.tls_cert_file = v.string("sip.tls_cert");
    c.sip.tls_key_file = v.string("sip.tls_key");
    if (c.sip.tls_cert_file.empty() || c.sip.tls_key_file.empty()) {
      throw config::ConfigError(
          "config sip.tls_listen needs sip.tls_cert and sip.tls_key (REGISTRAR_SIP_TLS_CERT, "
          "REGISTRAR_SIP_TLS_KEY)");
    }
  }
  c.sip.tls_ca_file = v.string("sip.tls_ca_file");
  c.sip.tls_verify = v.boolean("sip.tls_verify");
  c.sip.udp_receive_buffer =
      static_cast<unsigned>(v.integer("sip.udp_receive_buffer", 65536, 256 << 20));
  c.sip.transaction_timeout = v.duration("sip.transaction_timeout", kSecond, 5 * kMinute);
  c.device_listen = v.string("device.listen");
  if (!c.device_listen.empty()) {
    auto [host, port] = v.hostPort("device.listen");
    c.device.listen_host = host;
    c.device.listen_port = port;
    if (!v.string("device.advertise").empty()) {
      auto [adv_host, adv_port] = v.hostPort("device.advertise");
      c.device.advertise_host = adv_host;
      c.device.advertise_port = adv_port;
    }
  }
  if (!v.string("device.tls_listen").empty()) {
    if (c.device_listen.empty()) {
      throw config::ConfigError("config device.tls_listen (REGISTRAR_DEVICE_TLS_LISTEN) needs device.listen");
    }
    auto [tls_host, tls_port] = v.hostPort("device.tls_listen");
    c.device.tls_listen_host = tls_host;
    c.device.tls_listen_port = tls_port;
    c.device.tls_cert_file = v.string("sip.tls_cert");
    c.device.tls_key_file = v.string("sip.tls_key");
    if (c.device.tls_cert_file.empty() || c.device.tls_key_file.empty()) {
      throw config::ConfigError(
          "config device.tls_listen needs sip.tls_cert and sip.tls_key (REGISTRAR_SIP_TLS_CERT, "
          "REGISTRAR_SIP_TLS_KEY)");
    }
  }
  c.device_sign_in.realm = v.string("device.realm");
  if (c.device_sign_in.realm.empty() || c.device_sign_in.realm.find('"') != std::string::npos) {
    throw config::ConfigError("config device.realm (REGISTRAR_DEVICE_REALM): a non-empty name without quotes");
  }
  c.device_sign_in.max_failures = static_cast<int>(v.integer("device.max_failures", 1, 1000));

  try {
    c.redis = redis::parseRedisUrl(v.string("redis.url"));
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError("config redis.url (" + v.envName("redis.url") + "): " + e.what());
  }
  c.credential_keys_file = v.string("credential.keys_file");
  c.credential_keys_inline = v.string("credential.keys");
  if (c.credential_keys_file.empty() && c.credential_keys_inline.empty()) {
    throw config::ConfigError(
        "no credential keys: set REGISTRAR_CREDENTIAL_KEYS_FILE (lines 'key-id base64-32-bytes')");
  }

  c.expires.min = static_cast<std::uint32_t>(v.integer("registration.min_expires", 1, 86400));
  c.expires.max = static_cast<std::uint32_t>(v.integer("registration.max_expires", 1, 7 * 86400));
  c.expires.default_value =
      static_cast<std::uint32_t>(v.integer("registration.default_expires", 1, 7 * 86400));
  if (c.expires.min > c.expires.max || c.expires.default_value < c.expires.min ||
      c.expires.default_value > c.expires.max) {
    throw config::ConfigError("config registration.default_expires must lie within min..max");
  }
  auto& p = c.policy;
  p.backoff_base = v.duration("registration.backoff_base", 100, kDay);
  p.backoff_max = v.duration("registration.backoff_max", 100, 7 * kDay);
  p.max_rejections = static_cast<int>(v.integer("registration.max_rejections", 1, 100));
  p.max_temporary_failures =
      static_cast<int>(v.integer("registration.max_temporary_failures", 1, 10000));
  p.max_failure_duration = v.duration("registration.max_failure_duration", kSecond, 30 * kDay);
  p.refresh_min_ratio = v.number("registration.refresh_min_ratio", 0.1, 0.95);
  p.refresh_max_ratio = v.number("registration.refresh_max_ratio", 0.1, 0.95);
  if (p.refresh_min_ratio > p.refresh_max_ratio) {
    throw config::ConfigError("config registration.refresh_min_ratio exceeds refresh_max_ratio");
  }
  p.binding_ttl = v.duration("registration.binding_ttl", kSecond, 365 * kDay);
  p.expiry_warnings.clear();
  std::string warnings = v.string("registration.expiry_warnings");
  for (std::size_t start = 0; start < warnings.size();) {
    std::size_t comma = std::min(warnings.find(',', start), warnings.size());
    std::string item = warnings.substr(start, comma - start);
    start = comma + 1;
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item.empty()) continue;
    Millis offset = 0;
    try {
      offset = config::parseDuration(item);
    } catch (const std::invalid_argument&) {
      offset = 0;
    }
    if (offset <= 0 || p.expiry_warnings.size() >= 8) {
      throw config::ConfigError("config registration.expiry_warnings (REGISTRAR_EXPIRY_WARNINGS): "
                                "up to 8 positive durations like 24h,1h");
    }
    p.expiry_warnings.push_back(offset);
  }
  std::sort(p.expiry_warnings.rbegin(), p.expiry_warnings.rend());
  p.expiry_warnings.erase(std::unique(p.expiry_warnings.begin(), p.expiry_warnings.end()),
                          p.expiry_warnings.end());
  p.failed_retention = v.duration("registration.failed_retention", kSecond, 30 * kDay);
  p.pacing.rate_per_second = v.number("registration.rate_per_target", 1, 1e6);
  p.pacing.max_in_flight = static_cast<int>(v.integer("registration.max_in_flight_per_target", 1, 100000));
  p.pacing.global_rate_per_second = v.number("registration.rate_global", 1, 1e6);
  std::string tenant_policy;
  if (auto path = v.optionalString("target.tenant_policy_file")) {
    std::ifstream in(*path);
    if (!in) {
      throw config::ConfigError("config target.tenant_policy_file (" +
                                v.envName("target.tenant_policy_file") + "): cannot read '" + *path + "'");
    }
    std::stringstream text;
    text << in.rdbuf();
    tenant_policy = text.str();
  }
  try {
    c.target = TargetPolicy::parseConfig(v.string("target.allow"), v.string("target.deny"),
                                         tenant_policy);
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError(std::string("config target.* (REGISTRAR_TARGET_ALLOW, "
                                          "REGISTRAR_TARGET_DENY, REGISTRAR_TARGET_TENANT_POLICY_FILE): ") +
                              e.what());
  }
  c.unregister_wait = v.duration("registration.unregister_wait", 100, kMinute);
  c.shards = static_cast<std::uint32_t>(v.integer("shards", 1, 65536));
  c.lease_ttl = v.duration("lease_ttl", kSecond, 10 * kMinute);
  c.handover_timeout = v.duration("handover_timeout", 0, 10 * kMinute);
  c.policy.handover_grace = std::max<Millis>(3 * c.lease_ttl, 30 * kSecond);
  c.call.device_ack_timeout = v.duration("call.device_ack_timeout", 100, 10 * kMinute);
  c.call.device_connect_timeout = v.duration("call.device_connect_timeout", 100, 10 * kMinute);
  c.call.strict_source = v.boolean("call.strict_source");
  c.call.message_body_limit =
      static_cast<std::size_t>(v.integer("call.message_body_limit", 0, 3000));
  c.call.push_calls_per_minute = static_cast<int>(v.integer("call.push_calls_per_minute", 1, 100000));
  c.call.push_messages_per_minute =
      static_cast<int>(v.integer("call.push_messages_per_minute", 1, 100000));
  std::string mode = v.string("call.mode");
  if (mode != "relay" && mode != "redirect") {
    throw config::ConfigError("config call.mode (REGISTRAR_CALL_MODE): must be relay or redirect");
  }
  c.call.redirect = mode == "redirect";
  c.trace.enabled = v.boolean("trace.enabled");
  c.trace.max_entries = static_cast<int>(v.integer("trace.max_entries", 1, 10000));
  c.trace.ttl = v.duration("trace.ttl", kSecond, 365 * kDay);
  c.test_push_timeout = v.duration("push.test_timeout", 100, 2 * kMinute);
  return c;
}

}  // namespace sipwake::registrar
