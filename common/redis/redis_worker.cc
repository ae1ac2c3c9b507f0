#include "common/redis/redis_worker.h"

#include <pthread.h>

#include "common/log/logger.h"

namespace sipwake::redis {

RedisWorker::RedisWorker(RedisUrl url, const char* thread_name)
    : redis_(std::move(url)), name_(thread_name) {}

RedisWorker::~RedisWorker() { stop(); }

void RedisWorker::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), name_);
    run();
  });
}

void RedisWorker::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void RedisWorker::submit(std::function<void(Connection&)> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

std::size_t RedisWorker::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void RedisWorker::run() {
  while (true) {
    std::function<void(Connection&)> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job(redis_);
    } catch (const std::exception& e) {
      log::error("redis job failed", {{"worker", name_}, {"error", e.what()}});
    }
  }
}

}  // namespace sipwake::redis
