#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>

#include "common/event/clock.h"

namespace sipwake::redis {

// How a Redis operation failed, as operators tell the causes apart.
enum class RedisFailure {
  Connect,     // no connection: refused, timed out, AUTH or SELECT refused, no primary found
  Io,          // the connection broke or timed out during a command
  RoleChange,  // a demoted primary refused a write (READONLY, MASTERDOWN...)
};
inline constexpr std::size_t kRedisFailureKinds = 3;
const char* failureName(RedisFailure kind);

// What this process's Redis connections went through, for the
// `*_redis_up` gauge and the `*_redis_errors_total` counter. Every
// redis::Connection reports here; it is process-wide because connections
// live on many threads (store, push writer, leases, pushgw's stream) and
// any one of them failing is what an operator wants to know.
//
// Redis counts as up when no connection has failed within `window` without
// succeeding since: a connection that failed and then sat idle (the push
// writer between calls) must not keep the gauge down for ever, and the
// connections that work all the time (leases, the pushgw stream) report a
// continuing outage well within the window.
class RedisHealth {
 public:
  static RedisHealth& instance();

  void succeeded(const void* connection);
  void failed(const void* connection, RedisFailure kind);
  void closed(const void* connection);

  // `now` is the system clock's (failures are stamped with it).
  bool up(Millis now, Millis window = 30 * kSecond) const;
  std::uint64_t errors(RedisFailure kind) const;

 private:
  mutable std::mutex mutex_;
  std::map<const void*, Millis> failing_since_success_;  // connection -> last failure
  // Its size, read without the lock: succeeded() runs after every command,
  // and nearly always nothing is failing.
  std::atomic<std::size_t> failing_{0};
  std::array<std::atomic<std::uint64_t>, kRedisFailureKinds> errors_{};
};

}  // namespace sipwake::redis
