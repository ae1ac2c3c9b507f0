#include "common/redis/redis_url.h"

#include <stdexcept>

namespace sipwake::redis {
namespace {

constexpr int kSentinelPort = 26379;

int parseNumber(const std::string& text, int min, int max, const char* what) {
  try {
    std::size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= min && v <= max) return v;
  } catch (const std::logic_error&) {
  }
  throw std::invalid_argument(std::string("redis URL has an invalid ") + what);
}

// host, host:port, [v6] or [v6]:port; `port` keeps its value when absent.
void parseHostPort(const std::string& hostport, std::string& host, int& port) {
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) throw std::invalid_argument("redis URL has an invalid host");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') throw std::invalid_argument("redis URL has an invalid host");
      port = parseNumber(hostport.substr(close + 2), 1, 65535, "port");
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = parseNumber(hostport.substr(colon + 1), 1, 65535, "port");
  } else if (!hostport.empty()) {
    host = hostport;
  }
  if (host.empty()) throw std::invalid_argument("redis URL has no host");
}

std::string hostPort(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// "host1[:port1],host2[:port2]", ports defaulting to `default_port`.
std::vector<std::pair<std::string, int>> parseHostList(const std::string& hosts, int default_port) {
  std::vector<std::pair<std::string, int>> out;
  std::size_t start = 0;
  while (start <= hosts.size()) {
    auto comma = hosts.find(',', start);
    std::string one = hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::string host;
    int port = default_port;
    parseHostPort(one, host, port);
    out.emplace_back(host, port);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string hostList(const std::vector<std::pair<std::string, int>>& hosts) {
  std::string out;
  for (std::size_t i = 0; i < hosts.size(); ++i) out += (i ? "," : "") + hostPort(hosts[i].first, hosts[i].second);
  return out;
}

}  // namespace

std::string RedisUrl::redacted() const {
  std::string out = viaSentinel() ? "redis-sentinel://" : (viaCluster() ? "redis-cluster://" : "redis://");
  if (!password.empty()) out += username + ":***@";
  if (viaCluster()) return out + hostList(cluster_seeds);
  if (!viaSentinel()) return out + hostPort(host, port) + "/" + std::to_string(db);
  return out + hostList(sentinels) + "/" + master_name + "/" + std::to_string(db);
}

RedisUrl parseRedisUrl(const std::string& text) {
  const std::string plain = "redis://", sentinel = "redis-sentinel://", cluster = "redis-cluster://";
  bool via_sentinel = text.rfind(sentinel, 0) == 0;
  bool via_cluster = text.rfind(cluster, 0) == 0;
  if (!via_sentinel && !via_cluster && text.rfind(plain, 0) != 0) {
    throw std::invalid_argument("redis URL must start with redis://, redis-sentinel:// or redis-cluster://");
  }
  RedisUrl url;
  std::string rest =
      text.substr(via_sentinel ? sentinel.size() : (via_cluster ? cluster.size() : plain.size()));
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string::npos) {
      url.password = userinfo;
    } else {
      url.username = userinfo.substr(0, colon);
      url.password = userinfo.substr(colon + 1);
    }
  }
  std::string hosts = rest, path;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    hosts = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (via_cluster) {
    if (!path.empty() && parseNumber(path, 0, 15, "database number") != 0) {
      throw std::invalid_argument("redis-cluster URL names a database other than 0: a cluster has only 0");
    }
    url.cluster_seeds = parseHostList(hosts, url.port);
    url.host.clear();  // known once the slot map names the nodes
    url.port = 0;
    return url;
  }
  if (!via_sentinel) {
    if (!path.empty()) url.db = parseNumber(path, 0, 15, "database number");
    parseHostPort(hosts, url.host, url.port);
    return url;
  }
  std::string db;
  if (auto slash = path.find('/'); slash != std::string::npos) {
    db = path.substr(slash + 1);
    path = path.substr(0, slash);
  }
  if (path.empty()) throw std::invalid_argument("redis-sentinel URL has no master name");
  url.master_name = path;
  if (!db.empty()) url.db = parseNumber(db, 0, 15, "database number");
  url.sentinels = parseHostList(hosts, kSentinelPort);
  url.host.clear();  // known once a sentinel names the primary
  url.port = 0;
  return url;
}

}  // namespace sipwake::redis
