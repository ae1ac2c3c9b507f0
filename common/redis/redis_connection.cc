#include "common/redis/redis_connection.h"

#include <hiredis/hiredis.h>


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
    : url_(std::move(url)), connect_timeout_(connect_timeout), command_timeout_(command_timeout) {}

Connection::~Connection() { dropConnection(); }

void Connection::dropConnection() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

void Connection::fail(const std::string& what) {
  std::string detail = ctx_ && ctx_->err ? std::string(": ") + ctx_->errstr : "";
  dropConnection();
  throw RedisUnavailable("redis " + url_.redacted() + " " + what + detail);
}

void Connection::ensureConnected() {
  if (ctx_ != nullptr) return;
  timeval tv = toTimeval(connect_timeout_);
  ctx_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  if (ctx_ == nullptr || ctx_->err) fail("connect failed");
  timeval ctv = toTimeval(command_timeout_);
  redisSetTimeout(ctx_, ctv);
  redisEnableKeepAlive(ctx_);
  if (!url_.password.empty()) {
    redisReply* r = url_.username.empty()
                        ? static_cast<redisReply*>(redisCommand(ctx_, "AUTH %s", url_.password.c_str()))
                        : static_cast<redisReply*>(redisCommand(ctx_, "AUTH %s %s",
                                                                url_.username.c_str(),
                                                                url_.password.c_str()));
    Reply reply(r);
    if (r == nullptr) fail("AUTH failed");
    // The server's message may echo nothing secret, but keep it out anyway.
    if (reply.isError()) fail("rejected our credentials");
  }
  if (url_.db != 0) {
    Reply reply(static_cast<redisReply*>(redisCommand(ctx_, "SELECT %d", url_.db)));
    if (reply.isNil() || reply.isError()) fail("SELECT failed");
  }
}

Reply Connection::command(const std::vector<std::string_view>& argv) {
  ensureConnected();
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) fail("command failed");
  return Reply(r);
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  ensureConnected();
  for (const auto& cmd : commands) {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : cmd) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()) !=
        REDIS_OK) {
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
  return replies;
}

void Connection::loadScript(Script& script) {
  Reply loaded = command({"SCRIPT", "LOAD", script.source});
  if (!loaded.isString() || loaded.isError()) {
    throw std::runtime_error("SCRIPT LOAD failed: " + std::string(loaded.str()));
  }
  script.sha1 = std::string(loaded.str());
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
