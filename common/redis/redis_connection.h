#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/event/clock.h"
#include "common/redis/redis_url.h"

struct redisContext;
struct redisReply;

namespace sipwake::redis {

// Redis could not be reached or the connection broke: the caller decides
// (API: 503; write-behind: keep and retry).
class RedisUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An owned reply; a Redis error reply is a value (isError), not an exception.
class Reply {
 public:
  Reply() = default;
  explicit Reply(redisReply* r);
  bool isNil() const;
  bool isError() const;
  bool isString() const;
  bool isInteger() const;
  bool isArray() const;
  std::string_view str() const;  // string, status or error text
  long long integer() const;
  std::size_t size() const;            // array length
  Reply element(std::size_t i) const;  // a view sharing ownership of the parent

 private:
  Reply(std::shared_ptr<redisReply> owner, redisReply* r) : owner_(std::move(owner)), r_(r) {}
  std::shared_ptr<redisReply> owner_;
  redisReply* r_ = nullptr;
};

// A server-side Lua script run by SHA, loaded again on NOSCRIPT.
struct Script {
  std::string source;
  std::string sha1;  // filled lazily
};

// Opens host:port with the timeouts and authenticates with the URL's
// credentials (no SELECT, no role check). nullptr when it cannot connect;
// throws RedisUnavailable when the credentials are refused.
redisContext* connectToNode(const std::string& host, int port, const RedisUrl& url,
                            Millis connect_timeout, Millis command_timeout);

// Connects to the Redis `url` names, authenticates and selects its database.
// A Sentinel URL asks the sentinels in turn for the primary
// (SENTINEL get-master-addr-by-name) and checks with ROLE that it is one.
// A cluster URL connects to the first seed that answers: enough for
// SUBSCRIBE, as a cluster broadcasts every PUBLISH to all its nodes.
// command_timeout <= 0 leaves reads without a timeout (subscribers).
// Throws RedisUnavailable; the caller owns the context (redisFree).
// `address`, when given, receives the host and port connected to.
redisContext* connectToPrimary(const RedisUrl& url, Millis connect_timeout, Millis command_timeout,
                               std::pair<std::string, int>* address = nullptr);
// Sentinel URL: the primary the sentinels name now. Throws RedisUnavailable.
std::pair<std::string, int> askSentinels(const RedisUrl& url, Millis timeout);

// True for the error replies that mean "this server is no longer the primary"
// (READONLY from a demoted primary, UNBLOCKED by its role change, MASTERDOWN).
bool isRoleChangeError(std::string_view error);
// True for the error reply of a server still loading its data (LOADING, after
// a restart with AOF): nothing ran, and the caller must not take the reply
// for an answer. Connection turns it into RedisUnavailable.
bool isLoadingError(std::string_view error);

// A blocking connection with timeouts that reconnects on the next command
// after a failure. Owned by one thread (the store thread).
// Behind Sentinel it asks the sentinels again at most once a second and moves
// to a new primary as soon as they name one (a demoted primary keeps taking
// writes until Sentinel turns it into a replica, which may take seconds).
// On a role-change error it drops the connection so the next command finds
// the new primary; command() retries once at once, as the refused command did
// not run.
class ClusterRouter;

// With a cluster URL every command goes to the node serving its key's slot
// (cluster_router.h); scripts and keys are laid out so that a command or
// script never spans two slots.
class Connection {
 public:
  Connection(RedisUrl url, Millis connect_timeout = 1000, Millis command_timeout = 2000);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Reply command(const std::vector<std::string_view>& argv);
  // Sends all, then reads all replies in order (one round trip).
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  Reply eval(Script& script, const std::vector<std::string>& keys,
             const std::vector<std::string>& args);
  // Makes sure the script is in the cache of every node (one server, or
  // each cluster primary) and its sha1 known.
  void loadScript(Script& script);
  bool connected() const;
  const RedisUrl& url() const { return url_; }

  // For whole-keyspace commands (SCAN): the nodes to visit, in a stable
  // order: the cluster's primaries ("host:port"), or one empty name for the
  // one server.
  std::vector<std::string> nodes();
  // Runs argv at one of nodes(), without redirection.
  Reply commandOnNode(const std::string& node, const std::vector<std::string_view>& argv);

 private:
  // Runs `operation` on the cluster router, telling RedisHealth how it went.
  template <typename Result, typename Operation>
  Result reportingCluster(Operation&& operation);
  // Throws RedisUnavailable when a reply says the server is still loading.
  void refuseLoading(const Reply& reply);
  void refuseLoading(const std::vector<Reply>& replies);
  void ensureConnected();
  void followSentinels();
  void dropConnection();
  [[noreturn]] void fail(const std::string& what);

  RedisUrl url_;
  Millis connect_timeout_;
  Millis command_timeout_;
  redisContext* ctx_ = nullptr;
  std::pair<std::string, int> primary_;  // where ctx_ is connected
  Millis next_sentinel_check_ = 0;
  std::unique_ptr<ClusterRouter> cluster_;  // cluster URL only
};

}  // namespace sipwake::redis
