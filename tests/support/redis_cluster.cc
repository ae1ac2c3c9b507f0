#include "tests/support/redis_cluster.h"

#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>

namespace sipwake::testing {
namespace {

constexpr int kBusOffset = 10000;

// A port whose cluster bus port (port + 10000) is free as well.
uint16_t clusterPort() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    uint16_t port = freePort();
    if (port <= 65535 - kBusOffset &&
        canBind(SOCK_STREAM, static_cast<uint16_t>(port + kBusOffset)))
      return port;
  }
  throw std::runtime_error("no free port pair for a cluster node");
}

std::string field(const std::string& info, const std::string& name) {
  auto at = info.find(name + ":");
  if (at == std::string::npos) return {};
  auto end = info.find_first_of("\r\n", at);
  return info.substr(at + name.size() + 1, end - at - name.size() - 1);
}

}  // namespace

struct RedisCluster::Node {
  uint16_t port = 0;
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<ChildProcess> process;
  std::unique_ptr<RedisClient> client;
};

RedisCluster::RedisCluster(RedisClusterOptions options) : options_(options) {
  int count = options_.primaries * (1 + options_.replicas_per_primary);
  std::string create = "redis-cli --no-auth-warning --cluster create";
  if (!options_.password.empty()) create += " -a " + shellQuote(options_.password);
  for (int i = 0; i < count; ++i) {
    auto node = std::make_unique<Node>();
    startOnFreePorts([&] { node->port = clusterPort(); }, [&] { startNode(*node); });
    create += " 127.0.0.1:" + std::to_string(node->port);
    nodes_.push_back(std::move(node));
  }
  create +=
      " --cluster-replicas " + std::to_string(options_.replicas_per_primary) + " --cluster-yes";
  int status = 0;
  std::string out = runCommand(create + " 2>&1", &status);
  if (status != 0) throw std::runtime_error("redis-cli --cluster create failed:\n" + out);
  if (!waitHealthy(20000)) throw std::runtime_error("the Redis Cluster did not become healthy");
}

RedisCluster::~RedisCluster() = default;

void RedisCluster::startNode(Node& node) {
  node.dir = std::make_unique<TempDir>("sipwake-cluster-node");
  // clang-format off
  std::vector<std::string> argv = {
      "redis-server",
      "--bind", "127.0.0.1",
      "--port", std::to_string(node.port),
      "--dir", node.dir->path(),
      "--cluster-enabled", "yes",
      "--cluster-config-file", node.dir->file("nodes.conf"),
      // Short, so a killed primary's replica takes over within seconds.
      "--cluster-node-timeout", "1000",
      "--save", "",
      "--appendonly", "no",
      "--daemonize", "no",
      "--protected-mode", "no",
      "--logfile", "",
  };
  // clang-format on
  if (!options_.password.empty()) {
    argv.insert(argv.end(),
                {"--requirepass", options_.password, "--masterauth", options_.password});
  }
  node.process = std::make_unique<ChildProcess>(argv, node.dir->file("redis.log"));
  bool up = waitUntil(
      [&] {
        if (!node.process->running()) return true;
        try {
          node.client = std::make_unique<RedisClient>(node.port);
          if (!options_.password.empty()) node.client->command({"AUTH", options_.password});
          return true;
        } catch (const std::runtime_error&) {
          return false;
        }
      },
      10000);
  if (!up || !node.process->running()) {
    throw std::runtime_error("redis-server (cluster) did not start on port " +
                             std::to_string(node.port) + "; log:\n" + node.process->readLog());
  }
}

std::string RedisCluster::url() const {
  std::string url = "redis-cluster://";
  if (!options_.password.empty()) url += ":" + options_.password + "@";
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    url += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(nodes_[i]->port);
  }
  return url;
}

std::vector<uint16_t> RedisCluster::ports() const {
  std::vector<uint16_t> out;
  for (const auto& n : nodes_) out.push_back(n->port);
  return out;
}

RedisCluster::Node& RedisCluster::node(uint16_t port) {
  for (auto& n : nodes_) {
    if (n->port == port) return *n;
  }
  throw std::runtime_error("no cluster node on port " + std::to_string(port));
}

RedisClient& RedisCluster::client(uint16_t port) {
  Node& n = node(port);
  if (!n.client) throw std::runtime_error("cluster node " + std::to_string(port) + " is down");
  return *n.client;
}

uint16_t RedisCluster::anyRunningPort() {
  for (auto& n : nodes_) {
    if (n->process && n->client) return n->port;
  }
  throw std::runtime_error("no cluster node is running");
}

bool RedisCluster::waitHealthy(int timeout_ms) {
  return waitUntil(
      [&] {
        for (auto& n : nodes_) {
          if (!n->client) continue;
          RedisReply info = n->client->command({"CLUSTER", "INFO"});
          if (field(info.str, "cluster_state") != "ok" ||
              field(info.str, "cluster_slots_assigned") != "16384" ||
              field(info.str, "cluster_known_nodes") == "1") {
            return false;
          }
          // A replica that has not synced yet could not take over.
          RedisReply replication = n->client->command({"INFO", "replication"});
          if (field(replication.str, "role") == "slave" &&
              field(replication.str, "master_link_status") != "up") {
            return false;
          }
        }
        return true;
      },
      timeout_ms, 100);
}

std::vector<uint16_t> RedisCluster::primaryPorts() {
  RedisReply slots = client(anyRunningPort()).command({"CLUSTER", "SLOTS"});
  std::vector<uint16_t> out;
  for (const auto& range : slots.elements) {
    auto port = static_cast<uint16_t>(range.elements.at(2).elements.at(1).integer);
    if (std::find(out.begin(), out.end(), port) == out.end()) out.push_back(port);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int RedisCluster::slotOf(const std::string& key) {
  return static_cast<int>(client(anyRunningPort()).command({"CLUSTER", "KEYSLOT", key}).integer);
}

uint16_t RedisCluster::ownerOf(int slot) {
  RedisReply slots = client(anyRunningPort()).command({"CLUSTER", "SLOTS"});
  for (const auto& range : slots.elements) {
    if (range.elements.at(0).integer <= slot && slot <= range.elements.at(1).integer) {
      return static_cast<uint16_t>(range.elements.at(2).elements.at(1).integer);
    }
  }
  return 0;
}

std::string RedisCluster::nodeId(uint16_t port) {
  return client(port).command({"CLUSTER", "MYID"}).str;
}

void RedisCluster::beginMove(int slot, uint16_t to) {
  uint16_t from = ownerOf(slot);
  std::string s = std::to_string(slot);
  RedisReply a = client(to).command({"CLUSTER", "SETSLOT", s, "IMPORTING", nodeId(from)});
  RedisReply b = client(from).command({"CLUSTER", "SETSLOT", s, "MIGRATING", nodeId(to)});
  if (a.isError() || b.isError()) throw std::runtime_error("SETSLOT failed: " + a.str + b.str);
}

void RedisCluster::migrateKey(int slot, const std::string& key, uint16_t to) {
  uint16_t from = ownerOf(slot);  // still the source until finishMove
  RedisReply r = client(from).command(
      {"MIGRATE", "127.0.0.1", std::to_string(to), "", "0", "5000", "KEYS", key});
  if (r.isError()) throw std::runtime_error("MIGRATE failed: " + r.str);
}

void RedisCluster::finishMove(int slot, uint16_t to) {
  uint16_t from = ownerOf(slot);
  std::string s = std::to_string(slot);
  while (true) {
    RedisReply keys = client(from).command({"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (keys.elements.empty()) break;
    std::vector<std::string> argv{"MIGRATE", "127.0.0.1", std::to_string(to), "", "0",
                                  "5000",    "KEYS"};
    for (const auto& k : keys.elements) argv.push_back(k.str);
    RedisReply r = client(from).command(argv);
    if (r.isError()) throw std::runtime_error("MIGRATE failed: " + r.str);
  }
  // The target's claim must carry a config epoch above the source's, or a
  // ping the source sent before it gave the slot up (with its greater epoch)
  // makes the others, and the target itself, give the slot back to the
  // source; the target then deletes its keys as a dirty slot. Redis bumps
  // the importing node's epoch only when that node already knows a greater
  // one: after an earlier move, gossip may not have told it yet.
  std::string id = nodeId(to);
  long long source_epoch =
      std::stoll(field(client(from).command({"CLUSTER", "INFO"}).str, "cluster_my_epoch"));
  bool ahead = waitUntil(
      [&] {
        client(to).command({"CLUSTER", "BUMPEPOCH"});
        return std::stoll(field(client(to).command({"CLUSTER", "INFO"}).str, "cluster_my_epoch")) >
               source_epoch;
      },
      5000, 50);
  if (!ahead) throw std::runtime_error("the slot's new owner did not get a greater config epoch");
  // The target first, then the source, then the rest (Redis's documented order).
  client(to).command({"CLUSTER", "SETSLOT", s, "NODE", id});
  client(from).command({"CLUSTER", "SETSLOT", s, "NODE", id});
  for (auto& n : nodes_) {
    if (n->client && n->port != to && n->port != from) {
      n->client->command({"CLUSTER", "SETSLOT", s, "NODE", id});
    }
  }
  bool agreed = waitUntil(
      [&] {
        for (auto& n : nodes_) {
          if (!n->client) continue;
          RedisReply slots = n->client->command({"CLUSTER", "SLOTS"});
          bool says_to = false;
          for (const auto& range : slots.elements) {
            if (range.elements.at(0).integer <= slot && slot <= range.elements.at(1).integer) {
              says_to = range.elements.at(2).elements.at(1).integer == to;
            }
          }
          if (!says_to) return false;
        }
        return true;
      },
      5000, 50);
  if (!agreed) throw std::runtime_error("the nodes do not agree on slot " + s + "'s new owner");
}

void RedisCluster::kill9(uint16_t port) {
  Node& n = node(port);
  n.client.reset();
  if (n.process) n.process->kill9();
  n.process.reset();
}

}  // namespace sipwake::testing
