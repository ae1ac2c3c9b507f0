#include "pushgw/pushgw_config.h"

#include <unistd.h>

namespace sipwake::pushgw {

const config::ConfigTable& pushgwConfigTable() {
  static const config::ConfigTable table(
      "PUSHGW",
      {
          {"instance", "", "This instance's name: its consumer in the group (default: host name)"},
          {"log.level", "info", "debug, info, warn or error"},
          {"metrics.listen", "127.0.0.1:9102", "host:port serving /metrics"},
          {"redis.url", "redis://127.0.0.1:6379/0",
           "redis://[:password@]host:port/db, redis-sentinel://h1:26379,h2/<master>/db "
           "or redis-cluster://h1:6379,h2:6379"},
          {"apps_file", "",
           "JSON {\"apps\": [...]}: APNs and FCM credentials per app; unset: log pushes only"},
          {"queue.group", "pushgw", "the consumer group every pushgw instance joins"},
          {"queue.batch", "500", "jobs read per request"},
          {"queue.claim_idle", "30s", "jobs a dead consumer left pending are taken over after this"},
          {"queue.max_deliveries", "5", "a job handed out this often goes to the dead-letter stream"},
          {"queue.max_outstanding", "20000", "jobs in progress at once"},
          {"queue.shutdown_drain", "5s",
           "on SIGTERM, how long to finish the pushes under way before leaving the rest pending"},
          {"retry.base", "1s", "first retry delay of a push the provider asked to retry"},
          {"retry.max", "60s", "longest retry delay"},
          {"retry.max_attempts", "8", "attempts of a non-call push before it is given up"},
      });
  return table;
}

PushgwConfig loadPushgwConfig(const std::optional<std::string>& file, const config::EnvLookup& env) {
  auto v = pushgwConfigTable().load(file, env);
  PushgwConfig c;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c.instance = v.optionalString("instance").value_or(host[0] ? host : "pushgw");
  if (!log::parseLevel(v.string("log.level"), c.log_level)) {
    throw config::ConfigError("config log.level (PUSHGW_LOG_LEVEL): must be debug, info, warn or error");
  }
  auto [m_host, m_port] = v.hostPort("metrics.listen");
  c.metrics_listen = (m_host.find(':') != std::string::npos ? "[" + m_host + "]" : m_host) + ":" +
                     std::to_string(m_port);
  try {
    c.redis = redis::parseRedisUrl(v.string("redis.url"));
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError(std::string("config redis.url (PUSHGW_REDIS_URL): ") + e.what());
  }
  c.apps_file = v.string("apps_file");
  c.queue.url = c.redis;
  c.queue.group = v.string("queue.group");
  c.queue.consumer = c.instance;
  c.queue.batch = static_cast<std::size_t>(v.integer("queue.batch", 1, 10000));
  c.queue.claim_idle = v.duration("queue.claim_idle", 100, kHour);
  c.queue.max_deliveries = static_cast<int>(v.integer("queue.max_deliveries", 1, 100));
  c.queue.max_outstanding = static_cast<std::size_t>(v.integer("queue.max_outstanding", 1, 1'000'000));
  c.queue.shutdown_drain = v.duration("queue.shutdown_drain", 0, 10 * kMinute);
  c.retry.base = v.duration("retry.base", 10, kHour);
  c.retry.max = v.duration("retry.max", 10, kDay);
  c.retry.max_attempts = static_cast<int>(v.integer("retry.max_attempts", 1, 100));
  return c;
}

}  // namespace sipwake::pushgw
