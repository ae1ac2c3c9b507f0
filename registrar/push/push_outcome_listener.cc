#include "registrar/push/push_outcome_listener.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sys/socket.h>

#include <chrono>

#include "common/log/logger.h"

namespace sipwake::registrar {

std::string outcomeChannel(const std::string& instance) {
  return "sipwake:push:outcomes:" + instance;
}

PushOutcomeListener::PushOutcomeListener(redis::RedisUrl url, std::string instance,
                                         Handler handler)
    : url_(std::move(url)), channel_(outcomeChannel(instance)), handler_(std::move(handler)) {}

PushOutcomeListener::~PushOutcomeListener() { stop(); }

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
  timeval timeout{1, 0};
  redisContext* ctx = redisConnectWithTimeout(url_.host.c_str(), url_.port, timeout);
  if (!ctx || ctx->err) {
    if (ctx) redisFree(ctx);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    ctx_ = ctx;
  }
  bool ok = true;
  if (!url_.password.empty()) {
    auto* r = static_cast<redisReply*>(
        url_.username.empty() ? redisCommand(ctx, "AUTH %s", url_.password.c_str())
                              : redisCommand(ctx, "AUTH %s %s", url_.username.c_str(),
                                             url_.password.c_str()));
    ok = r && r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
  }
  if (ok) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx, "SUBSCRIBE %s", channel_.c_str()));
    ok = r != nullptr;
    if (r) freeReplyObject(r);
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
  {
    std::lock_guard lock(mutex_);
    ctx_ = nullptr;
  }
  redisFree(ctx);
}

}  // namespace sipwake::registrar
