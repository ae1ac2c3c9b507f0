#include "common/redis/redis_health.h"

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::redis;

TEST_CASE("Redis health: a failing connection holds the gauge down until it works or the window passes",
          "[redis]") {
  RedisHealth& health = RedisHealth::instance();
  int store = 0, leases = 0;  // two connections, by address
  Millis now = SystemClock::instance().now();
  std::uint64_t connect_before = health.errors(RedisFailure::Connect);
  std::uint64_t io_before = health.errors(RedisFailure::Io);

  health.succeeded(&store);
  health.succeeded(&leases);
  CHECK(health.up(now));

  health.failed(&store, RedisFailure::Connect);
  health.failed(&leases, RedisFailure::Io);
  CHECK_FALSE(health.up(SystemClock::instance().now()));
  CHECK(health.errors(RedisFailure::Connect) == connect_before + 1);
  CHECK(health.errors(RedisFailure::Io) == io_before + 1);

  // One works again, the other still fails.
  health.succeeded(&leases);
  CHECK_FALSE(health.up(SystemClock::instance().now()));
  // The other was left idle since its failure: up once the window passed.
  CHECK(health.up(SystemClock::instance().now() + 31 * kSecond, 30 * kSecond));

  // A closed connection no longer counts.
  health.failed(&store, RedisFailure::RoleChange);
  CHECK_FALSE(health.up(SystemClock::instance().now()));
  health.closed(&store);
  CHECK(health.up(SystemClock::instance().now()));
}

TEST_CASE("Redis health: failure kinds have the metric label names", "[redis]") {
  CHECK(std::string(failureName(RedisFailure::Connect)) == "connect");
  CHECK(std::string(failureName(RedisFailure::Io)) == "io");
  CHECK(std::string(failureName(RedisFailure::RoleChange)) == "role_change");
}
