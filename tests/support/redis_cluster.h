// A real Redis Cluster for tests: redis-server nodes with cluster-enabled on
// loopback, joined by `redis-cli --cluster create`, and the operations a
// test needs to move slots around while clients run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace sipwake::testing {

struct RedisClusterOptions {
  int primaries = 3;
  int replicas_per_primary = 0;
  // requirepass and masterauth on every node when not empty; url() and
  // client() then authenticate.
  std::string password;
};

// Nodes on freePort()s whose cluster bus port (port + 10000) is free too,
// each with its nodes.conf in its own TempDir. The constructor returns once
// every node says cluster_state:ok and knows every slot's owner.
class RedisCluster {
 public:
  explicit RedisCluster(RedisClusterOptions options = {});
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // redis-cluster://[:password@]127.0.0.1:p1,127.0.0.1:p2,... (every node a seed).
  std::string url() const;
  std::vector<uint16_t> ports() const;
  // The primaries now, by port.
  std::vector<uint16_t> primaryPorts();
  // CLUSTER KEYSLOT, asked of a node.
  int slotOf(const std::string& key);
  // The port of the primary serving `slot` now (CLUSTER SLOTS of a node).
  uint16_t ownerOf(int slot);
  std::string nodeId(uint16_t port);
  // A client to one node (no redirection).
  RedisClient& client(uint16_t port);

  // Moving a slot, in Redis's own steps: IMPORTING at the target and
  // MIGRATING at the source, MIGRATE of keys, then SETSLOT NODE everywhere.
  // Between beginMove and finishMove, a key not yet migrated answers at the
  // source and one migrated answers ASK there.
  void beginMove(int slot, uint16_t to);
  void migrateKey(int slot, const std::string& key, uint16_t to);
  void finishMove(int slot, uint16_t to);  // migrates what is left
  void moveSlot(int slot, uint16_t to) {
    beginMove(slot, to);
    finishMove(slot, to);
  }

  // SIGKILL one node (a replica then takes over, when there is one).
  void kill9(uint16_t port);
  // Waits until every running node says cluster_state:ok.
  bool waitHealthy(int timeout_ms);

 private:
  struct Node;
  void startNode(Node& node);
  Node& node(uint16_t port);
  uint16_t anyRunningPort();

  RedisClusterOptions options_;
  TempDir dir_{"sipwake-redis-cluster"};
  std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace sipwake::testing
