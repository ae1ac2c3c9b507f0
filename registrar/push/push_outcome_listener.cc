#include "registrar/push/push_outcome_listener.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sys/socket.h>

#include <chrono>

#include "common/log/logger.h"
#include "common/redis/redis_connection.h"
#include "common/redis/redis_health.h"

namespace sipwake::registrar {

std::string outcomeChannel(const std::string& instance) {
  return "sipwake:push:outcomes:" + instance;
}

PushOutcomeListener::PushOutcomeListener(redis::RedisUrl url, std::string instance,
                                         Handler handler)
    : url_(std::move(url)), channel_(outcomeChannel(instance)), handler_(std::move(handler)) {}

PushOutcomeListener::~PushOutcomeListener() {
  stop();
  redis::RedisHealth::instance().closed(this);
}

void PushOutcomeListener::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "push-outcomes");
    run();
  });
}

void PushOutcomeListener::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  {
    // Unblocks the thread's blocking read.
    std::lock_guard lock(mutex_);
    if (ctx_) shutdown(ctx_->fd, SHUT_RDWR);
  }
  thread_.join();
}

void PushOutcomeListener::run() {
  while (!stopping_) {
    listenOnce();
    for (int i = 0; i < 10 && !stopping_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void PushOutcomeListener::listenOnce() {
  redisContext* ctx = nullptr;
  try {
    // The primary (through the sentinels when so configured), authenticated;
    // reads block with no timeout: messages come when they come.
    ctx = redis::connectToPrimary(url_, 1000, 0);
  } catch (const redis::RedisUnavailable&) {
    redis::RedisHealth::instance().failed(this, redis::RedisFailure::Connect);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    ctx_ = ctx;
  }
  bool ok = false;
  if (auto* r = static_cast<redisReply*>(redisCommand(ctx, "SUBSCRIBE %s", channel_.c_str()))) {
    ok = true;
    freeReplyObject(r);
    redis::RedisHealth::instance().succeeded(this);
  }
  while (ok && !stopping_) {
    void* raw = nullptr;
    if (redisGetReply(ctx, &raw) != REDIS_OK || !raw) break;
    auto* r = static_cast<redisReply*>(raw);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->str) {
      auto message = nlohmann::json::parse(
          std::string(r->element[2]->str, r->element[2]->len), nullptr, false);
      if (message.is_object()) {
        handler_(message);
      } else {
        log::warn("ignoring a malformed push outcome");
      }
    }
    freeReplyObject(r);
  }
  // Our own stop() shuts the socket to end the read: not a failure.
  if (!stopping_) redis::RedisHealth::instance().failed(this, redis::RedisFailure::Io);
  {
    std::lock_guard lock(mutex_);
    ctx_ = nullptr;
  }
  redisFree(ctx);
}

}  // namespace sipwake::registrar
