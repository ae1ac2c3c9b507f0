#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sipwake::redis {

// redis://[[user]:password@]host[:port][/db]
// redis-sentinel://[[user]:password@]host1[:port1],host2[:port2]/master-name[/db]
//   (Sentinel ports default to 26379; the credentials are the data nodes',
//   the sentinels themselves are asked without AUTH.)
// redis-cluster://[[user]:password@]host1[:port1],host2[:port2][/0]
//   (seed nodes of a Redis Cluster, ports default to 6379; any one that
//   answers gives the slot map. A cluster has only database 0.)
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;
  std::string password;
  // Sentinel mode when not empty: host and port are then found by asking
  // these for the primary of `master_name`.
  std::vector<std::pair<std::string, int>> sentinels;
  std::string master_name;

  // Cluster mode when not empty: the seed nodes asked for the slot map.
  std::vector<std::pair<std::string, int>> cluster_seeds;

  bool viaSentinel() const { return !sentinels.empty(); }
  bool viaCluster() const { return !cluster_seeds.empty(); }
  // For logs: never includes the password.
  std::string redacted() const;
};

RedisUrl parseRedisUrl(const std::string& text);  // throws std::invalid_argument

}  // namespace sipwake::redis
