// The binding store's diagnostics against a real redis-server: expiry
// warnings once per offset and generation, test pushes, the capped trace.
#include "registrar/binding/binding_store.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/redis/redis_url.h"
#include "tests/support/redis_server.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::testing::RedisClient;
using sipwake::testing::RedisServer;
using nlohmann::json;

namespace {

void storeBinding(RedisClient& redis, const std::string& generation) {
  json devices = json::array({{{"id", "iphone"}, {"provider", "apns"}, {"token", "a1b2c3d4e5f6"}, {"app", "com.example.talk"}},
                              {{"id", "pixel"}, {"provider", "fcm"}, {"token", "f1f2f3f4f5f6"}, {"app", "example-project"}}});
  redis.command({"HSET", bindingRedisKey("acme/phone"), "tenant", "acme", "id", "phone", "devices", devices.dump(),
                 "generation", generation});
}

std::vector<json> jobs(RedisClient& redis) { return redis.pushJobs(); }

}  // namespace

TEST_CASE("an expiry warning is queued once per offset and generation", "[redis][trace]") {
  RedisServer server;
  RedisClient client(server.port());
  redis::Connection connection(redis::parseRedisUrl(server.url()));
  BindingStore store(connection, kHour);
  storeBinding(client, "3");

  CHECK(store.warnExpiring("acme/phone", 3, kHour, 5'000'000, 1'000'000) == 2);
  CHECK(store.warnExpiring("acme/phone", 3, kHour, 5'000'000, 1'000'001) == 0);  // a restart re-arms: no repeat
  CHECK(store.warnExpiring("acme/phone", 2, 24 * kHour, 5'000'000, 1'000'002) == 0);  // a stale generation
  CHECK(store.warnExpiring("acme/phone", 3, 24 * kHour, 5'000'000, 1'000'003) == 2);  // another offset
  storeBinding(client, "4");  // a PUT: warnings again
  CHECK(store.warnExpiring("acme/phone", 4, kHour, 9'000'000, 1'000'004) == 2);

  auto queued = jobs(client);
  REQUIRE(queued.size() == 6);
  CHECK(queued[0]["type"] == "binding_expiring");
  CHECK(queued[0]["binding"] == "phone");
  CHECK(queued[0]["device"]["id"] == "iphone");
  CHECK(queued[0]["expires_at"] == 5'000'000);
  CHECK(queued[0]["trace"]["max"] == 50);
  CHECK(queued[5]["expires_at"] == 9'000'000);
  // Each queued push is in the binding's trace, its token shortened.
  auto trace = store.readTrace("acme/phone", 50);
  REQUIRE(trace.size() == 6);
  auto first = json::parse(trace[0]);
  CHECK(first["event"] == "queued");
  CHECK(first["type"] == "binding_expiring");
  CHECK(first["token"] == "a1b2c3d4…");
  CHECK(client.ttl(traceRedisKey("acme/phone")) > 0);
}

TEST_CASE("test pushes name the devices pushed and the trace stays capped", "[redis][trace]") {
  RedisServer server;
  RedisClient client(server.port());
  redis::Connection connection(redis::parseRedisUrl(server.url()));
  BindingStore store(connection, kHour);
  TraceOptions options;
  options.max_entries = 3;
  options.ttl = kMinute;
  store.setTrace(options);
  CHECK_FALSE(store.queueTestPushes("acme/nobody", {"t-1", "reg-a", 99}, 1));
  storeBinding(client, "1");
  auto devices = store.queueTestPushes("acme/phone", {"t-2", "reg-a", 99}, 1);
  REQUIRE(devices);
  CHECK(*devices == std::vector<std::pair<std::string, std::string>>{{"iphone", "apns"}, {"pixel", "fcm"}});
  auto queued = jobs(client);
  REQUIRE(queued.size() == 2);
  CHECK(queued[1]["type"] == "test");
  CHECK(queued[1]["test_id"] == "t-2");
  CHECK(queued[1]["instance"] == "reg-a");
  CHECK(queued[1]["trace"] == json{{"max", 3}, {"ttl", 60}});

  std::vector<std::pair<std::string, std::string>> lines;
  for (int i = 0; i < 5; ++i) lines.emplace_back("acme/phone", json{{"n", i}}.dump());
  store.appendTraces(lines, options);
  auto trace = store.readTrace("acme/phone", 10);
  REQUIRE(trace.size() == 3);  // capped, oldest first
  CHECK(trace[0] == json{{"n", 2}}.dump());
  CHECK(trace[2] == json{{"n", 4}}.dump());
  CHECK(store.readTrace("acme/phone", 1) == std::vector<std::string>{json{{"n", 4}}.dump()});
  CHECK(client.ttl(traceRedisKey("acme/phone")) <= 60);
  // Erasing the binding erases its trace.
  store.erase("acme/phone");
  CHECK_FALSE(client.exists(traceRedisKey("acme/phone")));
}
