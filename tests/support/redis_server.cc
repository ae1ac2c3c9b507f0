#include "tests/support/redis_server.h"

#include <hiredis/hiredis.h>
#include <signal.h>

#include <fstream>
#include <stdexcept>

namespace sipwake::testing {
namespace {

RedisReply convert(const redisReply* r) {
  RedisReply out;
  if (r == nullptr) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::String;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::Status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::Error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::Integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::Nil;
      break;
  }
  return out;
}

// Every string and integer in a reply, depth first, one per line.
void flatten(const RedisReply& r, std::string& out) {
  switch (r.type) {
    case RedisReply::Type::Array:
      for (const auto& e : r.elements) flatten(e, out);
      return;
    case RedisReply::Type::Integer:
      out += std::to_string(r.integer);
      break;
    case RedisReply::Type::Nil:
      out += "(nil)";
      break;
    default:
      out += r.str;
      break;
  }
  out += '\n';
}

}  // namespace

// ------------------------------------------------------------ RedisServer

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)), port_(freePort()) {
  startOnFreePorts([this] { port_ = freePort(); }, [this] { start(); });
}

RedisServer::~RedisServer() = default;  // ChildProcess: SIGTERM, then SIGKILL.

std::string RedisServer::url() const {
  return "redis://127.0.0.1:" + std::to_string(port_) + "/0";
}

bool RedisServer::running() const {
  return process_ != nullptr && process_->running();
}

bool RedisServer::ping() const {
  timeval tv{0, 200000};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr) return false;
  bool ok = false;
  if (c->err == 0) {
    redisSetTimeout(c, tv);
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == "PONG";
    if (r != nullptr) freeReplyObject(r);
  }
  redisFree(c);
  return ok;
}

void RedisServer::start() {
  if (running()) return;
  process_.reset();
  // clang-format off
  std::vector<std::string> argv = {
      "redis-server",
      "--bind", "127.0.0.1",
      "--port", std::to_string(port_),
      "--dir", dir_.path(),
      "--save", "",
      "--appendonly", options_.append_only ? "yes" : "no",
      "--appendfsync", options_.appendfsync,
      "--daemonize", "no",
      "--protected-mode", "no",
      "--logfile", "",
      "--databases", "16",
  };
  // clang-format on
  if (options_.replica_of != 0) {
    argv.insert(argv.end(), {"--replicaof", "127.0.0.1", std::to_string(options_.replica_of)});
  }
  process_ = std::make_unique<ChildProcess>(argv, logFile());
  // Loading a large AOF can take a moment; an ordinary start is ~20 ms.
  bool up = waitUntil([this] { return ping() || !process_->running(); }, 10000);
  if (!up || !process_->running()) {
    throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) +
                             "; log:\n" + process_->readLog());
  }
}

void RedisServer::stop() {
  if (process_ == nullptr) return;
  process_->signal(SIGTERM);
  if (process_->waitExit(10000) == -1) process_->kill9();
  process_.reset();
}

void RedisServer::kill9() {
  if (process_ == nullptr) return;
  process_->kill9();
  process_.reset();
}

// ------------------------------------------------------------ RedisSentinel

RedisSentinel::RedisSentinel(uint16_t primary_port, std::string master_name)
    : master_name_(std::move(master_name)), primary_port_(primary_port), port_(freePort()) {
  startOnFreePorts([this] { port_ = freePort(); }, [this] { start(); });
}

RedisSentinel::~RedisSentinel() = default;

std::string RedisSentinel::url() const {
  return "redis-sentinel://127.0.0.1:" + std::to_string(port_) + "/" + master_name_ + "/0";
}

void RedisSentinel::start() {
  process_.reset();
  // Sentinel rewrites its config file: it must be its own, writable.
  std::string conf = dir_.file("sentinel.conf");
  {
    std::ofstream out(conf);
    out << "bind 127.0.0.1\nport " << port_ << "\nprotected-mode no\ndir " << dir_.path() << "\n"
        << "sentinel monitor " << master_name_ << " 127.0.0.1 " << primary_port_ << " 1\n"
        << "sentinel down-after-milliseconds " << master_name_ << " 1000\n"
        << "sentinel failover-timeout " << master_name_ << " 10000\n"
        << "sentinel parallel-syncs " << master_name_ << " 1\n";
  }
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{"redis-server", conf, "--sentinel"}, dir_.file("sentinel.log"));
  bool up = waitUntil([this] { return primaryPort() != 0 || !process_->running(); }, 10000);
  if (!up || !process_->running()) {
    throw std::runtime_error("redis sentinel did not start on port " + std::to_string(port_) +
                             "; log:\n" + process_->readLog());
  }
}

uint16_t RedisSentinel::primaryPort() const {
  try {
    RedisClient sentinel(port_);
    auto addr = sentinel.command({"SENTINEL", "get-master-addr-by-name", master_name_});
    if (addr.elements.size() != 2) return 0;
    return static_cast<uint16_t>(std::stoi(addr.elements[1].str));
  } catch (const std::exception&) {
    return 0;
  }
}

std::string RedisSentinel::log() const { return process_ ? process_->readLog() : ""; }

// ------------------------------------------------------------ RedisClient

RedisClient::RedisClient(uint16_t port, const std::string& host) {
  timeval tv{5, 0};
  ctx_ = redisConnectWithTimeout(host.c_str(), port, tv);
  if (ctx_ == nullptr || ctx_->err != 0) {
    std::string err = ctx_ != nullptr ? ctx_->errstr : "out of memory";
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error("redis connect to port " + std::to_string(port) + ": " + err);
  }
  redisSetTimeout(ctx_, tv);
}

RedisClient::~RedisClient() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

RedisReply RedisClient::command(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) throw std::runtime_error(std::string("redis command failed: ") + ctx_->errstr);
  RedisReply out = convert(r);
  freeReplyObject(r);
  return out;
}

std::optional<std::string> RedisClient::get(const std::string& key) {
  RedisReply r = command({"GET", key});
  if (r.type == RedisReply::Type::String) return r.str;
  if (r.isError()) throw std::runtime_error("GET " + key + ": " + r.str);
  return std::nullopt;
}

std::map<std::string, std::string> RedisClient::hgetall(const std::string& key) {
  RedisReply r = command({"HGETALL", key});
  if (r.isError()) throw std::runtime_error("HGETALL " + key + ": " + r.str);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2)
    out[r.elements[i].str] = r.elements[i + 1].str;
  return out;
}

std::vector<std::string> RedisClient::keys(const std::string& pattern) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    RedisReply r = command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (r.type != RedisReply::Type::Array || r.elements.size() != 2) {
      throw std::runtime_error("SCAN: unexpected reply " + r.str);
    }
    cursor = r.elements[0].str;
    for (const auto& k : r.elements[1].elements) out.push_back(k.str);
  } while (cursor != "0");
  return out;
}

bool RedisClient::exists(const std::string& key) {
  return command({"EXISTS", key}).integer > 0;
}

long long RedisClient::ttl(const std::string& key) {
  return command({"TTL", key}).integer;
}

std::string RedisClient::dumpEverything() {
  std::string out;
  for (int db = 0; db < 16; ++db) {
    if (command({"SELECT", std::to_string(db)}).isError()) break;
    for (const auto& key : keys("*")) {
      std::string type = command({"TYPE", key}).str;
      out += "db" + std::to_string(db) + " " + type + " " + key + "\n";
      RedisReply value;
      if (type == "string") {
        value = command({"GET", key});
      } else if (type == "hash") {
        value = command({"HGETALL", key});
      } else if (type == "set") {
        value = command({"SMEMBERS", key});
      } else if (type == "zset") {
        value = command({"ZRANGE", key, "0", "-1", "WITHSCORES"});
      } else if (type == "list") {
        value = command({"LRANGE", key, "0", "-1"});
      } else if (type == "stream") {
        value = command({"XRANGE", key, "-", "+"});
      } else {
        continue;  // expired between SCAN and TYPE ("none"), or a module type
      }
      flatten(value, out);
    }
  }
  command({"SELECT", "0"});
  return out;
}

std::vector<nlohmann::json> RedisClient::pushJobs() {
  std::vector<nlohmann::json> out;
  for (const auto& entry : command({"XRANGE", "sipwake:push:jobs", "-", "+"}).elements) {
    out.push_back(nlohmann::json::parse(entry.elements.at(1).elements.at(1).str));
  }
  return out;
}

}  // namespace sipwake::testing
