#include "common/redis/cluster_router.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "common/redis/hiredis_argv.h"

namespace sipwake::redis {
namespace {

std::atomic<std::uint64_t> redirections{0};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381": the host and port.
bool parseTarget(std::string_view text, Redirect& out) {
  auto space = text.rfind(' ');
  auto colon = text.rfind(':');
  if (space == std::string_view::npos || colon == std::string_view::npos || colon < space)
    return false;
  std::string host(text.substr(space + 1, colon - space - 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    out.port = std::stoi(std::string(text.substr(colon + 1)));
  } catch (const std::logic_error&) {
    return false;
  }
  out.host = std::move(host);
  return !out.host.empty();
}

void appendArgv(redisContext* ctx, const std::vector<std::string_view>& argv) {
  HiredisArgv a(argv);
  redisAppendCommandArgv(ctx, a.count(), a.args.data(), a.lens.data());
}

// Writes what was appended; false when the connection broke.
bool flush(redisContext* ctx) {
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx, &done) != REDIS_OK) return false;
  }
  return true;
}

std::optional<Reply> readReply(redisContext* ctx) {
  void* r = nullptr;
  if (redisGetReply(ctx, &r) != REDIS_OK || r == nullptr) return std::nullopt;
  return Reply(static_cast<redisReply*>(r));
}

std::vector<std::string_view> views(const std::vector<std::string>& argv) {
  return std::vector<std::string_view>(argv.begin(), argv.end());
}

}  // namespace

std::uint64_t clusterRedirections() {
  return redirections.load();
}

Redirect parseRedirect(const Reply& reply) {
  Redirect out;
  if (!reply.isError()) return out;
  std::string_view text = reply.str();
  if (text.rfind("MOVED ", 0) == 0 && parseTarget(text, out)) {
    out.kind = Redirect::Kind::Moved;
  } else if (text.rfind("ASK ", 0) == 0 && parseTarget(text, out)) {
    out.kind = Redirect::Kind::Ask;
  } else if (text.rfind("TRYAGAIN", 0) == 0) {
    out.kind = Redirect::Kind::TryAgain;
  } else if (text.rfind("CLUSTERDOWN", 0) == 0) {
    out.kind = Redirect::Kind::Down;
  }
  return out;
}

std::string ClusterRouter::Node::name() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

ClusterRouter::ClusterRouter(RedisUrl url, Millis connect_timeout, Millis command_timeout)
    : url_(std::move(url)), connect_timeout_(connect_timeout), command_timeout_(command_timeout) {
  slot_owner_.fill(-1);
  for (const auto& [host, port] : url_.cluster_seeds) nodeIndex(host, port);
}

ClusterRouter::~ClusterRouter() {
  for (auto& node : nodes_) dropContext(node);
}

bool ClusterRouter::connected() const {
  return std::any_of(nodes_.begin(), nodes_.end(), [](const Node& n) { return n.ctx != nullptr; });
}

int ClusterRouter::nodeIndex(const std::string& host, int port) {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].host == host && nodes_[i].port == port) return static_cast<int>(i);
  }
  nodes_.push_back(Node{host, port, nullptr});
  return static_cast<int>(nodes_.size() - 1);
}

int ClusterRouter::nodeNamed(const std::string& name) {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].name() == name) return static_cast<int>(i);
  }
  unavailable("has no node " + name);
}

redisContext* ClusterRouter::contextOf(Node& node) {
  if (node.ctx == nullptr) {
    node.ctx = connectToNode(node.host, node.port, url_, connect_timeout_, command_timeout_);
  }
  return node.ctx;
}

void ClusterRouter::dropContext(Node& node) {
  if (node.ctx != nullptr) redisFree(node.ctx);
  node.ctx = nullptr;
}

void ClusterRouter::unavailable(const std::string& what, RedisFailure kind) {
  last_failure_ = kind;
  throw RedisUnavailable("redis " + url_.redacted() + " " + what);
}

// CLUSTER SLOTS: [[first, last, [host, port, id, ...], replicas...], ...].
// Works on Redis 3 to 7 (CLUSTER SHARDS is 7 only).
bool ClusterRouter::readSlotsFrom(Node& node) {
  redisContext* ctx = contextOf(node);
  if (ctx == nullptr) return false;
  appendArgv(ctx, {"CLUSTER", "SLOTS"});
  std::optional<Reply> reply = readReply(ctx);
  if (!reply) {
    dropContext(node);
    return false;
  }
  if (!reply->isArray() || reply->size() == 0) return false;
  std::string asked_host = node.host;  // `node` may move as nodes_ grows
  slot_owner_.fill(-1);
  for (std::size_t i = 0; i < reply->size(); ++i) {
    Reply range = reply->element(i);
    Reply primary = range.element(2);
    long long first = range.element(0).integer(), last = range.element(1).integer();
    if (primary.size() < 2 || first < 0 || last >= kClusterSlots || first > last) continue;
    std::string host(primary.element(0).str());
    // An empty or "?" endpoint means "the address you reached me at".
    if (host.empty() || host == "?") host = asked_host;
    int owner = nodeIndex(host, static_cast<int>(primary.element(1).integer()));
    std::fill(slot_owner_.begin() + first, slot_owner_.begin() + last + 1, owner);
  }
  return true;
}

// Asks the nodes already connected first (cheapest, and alive a moment ago),
// then every other node known, seeds included.
void ClusterRouter::refreshSlots() {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].ctx != nullptr) order.push_back(i);
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].ctx == nullptr) order.push_back(i);
  for (std::size_t i : order) {
    if (readSlotsFrom(nodes_[i])) {
      map_stale_ = false;
      return;
    }
  }
  unavailable("no node gave the slot map", RedisFailure::Connect);
}

int ClusterRouter::targetOf(std::optional<std::size_t> key_index,
                            const std::vector<std::string_view>& argv) {
  if (map_stale_) refreshSlots();
  if (!key_index) {
    // No key: any node will do; one already connected saves a connect.
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].ctx != nullptr) return static_cast<int>(i);
    }
    for (int owner : slot_owner_) {
      if (owner >= 0) return owner;
    }
    unavailable("serves no slot");
  }
  int slot = keySlot(argv[*key_index]);
  int owner = slot_owner_[slot];
  if (owner < 0) unavailable("has no node for slot " + std::to_string(slot));
  return owner;
}

// nullopt when the connection broke: the command may or may not have run.
std::optional<Reply> ClusterRouter::send(Node& node, const std::vector<std::string_view>& argv,
                                         bool asking) {
  redisContext* ctx = node.ctx;
  if (asking) appendArgv(ctx, {"ASKING"});
  appendArgv(ctx, argv);
  if (asking && !readReply(ctx)) return std::nullopt;
  return readReply(ctx);
}

Reply ClusterRouter::command(const std::vector<std::string_view>& argv) {
  const auto key_index = commandKeyIndex(argv);
  int target = -1, unreachable = -1;
  bool asking = false;
  for (int hop = 0; hop < kMaxHops; ++hop) {
    if (target < 0) target = targetOf(key_index, argv);
    Node& node = nodes_[target];
    if (contextOf(node) == nullptr) {
      // Nothing was sent: ask another node where the slot lives now. The
      // same node again means no failover yet: "Redis down" until then.
      map_stale_ = true;
      if (target == unreachable) unavailable("cannot reach node " + node.name(), RedisFailure::Connect);
      unreachable = target;
      target = -1;
      asking = false;
      continue;
    }
    std::optional<Reply> reply = send(node, argv, asking);
    if (!reply) {
      std::string detail = node.ctx->err ? std::string(": ") + node.ctx->errstr : "";
      dropContext(node);
      map_stale_ = true;
      unavailable("node " + node.name() + " failed" + detail);
    }
    Redirect redirect = parseRedirect(*reply);
    asking = false;
    switch (redirect.kind) {
      case Redirect::Kind::None:
        if (!reply->isError() || !isRoleChangeError(reply->str())) return *reply;
        // A primary demoted by a failover refused it: the map is out of date.
        map_stale_ = true;
        target = -1;
        break;
      case Redirect::Kind::Moved:
        ++redirections;
        map_stale_ = true;  // a slot moved: likely more than this one
        target = nodeIndex(redirect.host, redirect.port);
        break;
      case Redirect::Kind::Ask:
        ++redirections;
        target = nodeIndex(redirect.host, redirect.port);
        asking = true;
        break;
      case Redirect::Kind::TryAgain:
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * (hop + 1)));
        target = -1;
        break;
      case Redirect::Kind::Down:
        map_stale_ = true;
        unavailable(std::string(reply->str()));
    }
  }
  unavailable("still redirected after " + std::to_string(kMaxHops) + " tries");
}

std::vector<Reply> ClusterRouter::pipeline(const std::vector<std::vector<std::string>>& commands) {
  std::vector<Reply> replies(commands.size());
  std::map<int, std::vector<std::size_t>> by_node;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    auto argv = views(commands[i]);
    by_node[targetOf(commandKeyIndex(argv), argv)].push_back(i);
  }
  std::vector<std::size_t> alone;  // run one by one, with redirections
  std::vector<int> sent;
  // Every connection first: opening one may throw (credentials refused),
  // which must not leave commands appended to another.
  for (auto& [target, indexes] : by_node) {
    if (contextOf(nodes_[target]) == nullptr) {
      map_stale_ = true;  // nothing sent there: safe to run elsewhere
      alone.insert(alone.end(), indexes.begin(), indexes.end());
    } else {
      sent.push_back(target);
    }
  }
  for (int target : sent) {
    for (std::size_t i : by_node[target]) appendArgv(nodes_[target].ctx, views(commands[i]));
  }
  // Every node's share leaves before any reply is read: one round trip.
  // On a broken node the other nodes' replies are left unread: their
  // contexts go too. Some commands may have run; the caller retries the
  // batch, as it does without a cluster.
  auto failed = [&](int target) {
    std::string name = nodes_[target].name();
    for (int t : sent) dropContext(nodes_[t]);
    map_stale_ = true;
    unavailable("node " + name + " failed in a pipeline");
  };
  for (int target : sent) {
    if (!flush(nodes_[target].ctx)) failed(target);
  }
  for (int target : sent) {
    for (std::size_t i : by_node[target]) {
      std::optional<Reply> reply = readReply(nodes_[target].ctx);
      if (!reply) failed(target);
      Redirect redirect = parseRedirect(*reply);
      bool refused = reply->isError() && isRoleChangeError(reply->str());
      if (redirect.kind != Redirect::Kind::None || refused) {
        alone.push_back(i);  // it did not run there
      } else {
        replies[i] = std::move(*reply);
      }
    }
  }
  std::sort(alone.begin(), alone.end());
  for (std::size_t i : alone) replies[i] = command(views(commands[i]));
  return replies;
}

std::vector<std::string> ClusterRouter::primaries() {
  if (map_stale_) refreshSlots();
  std::vector<std::string> names;
  for (int owner : slot_owner_) {
    if (owner >= 0) names.push_back(nodes_[owner].name());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

Reply ClusterRouter::commandAt(const std::string& name, const std::vector<std::string_view>& argv) {
  Node& node = nodes_[nodeNamed(name)];
  if (contextOf(node) == nullptr) {
    map_stale_ = true;
    unavailable("cannot reach node " + name, RedisFailure::Connect);
  }
  std::optional<Reply> reply = send(node, argv, false);
  if (!reply) {
    dropContext(node);
    map_stale_ = true;
    unavailable("node " + name + " failed");
  }
  return *reply;
}

}  // namespace sipwake::redis
