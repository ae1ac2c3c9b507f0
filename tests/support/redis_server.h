// A real redis-server for integration tests, and a small synchronous client
// (hiredis) for assertions on what the code under test stored.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

struct redisContext;

namespace sipwake::testing {

struct RedisServerOptions {
  bool append_only = true;
  // "always" makes kill9() lose nothing that was acknowledged, so tests of
  // crash recovery are deterministic; "everysec" is the production default.
  std::string appendfsync = "always";
  // Starts as a replica of 127.0.0.1:<port> (Sentinel tests).
  uint16_t replica_of = 0;
};

// redis-server bound to 127.0.0.1 on a freePort(), with `--save ""` and its
// data in its own TempDir. The constructor returns once PING answers.
class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  // "redis://127.0.0.1:PORT/0"
  std::string url() const;
  const std::string& dataDir() const { return dir_.path(); }
  std::string logFile() const { return dir_.file("redis.log"); }

  // SIGTERM and wait (redis flushes its AOF on a clean shutdown).
  void stop();
  // Starts again on the same port and data dir (AOF restores the data);
  // no-op when running.
  void start();
  // SIGKILL: no clean shutdown.
  void kill9();
  bool running() const;
  // True when PING answers PONG.
  bool ping() const;

 private:
  RedisServerOptions options_;
  TempDir dir_{"sipwake-redis"};
  uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
};

// A redis-server in Sentinel mode (redis-server <conf> --sentinel) on a
// freePort(), monitoring `master_name` at 127.0.0.1:<primary_port> with a
// quorum of 1 and short timeouts. The constructor returns once it answers.
class RedisSentinel {
 public:
  RedisSentinel(uint16_t primary_port, std::string master_name = "mymaster");
  ~RedisSentinel();
  uint16_t port() const { return port_; }
  // redis-sentinel://127.0.0.1:PORT/<master>/0
  std::string url() const;
  // The port of the primary this sentinel names now (0 when none).
  uint16_t primaryPort() const;
  std::string log() const;

 private:
  void start();
  std::string master_name_;
  uint16_t primary_port_;
  TempDir dir_{"sipwake-sentinel"};
  uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
};

// One reply of RedisClient::command(), flattened from hiredis.
struct RedisReply {
  enum class Type { Nil, String, Status, Error, Integer, Array };
  Type type = Type::Nil;
  std::string str;                   // String, Status, Error
  long long integer = 0;             // Integer
  std::vector<RedisReply> elements;  // Array

  bool isNil() const { return type == Type::Nil; }
  bool isError() const { return type == Type::Error; }
};

// Synchronous hiredis connection for test assertions. Throws
// std::runtime_error on connection or protocol errors (not on Redis error
// replies from command(), which come back as Type::Error).
class RedisClient {
 public:
  // The registrar's push jobs (the "job" field of each sipwake:push:jobs entry), in order.
  std::vector<nlohmann::json> pushJobs();

  explicit RedisClient(uint16_t port, const std::string& host = "127.0.0.1");
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  RedisReply command(const std::vector<std::string>& argv);

  std::optional<std::string> get(const std::string& key);
  std::map<std::string, std::string> hgetall(const std::string& key);
  // Every key matching `pattern`, with SCAN (never KEYS).
  std::vector<std::string> keys(const std::string& pattern = "*");
  bool exists(const std::string& key);
  // As Redis: -2 no such key, -1 no expiry, else seconds.
  long long ttl(const std::string& key);
  // Every key of every database with every value of any type (string, hash,
  // set, zset, list, stream), one "db<N> <type> <key>" line then its values,
  // for scanning the store for leaked secrets. Leaves database 0 selected.
  std::string dumpEverything();

 private:
  redisContext* ctx_ = nullptr;
};

}  // namespace sipwake::testing
