#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/redis/redis_connection.h"

namespace sipwake::redis {

// A thread with its own blocking Redis connection that runs submitted jobs in
// order. Jobs handle (or let pass) RedisUnavailable; an escaping exception is
// logged and the job dropped.
class RedisWorker {
 public:
  RedisWorker(RedisUrl url, const char* thread_name);
  ~RedisWorker();
  void start();
  void stop();  // runs what is queued, then joins
  void submit(std::function<void(Connection&)> job);
  std::size_t queued() const;

 private:
  void run();
  Connection redis_;
  const char* name_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void(Connection&)>> jobs_;
  bool stopping_ = false;
};

}  // namespace sipwake::redis
