// redis::Connection on a real 3-primary Redis Cluster: routing by slot,
// pipelines over several nodes, scripts, MOVED after a slot moved, ASK in
// the middle of a migration, a keyspace scan of every primary, and a
// primary's failover.
#include "common/redis/cluster_router.h"

#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "common/redis/keyspace_scan.h"
#include "common/redis/redis_connection.h"
#include "tests/support/redis_cluster.h"

using sipwake::redis::Connection;
using sipwake::redis::parseRedisUrl;
using sipwake::testing::RedisCluster;

namespace {

std::string key(int i) {
  return "sipwake:test:{k" + std::to_string(i) + "}";
}

// Every key on the node serving its slot, and which nodes hold them.
std::set<uint16_t> checkPlaced(RedisCluster& cluster, int count) {
  std::set<uint16_t> used;
  for (int i = 0; i < count; ++i) {
    uint16_t port = cluster.ownerOf(cluster.slotOf(key(i)));
    CAPTURE(key(i), port);
    CHECK(cluster.client(port).get(key(i)) == "v" + std::to_string(i));
    used.insert(port);
  }
  return used;
}

}  // namespace

TEST_CASE("redis cluster: commands, pipelines and scripts go to the key's node",
          "[redis-cluster]") {
  RedisCluster cluster;
  Connection redis(parseRedisUrl(cluster.url()));
  for (int i = 0; i < 30; ++i) {
    CHECK(redis.command({"SET", key(i), "v" + std::to_string(i)}).str() == "OK");
    CHECK(sipwake::redis::keySlot(key(i)) == cluster.slotOf(key(i)));
  }
  CHECK(checkPlaced(cluster, 30).size() == 3);  // the keys spread over every primary

  // A pipeline over the three nodes keeps its order.
  std::vector<std::vector<std::string>> reads;
  for (int i = 29; i >= 0; --i) reads.push_back({"GET", key(i)});
  reads.push_back({"PING"});
  auto replies = redis.pipeline(reads);
  REQUIRE(replies.size() == 31);
  for (int i = 0; i < 30; ++i) CHECK(replies[i].str() == "v" + std::to_string(29 - i));
  CHECK(replies[30].str() == "PONG");

  // Scripts: EVALSHA falls back to EVAL on a node that never saw the script;
  // loadScript puts it on every primary for pipelined EVALSHA.
  sipwake::redis::Script get{"return redis.call('GET', KEYS[1])", {}};
  for (int i = 0; i < 30; ++i)
    CHECK(redis.eval(get, {key(i)}, {}).str() == "v" + std::to_string(i));
  sipwake::redis::Script strlen{"return redis.call('STRLEN', KEYS[1])", {}};
  redis.loadScript(strlen);
  std::vector<std::vector<std::string>> evals;
  for (int i = 0; i < 30; ++i) evals.push_back({"EVALSHA", strlen.sha1, "1", key(i)});
  for (const auto& r : redis.pipeline(evals)) CHECK(r.integer() >= 2);

  // A multi-key script over two slots is refused, as Redis does.
  sipwake::redis::Script two{"return redis.call('GET', KEYS[2])", {}};
  CHECK(redis.eval(two, {key(0), key(1)}, {}).isError());
}

TEST_CASE("redis cluster: a moved slot is followed (MOVED), a migrating one too (ASK)",
          "[redis-cluster]") {
  RedisCluster cluster;
  Connection redis(parseRedisUrl(cluster.url()));
  for (int i = 0; i < 30; ++i) redis.command({"SET", key(i), "v" + std::to_string(i)});

  // MOVED: the connection's map still names the old owner.
  int slot = cluster.slotOf(key(0));
  uint16_t from = cluster.ownerOf(slot);
  uint16_t to = 0;
  for (uint16_t p : cluster.primaryPorts())
    if (p != from) to = p;
  auto before = sipwake::redis::clusterRedirections();
  cluster.moveSlot(slot, to);
  CHECK(cluster.ownerOf(slot) == to);
  CHECK(redis.command({"GET", key(0)}).str() == "v0");
  CHECK(redis.command({"SET", key(0), "after-move"}).str() == "OK");
  CHECK(cluster.client(to).get(key(0)) == "after-move");
  CHECK(sipwake::redis::clusterRedirections() > before);

  // ASK: key(1)'s slot is migrating; one key moved, one not yet.
  slot = cluster.slotOf(key(1));
  from = cluster.ownerOf(slot);
  for (uint16_t p : cluster.primaryPorts())
    if (p != from) to = p;
  std::string stays = "sipwake:test:{k1}:stays", moves = key(1);
  redis.command({"SET", stays, "here"});
  cluster.beginMove(slot, to);
  cluster.migrateKey(slot, moves, to);
  before = sipwake::redis::clusterRedirections();
  CHECK(redis.command({"GET", moves}).str() == "v1");    // ASK, then ASKING + GET at `to`
  CHECK(redis.command({"GET", stays}).str() == "here");  // still at `from`
  CHECK(redis.command({"SET", moves, "mid-move"}).str() == "OK");
  cluster.client(to).command({"ASKING"});  // or the importing node answers MOVED
  CHECK(cluster.client(to).get(moves) == "mid-move");
  auto mixed = redis.pipeline({{"GET", moves}, {"GET", stays}, {"GET", key(2)}});
  CHECK(mixed[0].str() == "mid-move");
  CHECK(mixed[1].str() == "here");
  CHECK(mixed[2].str() == "v2");
  CHECK(sipwake::redis::clusterRedirections() > before);
  cluster.finishMove(slot, to);
  CHECK(redis.command({"GET", stays}).str() == "here");
  CHECK(cluster.client(to).get(stays) == "here");
}

TEST_CASE("redis cluster: a keyspace scan visits every primary", "[redis-cluster]") {
  RedisCluster cluster;
  Connection redis(parseRedisUrl(cluster.url()));
  for (int i = 0; i < 300; ++i) redis.command({"SET", key(i), "v"});
  CHECK(redis.nodes().size() == 3);
  std::set<std::string> seen;
  std::string cursor = "0";
  bool composite = false;
  for (int step = 0; step < 1000; ++step) {
    auto page =
        sipwake::redis::scanKeyspace(redis, cursor, {"MATCH", "sipwake:test:*", "COUNT", "50"});
    seen.insert(page.keys.begin(), page.keys.end());
    composite = composite || page.next_cursor.find('-') != std::string::npos;
    cursor = page.next_cursor;
    if (cursor == "0") break;
  }
  CHECK(cursor == "0");
  CHECK(composite);
  CHECK(seen.size() == 300);
}

TEST_CASE("redis cluster: a killed primary's replica takes over", "[redis-cluster]") {
  RedisCluster cluster({3, 1, ""});
  Connection redis(parseRedisUrl(cluster.url()));
  for (int i = 0; i < 30; ++i) redis.command({"SET", key(i), "v" + std::to_string(i)});
  int slot = cluster.slotOf(key(0));
  uint16_t dead = cluster.ownerOf(slot);
  // Its replica has the key before the primary dies.
  CHECK(redis.commandOnNode("127.0.0.1:" + std::to_string(dead), {"WAIT", "1", "1000"}).integer() ==
        1);
  cluster.kill9(dead);
  // Until a replica is promoted, the slot's commands fail as "Redis down".
  bool failed_over = sipwake::testing::waitUntil(
      [&] {
        try {
          return redis.command({"GET", key(0)}).str() == "v0";
        } catch (const sipwake::redis::RedisUnavailable&) {
          return false;
        }
      },
      20000, 200);
  CHECK(failed_over);
  CHECK(cluster.ownerOf(slot) != dead);
  CHECK(redis.command({"SET", key(0), "after-failover"}).str() == "OK");
}

TEST_CASE(
    "redis cluster: every node's connection authenticates, and a refused password is reported "
    "without the password",
    "[redis-cluster]") {
  RedisCluster cluster({3, 0, "cluster-Secret-77"});
  Connection redis(parseRedisUrl(cluster.url()));
  for (int i = 0; i < 30; ++i) redis.command({"SET", key(i), "v" + std::to_string(i)});
  CHECK(checkPlaced(cluster, 30).size() == 3);

  std::string url = cluster.url();
  url.replace(url.find("cluster-Secret-77"), 17, "not-the-Secret-1");
  Connection wrong(parseRedisUrl(url));
  try {
    wrong.command({"GET", key(0)});
    FAIL("a wrong password was accepted");
  } catch (const sipwake::redis::RedisUnavailable& e) {
    CHECK(std::string(e.what()).find("rejected our credentials") != std::string::npos);
    CHECK(std::string(e.what()).find("Secret") == std::string::npos);
  }
}
