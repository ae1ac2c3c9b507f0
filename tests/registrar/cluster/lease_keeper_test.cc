#include "registrar/cluster/lease_keeper.h"

#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <catch2/catch.hpp>

#include "common/redis/redis_url.h"
#include "registrar/cluster/shard.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::testing::RedisServer;
using sipwake::testing::waitUntil;

namespace {

constexpr std::uint32_t kShards = 64;

// A keeper and the shards its change callbacks say it holds: they must agree
// with owns() at all times.
struct Member {
  Member(const RedisServer& redis, const std::string& name, Millis ttl = 900)
      : keeper({redis::parseRedisUrl(redis.url()), name, kShards, ttl, "127.0.0.1:5060", "127.0.0.1:8080"},
               [this](const std::vector<std::uint32_t>& gained, const std::vector<std::uint32_t>& lost) {
                 std::lock_guard<std::mutex> lock(mutex);
                 for (auto s : gained) CHECK(held.insert(s).second);
                 for (auto s : lost) CHECK(held.erase(s) == 1);
               }) {
    keeper.start();
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return held.size();
  }
  std::set<std::uint32_t> shards() {
    std::lock_guard<std::mutex> lock(mutex);
    return held;
  }

  std::mutex mutex;
  std::set<std::uint32_t> held;
  LeaseKeeper keeper;
};

// Every shard held by exactly one member.
bool partitioned(const std::vector<Member*>& members) {
  std::map<std::uint32_t, int> owners;
  for (auto* m : members) {
    for (auto s : m->shards()) ++owners[s];
  }
  if (owners.size() != kShards) return false;
  for (auto& [shard, n] : owners) {
    if (n != 1) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("shardOf is stable and spreads keys", "[cluster]") {
  CHECK(shardOf("acme/b1", 64) == shardOf("acme/b1", 64));
  std::map<std::uint32_t, int> per_shard;
  for (int i = 0; i < 6400; ++i) ++per_shard[shardOf("acme/binding-" + std::to_string(i), 64)];
  CHECK(per_shard.size() == 64);
  for (auto& [shard, n] : per_shard) CHECK(n < 200);  // 100 on average
}

TEST_CASE("instances share the shards fairly, take a dead one's and get a leaving one's", "[cluster]") {
  RedisServer redis;
  auto a = std::make_unique<Member>(redis, "a");
  REQUIRE(waitUntil([&] { return a->count() == kShards; }, 5000));

  auto b = std::make_unique<Member>(redis, "b");
  auto c = std::make_unique<Member>(redis, "c");
  // A joining instance gets a fair share: ceil(64 / 3) = 22 at most each.
  REQUIRE(waitUntil([&] { return partitioned({a.get(), b.get(), c.get()}) && b->count() >= 20 && c->count() >= 20; },
                    10000));
  for (auto* m : {a.get(), b.get(), c.get()}) {
    CHECK(m->count() <= 22);
    CHECK(m->keeper.ownedCount() == m->count());
    CHECK(m->keeper.liveInstances() == 3);
  }

  SECTION("a dead instance's shards go to the survivors once its leases ran out") {
    auto b_shards = b->shards();
    b->keeper.stop();  // no more renewals: as good as kill -9 for Redis
    REQUIRE(waitUntil([&] { return a->count() + c->count() == kShards; }, 5000));
    CHECK(partitioned({a.get(), c.get()}));
    for (auto s : b_shards) CHECK((a->keeper.owns(s) || c->keeper.owns(s)));
  }

  SECTION("a leaving instance hands everything over at once") {
    CHECK(c->keeper.leave());
    CHECK(c->count() == 0);
    REQUIRE(waitUntil([&] { return partitioned({a.get(), b.get()}); }, 5000));
  }

  SECTION("the last instance keeps its shards when it leaves") {
    b->keeper.stop();
    c->keeper.stop();
    REQUIRE(waitUntil([&] { return a->count() == kShards; }, 5000));
    CHECK_FALSE(a->keeper.leave());
    CHECK(a->count() == kShards);
  }
}

TEST_CASE("an instance is alive while its announcement's deadline is ahead of Redis's clock",
          "[cluster]") {
  RedisServer redis;
  redis::Connection connection(redis::parseRedisUrl(redis.url()));
  CHECK_FALSE(instanceAlive(connection, "r1"));  // never announced
  {
    Member r1(redis, "r1");
    REQUIRE(waitUntil([&] { return r1.keeper.settled(); }, 5000));
    CHECK(instanceAlive(connection, "r1"));
    CHECK(r1.keeper.leave() == false);  // alone: it keeps its leases, yet leaves the zset
    CHECK_FALSE(instanceAlive(connection, "r1"));
  }
  // A dead one: its deadline lapsed.
  connection.command({"ZADD", kInstancesKey, "1000", "r2"});
  CHECK_FALSE(instanceAlive(connection, "r2"));
}
