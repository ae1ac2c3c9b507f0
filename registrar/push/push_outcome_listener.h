#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/redis/redis_url.h"

struct redisContext;

namespace sipwake::registrar {

// The channel pushgw reports to for calls and bindings this instance owns.
std::string outcomeChannel(const std::string& instance);

// Listens (Redis SUBSCRIBE) to what pushgw reports to this instance: a push
// of a ringing call was accepted by its provider, or a binding lost its last
// device. Runs its own thread; `handler` is called there with each message.
class PushOutcomeListener {
 public:
  using Handler = std::function<void(const nlohmann::json& message)>;
  PushOutcomeListener(redis::RedisUrl url, std::string instance, Handler handler);
  ~PushOutcomeListener();
  void start();
  void stop();

 private:
  void run();
  void listenOnce();

  redis::RedisUrl url_;
  std::string channel_;
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  redisContext* ctx_ = nullptr;  // guarded by mutex_ for stop()
};

}  // namespace sipwake::registrar
