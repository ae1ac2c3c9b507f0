#include "common/redis/redis_health.h"

namespace sipwake::redis {

const char* failureName(RedisFailure kind) {
  switch (kind) {
    case RedisFailure::Connect: return "connect";
    case RedisFailure::Io: return "io";
    case RedisFailure::RoleChange: return "role_change";
  }
  return "unknown";
}

RedisHealth& RedisHealth::instance() {
  static RedisHealth health;
  return health;
}

void RedisHealth::succeeded(const void* connection) {
  if (failing_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard lock(mutex_);
  failing_since_success_.erase(connection);
  failing_.store(failing_since_success_.size(), std::memory_order_release);
}

void RedisHealth::failed(const void* connection, RedisFailure kind) {
  errors_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  failing_since_success_[connection] = SystemClock::instance().now();
  failing_.store(failing_since_success_.size(), std::memory_order_release);
}

void RedisHealth::closed(const void* connection) {
  std::lock_guard lock(mutex_);
  failing_since_success_.erase(connection);
  failing_.store(failing_since_success_.size(), std::memory_order_release);
}

bool RedisHealth::up(Millis now, Millis window) const {
  Millis since = now - window;
  std::lock_guard lock(mutex_);
  for (const auto& [connection, last_failure] : failing_since_success_) {
    if (last_failure >= since) return false;
  }
  return true;
}

std::uint64_t RedisHealth::errors(RedisFailure kind) const {
  return errors_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
}

}  // namespace sipwake::redis
