// The lost-call sweep on a Redis Cluster: it must visit every primary, as
// the call records live beside their binding, in that binding's slot.
#include <atomic>
#include <set>

#include <catch2/catch.hpp>

#include "common/redis/cluster_slot.h"
#include "common/redis/redis_connection.h"
#include "registrar/push/push_job_writer.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"

using namespace sipwake;
using namespace sipwake::registrar;

TEST_CASE("the lost-call sweep ends this instance's ringing calls on every cluster node",
          "[redis-cluster]") {
  testing::RedisCluster cluster;
  auto url = redis::parseRedisUrl(cluster.url());
  redis::Connection redis(url);
  std::set<uint16_t> nodes;
  // 30 calls: all three primaries hold some (but for a 1e-5 chance).
  for (int i = 0; i < 30; ++i) {
    std::string key = callStateKey("acme/phone" + std::to_string(i), "call-" + std::to_string(i));
    std::string instance = i % 3 == 0 ? "registrar-b" : "registrar-a";  // 10 not ours
    redis.command({"HSET", key, "state", "ringing", "instance", instance, "at", "1000"});
    nodes.insert(cluster.ownerOf(cluster.slotOf(key)));
  }
  REQUIRE(nodes.size() == 3);

  PushJobWriter writer(url, "registrar-a");
  writer.start();
  std::atomic<int> lost{-1};
  writer.sweepLostCalls(2000, [&](int n) { lost = n; });
  REQUIRE(testing::waitUntil([&] { return lost.load() >= 0; }, 10000));
  CHECK(lost.load() == 20);
  for (int i = 0; i < 30; ++i) {
    std::string key = callStateKey("acme/phone" + std::to_string(i), "call-" + std::to_string(i));
    CHECK(redis.command({"HGET", key, "state"}).str() == (i % 3 == 0 ? "ringing" : "ended"));
  }
  writer.stop();
}
