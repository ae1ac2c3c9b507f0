#include "common/redis/keyspace_scan.h"

#include <set>

#include <catch2/catch.hpp>

#include "tests/support/redis_server.h"

using sipwake::redis::isKeyspaceCursor;

TEST_CASE("keyspace cursors: SCAN's own, or node-cursor", "[redis]") {
  CHECK(isKeyspaceCursor("0"));
  CHECK(isKeyspaceCursor("1234"));
  CHECK(isKeyspaceCursor("2-1234"));
  CHECK(isKeyspaceCursor("1-0"));
  CHECK_FALSE(isKeyspaceCursor(""));
  CHECK_FALSE(isKeyspaceCursor("-1"));
  CHECK_FALSE(isKeyspaceCursor("1-"));
  CHECK_FALSE(isKeyspaceCursor("1-2-3"));
  CHECK_FALSE(isKeyspaceCursor("a"));
  CHECK_FALSE(isKeyspaceCursor("12345-1"));
  CHECK_FALSE(isKeyspaceCursor("123456789012345678901"));
}

TEST_CASE("a keyspace scan of one server is SCAN", "[redis]") {
  sipwake::testing::RedisServer server;
  sipwake::testing::RedisClient client(server.port());
  for (int i = 0; i < 250; ++i) client.command({"SET", "k" + std::to_string(i), "v"});
  sipwake::redis::Connection redis(sipwake::redis::parseRedisUrl(server.url()));
  std::set<std::string> seen;
  std::string cursor = "0";
  int steps = 0;
  do {
    auto step = sipwake::redis::scanKeyspace(redis, cursor, {"MATCH", "k*", "COUNT", "50"});
    CHECK(step.next_cursor.find('-') == std::string::npos);
    seen.insert(step.keys.begin(), step.keys.end());
    cursor = step.next_cursor;
  } while (cursor != "0" && ++steps < 100);
  CHECK(seen.size() == 250);
}
