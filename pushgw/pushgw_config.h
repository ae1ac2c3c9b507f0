#pragma once

#include <optional>
#include <string>

#include "common/config/config_table.h"
#include "common/log/logger.h"
#include "common/redis/redis_url.h"
#include "pushgw/dispatch/push_dispatcher.h"
#include "pushgw/queue/job_stream.h"

namespace sipwake::pushgw {

struct PushgwConfig {
  std::string instance;
  log::Level log_level = log::Level::Info;
  std::string metrics_listen;
  redis::RedisUrl redis;
  std::string apps_file;  // empty: the log provider
  JobStream::Options queue;
  RetryPolicy retry;
};

const config::ConfigTable& pushgwConfigTable();
PushgwConfig loadPushgwConfig(const std::optional<std::string>& file, const config::EnvLookup& env);

}  // namespace sipwake::pushgw
