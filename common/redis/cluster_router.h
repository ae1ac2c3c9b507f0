#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/event/clock.h"
#include "common/redis/cluster_slot.h"
#include "common/redis/redis_connection.h"
#include "common/redis/redis_health.h"
#include "common/redis/redis_url.h"

struct redisContext;

namespace sipwake::redis {

// MOVED and ASK redirections followed by every connection of this process
// since it started (for a metric; nothing reads it yet).
std::uint64_t clusterRedirections();

// What an error reply asks for in a cluster: nothing (an ordinary answer),
// go to another node for good (MOVED) or for one command (ASK), try again
// soon (TRYAGAIN: a key of a multi-key command is being moved), or give up
// (CLUSTERDOWN).
struct Redirect {
  enum class Kind { None, Moved, Ask, TryAgain, Down };
  Kind kind = Kind::None;
  std::string host;
  int port = 0;
};
Redirect parseRedirect(const Reply& reply);

// Sends each command to the node serving its key's slot in a Redis Cluster.
// Learns the slot map (CLUSTER SLOTS) from any node it knows or a seed,
// keeps one context per node, opened lazily with the URL's credentials and
// timeouts, and follows MOVED (then reads the map again), ASK (ASKING, then
// the command, once, at the named node) and TRYAGAIN (a short pause), at
// most kMaxHops times per command. A node that cannot be reached or whose
// connection breaks makes the next command read the map again from another
// node: that is how the replica promoted by a failover is found.
// Owned by one Connection, so used by one thread.
class ClusterRouter {
 public:
  ClusterRouter(RedisUrl url, Millis connect_timeout, Millis command_timeout);
  ~ClusterRouter();
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  Reply command(const std::vector<std::string_view>& argv);
  // Sends each node its share at once, then reads; replies keep the order of
  // `commands`. A command answered MOVED/ASK/TRYAGAIN runs again alone.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  // The primaries as "host:port", sorted: the order stays while the cluster
  // keeps the same nodes (slots may move between them).
  std::vector<std::string> primaries();
  // Runs argv at that node, without redirection (SCAN, SCRIPT LOAD).
  Reply commandAt(const std::string& node, const std::vector<std::string_view>& argv);
  bool connected() const;
  // What the last RedisUnavailable thrown here was (for the *_redis_errors_total kind).
  RedisFailure lastFailure() const { return last_failure_; }

 private:
  struct Node {
    std::string host;
    int port = 0;
    redisContext* ctx = nullptr;
    std::string name() const;
  };
  static constexpr int kMaxHops = 8;

  int nodeIndex(const std::string& host, int port);
  int nodeNamed(const std::string& name);
  redisContext* contextOf(Node& node);  // nullptr when it cannot be reached
  void dropContext(Node& node);
  bool readSlotsFrom(Node& node);
  void refreshSlots();
  int targetOf(std::optional<std::size_t> key_index, const std::vector<std::string_view>& argv);
  std::optional<Reply> send(Node& node, const std::vector<std::string_view>& argv, bool asking);
  [[noreturn]] void unavailable(const std::string& what, RedisFailure kind = RedisFailure::Io);

  RedisUrl url_;
  Millis connect_timeout_;
  Millis command_timeout_;
  std::vector<Node> nodes_;                    // never shrinks: indexes stay valid
  std::array<int, kClusterSlots> slot_owner_;  // index in nodes_, -1: unknown
  bool map_stale_ = true;
  RedisFailure last_failure_ = RedisFailure::Io;
};

}  // namespace sipwake::redis
