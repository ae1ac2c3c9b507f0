#include "common/redis/redis_url.h"

#include <stdexcept>

#include <catch2/catch.hpp>

using sipwake::redis::parseRedisUrl;
using sipwake::redis::RedisUrl;

TEST_CASE("redis URLs: plain and Sentinel forms", "[redis]") {
  RedisUrl plain = parseRedisUrl("redis://:s3cret@10.0.0.5:6380/2");
  CHECK(plain.host == "10.0.0.5");
  CHECK(plain.port == 6380);
  CHECK(plain.db == 2);
  CHECK_FALSE(plain.viaSentinel());
  CHECK(plain.redacted() == "redis://:***@10.0.0.5:6380/2");

  RedisUrl s = parseRedisUrl("redis-sentinel://app:s3cret@host1:26380,host2,[::1]:26381/mymaster/3");
  REQUIRE(s.viaSentinel());
  REQUIRE(s.sentinels.size() == 3);
  CHECK(s.sentinels[0] == std::make_pair(std::string("host1"), 26380));
  CHECK(s.sentinels[1] == std::make_pair(std::string("host2"), 26379));
  CHECK(s.sentinels[2] == std::make_pair(std::string("::1"), 26381));
  CHECK(s.master_name == "mymaster");
  CHECK(s.db == 3);
  CHECK(s.username == "app");
  CHECK(s.password == "s3cret");
  CHECK(s.redacted() == "redis-sentinel://app:***@host1:26380,host2:26379,[::1]:26381/mymaster/3");
  CHECK(s.redacted().find("s3cret") == std::string::npos);

  CHECK(parseRedisUrl("redis-sentinel://127.0.0.1:26379/mymaster").db == 0);
  CHECK_THROWS_AS(parseRedisUrl("redis-sentinel://127.0.0.1:26379"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-sentinel://127.0.0.1:26379/"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-sentinel://h1,,h2/mymaster"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-sentinel://h1:0/mymaster"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-sentinel://h1/mymaster/16"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("rediss://h1"), std::invalid_argument);
}

TEST_CASE("redis URLs: the Redis Cluster form", "[redis][redis-cluster]") {
  RedisUrl c = parseRedisUrl("redis-cluster://app:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002");
  REQUIRE(c.viaCluster());
  CHECK_FALSE(c.viaSentinel());
  REQUIRE(c.cluster_seeds.size() == 3);
  CHECK(c.cluster_seeds[0] == std::make_pair(std::string("10.0.0.1"), 7000));
  CHECK(c.cluster_seeds[1] == std::make_pair(std::string("10.0.0.2"), 6379));
  CHECK(c.cluster_seeds[2] == std::make_pair(std::string("::1"), 7002));
  CHECK(c.db == 0);
  CHECK(c.username == "app");
  CHECK(c.password == "s3cret");
  CHECK(c.redacted() == "redis-cluster://app:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002");

  CHECK(parseRedisUrl("redis-cluster://h1/0").viaCluster());
  CHECK(parseRedisUrl("redis-cluster://:pw@h1").password == "pw");
  CHECK_THROWS_AS(parseRedisUrl("redis-cluster://h1/1"), std::invalid_argument);  // only db 0
  CHECK_THROWS_AS(parseRedisUrl("redis-cluster://h1,,h2"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-cluster://h1:99999"), std::invalid_argument);
  CHECK_THROWS_AS(parseRedisUrl("redis-cluster://"), std::invalid_argument);
}
