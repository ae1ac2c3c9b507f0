#include "common/redis/redis_connection.h"

#include <hiredis/hiredis.h>

#include <tuple>

#include "common/redis/cluster_router.h"
#include "common/redis/hiredis_argv.h"
#include "common/redis/redis_health.h"

namespace sipwake::redis {
namespace {

timeval toTimeval(Millis ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

}  // namespace

Reply::Reply(redisReply* r)
    : owner_(r, [](redisReply* p) { freeReplyObject(p); }), r_(r) {}

bool Reply::isNil() const { return r_ == nullptr || r_->type == REDIS_REPLY_NIL; }
bool Reply::isError() const { return r_ != nullptr && r_->type == REDIS_REPLY_ERROR; }
bool Reply::isString() const {
  return r_ != nullptr && (r_->type == REDIS_REPLY_STRING || r_->type == REDIS_REPLY_STATUS);
}
bool Reply::isInteger() const { return r_ != nullptr && r_->type == REDIS_REPLY_INTEGER; }
bool Reply::isArray() const {
  // hiredis 0.14 (Debian 12) speaks RESP2 only: arrays are the one aggregate.
  return r_ != nullptr && r_->type == REDIS_REPLY_ARRAY;
}
std::string_view Reply::str() const {
  if (r_ == nullptr || r_->str == nullptr) return {};
  return {r_->str, r_->len};
}
long long Reply::integer() const { return isInteger() ? r_->integer : 0; }
std::size_t Reply::size() const { return isArray() ? r_->elements : 0; }
Reply Reply::element(std::size_t i) const {
  if (!isArray() || i >= r_->elements) return Reply();
  return Reply(owner_, r_->element[i]);
}

Connection::Connection(RedisUrl url, Millis connect_timeout, Millis command_timeout)
    : url_(std::move(url)), connect_timeout_(connect_timeout), command_timeout_(command_timeout) {
  if (url_.viaCluster()) {
    cluster_ = std::make_unique<ClusterRouter>(url_, connect_timeout_, command_timeout_);
  }
}

bool Connection::connected() const { return cluster_ ? cluster_->connected() : ctx_ != nullptr; }

Connection::~Connection() {
  dropConnection();
  RedisHealth::instance().closed(this);
}

void Connection::dropConnection() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

void Connection::fail(const std::string& what) {
  std::string detail = ctx_ && ctx_->err ? std::string(": ") + ctx_->errstr : "";
  dropConnection();
  RedisHealth::instance().failed(this, RedisFailure::Io);
  throw RedisUnavailable("redis " + url_.redacted() + " " + what + detail);
}

namespace {

// One context to host:port with timeouts, or nullptr.
redisContext* open(const std::string& host, int port, Millis connect_timeout, Millis command_timeout) {
  timeval tv = toTimeval(connect_timeout);
  redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, tv);
  if (ctx == nullptr) return nullptr;
  if (ctx->err) {
    redisFree(ctx);
    return nullptr;
  }
  if (command_timeout > 0) {
    timeval ctv = toTimeval(command_timeout);
    redisSetTimeout(ctx, ctv);
  }
  redisEnableKeepAlive(ctx);
  return ctx;
}

Reply run(redisContext* ctx, const std::vector<std::string>& argv) {
  HiredisArgv a(argv);
  return Reply(static_cast<redisReply*>(redisCommandArgv(ctx, a.count(), a.args.data(), a.lens.data())));
}

}  // namespace

// Asks each sentinel in turn for the primary's address.
std::pair<std::string, int> askSentinels(const RedisUrl& url, Millis connect_timeout) {
  for (const auto& [host, port] : url.sentinels) {
    redisContext* ctx = open(host, port, connect_timeout, connect_timeout);
    if (ctx == nullptr) continue;
    Reply addr = run(ctx, {"SENTINEL", "get-master-addr-by-name", url.master_name});
    redisFree(ctx);
    if (addr.size() == 2) {
      try {
        return {std::string(addr.element(0).str()), std::stoi(std::string(addr.element(1).str()))};
      } catch (const std::logic_error&) {
      }
    }
  }
  throw RedisUnavailable("redis " + url.redacted() + ": no sentinel named the primary");
}

bool isRoleChangeError(std::string_view error) {
  return error.find("READONLY") != std::string_view::npos ||
         error.rfind("UNBLOCKED", 0) == 0 || error.rfind("MASTERDOWN", 0) == 0;
}

redisContext* connectToNode(const std::string& host, int port, const RedisUrl& url,
                            Millis connect_timeout, Millis command_timeout) {
  redisContext* ctx = open(host, port, connect_timeout, command_timeout);
  if (ctx == nullptr || url.password.empty()) return ctx;
  Reply reply = url.username.empty() ? run(ctx, {"AUTH", url.password})
                                     : run(ctx, {"AUTH", url.username, url.password});
  if (reply.isNil()) {
    redisFree(ctx);
    return nullptr;
  }
  if (reply.isError()) {
    redisFree(ctx);
    // The server's message may echo nothing secret, but keep it out anyway.
    throw RedisUnavailable("redis " + url.redacted() + " rejected our credentials");
  }
  return ctx;
}

namespace {

redisContext* connectToSeed(const RedisUrl& url, Millis connect_timeout, Millis command_timeout,
                            std::pair<std::string, int>* address) {
  for (const auto& [host, port] : url.cluster_seeds) {
    if (redisContext* ctx = connectToNode(host, port, url, connect_timeout, command_timeout)) {
      if (address != nullptr) *address = {host, port};
      return ctx;
    }
  }
  throw RedisUnavailable("redis " + url.redacted() + ": no seed node answers");
}

}  // namespace

redisContext* connectToPrimary(const RedisUrl& url, Millis connect_timeout, Millis command_timeout,
                               std::pair<std::string, int>* address) {
  if (url.viaCluster()) return connectToSeed(url, connect_timeout, command_timeout, address);
  std::string host = url.host;
  int port = url.port;
  if (url.viaSentinel()) std::tie(host, port) = askSentinels(url, connect_timeout);
  redisContext* ctx = connectToNode(host, port, url, connect_timeout, command_timeout);
  auto fail = [&](const std::string& what) -> RedisUnavailable {
    if (ctx != nullptr) redisFree(ctx);
    return RedisUnavailable("redis " + url.redacted() + " " + what);
  };
  if (ctx == nullptr) throw fail("connect failed");
  if (url.viaSentinel()) {
    // A sentinel may still name a primary that was just demoted.
    Reply role = run(ctx, {"ROLE"});
    if (role.element(0).str() != "master") {
      throw fail("sentinel named " + host + ":" + std::to_string(port) + ", which is not a primary");
    }
  }
  if (url.db != 0) {
    Reply reply = run(ctx, {"SELECT", std::to_string(url.db)});
    if (reply.isNil() || reply.isError()) throw fail("SELECT failed");
  }
  if (address != nullptr) *address = {host, port};
  return ctx;
}

void Connection::ensureConnected() {
  if (ctx_ != nullptr && url_.viaSentinel()) followSentinels();
  if (ctx_ != nullptr) return;
  try {
    ctx_ = connectToPrimary(url_, connect_timeout_, command_timeout_, &primary_);
  } catch (const RedisUnavailable&) {
    RedisHealth::instance().failed(this, RedisFailure::Connect);
    throw;
  }
  next_sentinel_check_ = SystemClock::instance().now() + kSecond;
}

void Connection::followSentinels() {
  Millis now = SystemClock::instance().now();
  if (now < next_sentinel_check_) return;
  next_sentinel_check_ = now + kSecond;
  try {
    if (askSentinels(url_, connect_timeout_) != primary_) {
      dropConnection();  // the next command connects to the new primary
    }
  } catch (const RedisUnavailable&) {
    // No sentinel answers: keep the primary we have.
  }
}

bool isLoadingError(std::string_view error) { return error.rfind("LOADING", 0) == 0; }

void Connection::refuseLoading(const Reply& reply) {
  if (!reply.isError() || !isLoadingError(reply.str())) return;
  // Seen after a restart with AOF: a write answered this way did not happen
  // (trace entries and status writes were lost this way before).
  RedisHealth::instance().failed(this, RedisFailure::Io);
  throw RedisUnavailable("redis " + url_.redacted() + " is still loading its data");
}

void Connection::refuseLoading(const std::vector<Reply>& replies) {
  for (const auto& reply : replies) refuseLoading(reply);
}

template <typename Result, typename Operation>
Result Connection::reportingCluster(Operation&& operation) {
  Result result;
  try {
    result = operation(*cluster_);
  } catch (const RedisUnavailable&) {
    RedisHealth::instance().failed(this, cluster_->lastFailure());
    throw;
  }
  refuseLoading(result);
  RedisHealth::instance().succeeded(this);
  return result;
}

Reply Connection::command(const std::vector<std::string_view>& argv) {
  if (cluster_) return reportingCluster<Reply>([&](ClusterRouter& c) { return c.command(argv); });
  for (int attempt = 0;; ++attempt) {
    ensureConnected();
    HiredisArgv a(argv);
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, a.count(), a.args.data(), a.lens.data()));
    if (r == nullptr) fail("command failed");
    Reply reply(r);
    refuseLoading(reply);
    if (!reply.isError() || !isRoleChangeError(reply.str())) {
      RedisHealth::instance().succeeded(this);
      return reply;
    }
    // Refused by a demoted primary: find the new one and run it there.
    RedisHealth::instance().failed(this, RedisFailure::RoleChange);
    dropConnection();
    if (attempt > 0) throw RedisUnavailable("redis " + url_.redacted() + ": " + std::string(reply.str()));
  }
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (cluster_) {
    return reportingCluster<std::vector<Reply>>([&](ClusterRouter& c) { return c.pipeline(commands); });
  }
  ensureConnected();
  for (const auto& cmd : commands) {
    HiredisArgv a(cmd);
    if (redisAppendCommandArgv(ctx_, a.count(), a.args.data(), a.lens.data()) != REDIS_OK) {
      fail("pipeline append failed");
    }
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* r = nullptr;
    if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr) fail("pipeline read failed");
    replies.emplace_back(static_cast<redisReply*>(r));
  }
  refuseLoading(replies);
  RedisHealth::instance().succeeded(this);
  for (const auto& reply : replies) {
    if (reply.isError() && isRoleChangeError(reply.str())) {
      // Some commands may have run (reads): the caller retries the batch.
      RedisHealth::instance().failed(this, RedisFailure::RoleChange);
      dropConnection();
      throw RedisUnavailable("redis " + url_.redacted() + ": " + std::string(reply.str()));
    }
  }
  return replies;
}

std::vector<std::string> Connection::nodes() {
  return cluster_ ? cluster_->primaries() : std::vector<std::string>{std::string()};
}

Reply Connection::commandOnNode(const std::string& node, const std::vector<std::string_view>& argv) {
  if (!cluster_) return command(argv);
  return reportingCluster<Reply>([&](ClusterRouter& c) { return c.commandAt(node, argv); });
}

// Every primary: a pipelined EVALSHA (writeStatuses) has no EVAL fallback.
void Connection::loadScript(Script& script) {
  for (const auto& node : nodes()) {
    Reply loaded = commandOnNode(node, {"SCRIPT", "LOAD", script.source});
    if (!loaded.isString() || loaded.isError()) {
      throw std::runtime_error("SCRIPT LOAD failed: " + std::string(loaded.str()));
    }
    script.sha1 = std::string(loaded.str());
  }
}

Reply Connection::eval(Script& script, const std::vector<std::string>& keys,
                       const std::vector<std::string>& args) {
  if (script.sha1.empty()) loadScript(script);
  auto run = [&](std::string_view verb, std::string_view body) {
    std::vector<std::string> argv{std::string(verb), std::string(body), std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string_view> views(argv.begin(), argv.end());
    return command(views);
  };
  Reply reply = run("EVALSHA", script.sha1);
  if (reply.isError() && reply.str().rfind("NOSCRIPT", 0) == 0) reply = run("EVAL", script.source);
  return reply;
}

}  // namespace sipwake::redis
