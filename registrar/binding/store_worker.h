#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/redis/redis_connection.h"
#include "registrar/binding/binding_store.h"
#include "registrar/registration/registration_observer.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

// The thread that talks to Redis. API requests hand it jobs; the engine hands
// it status to write behind: coalesced per binding and kept while Redis is
// unreachable, so nothing is lost when it returns.
// Trace entries (TraceSink) are written behind the same way, batched per flush.
class StoreWorker final : public RegistrationObserver, public TraceSink {
 public:
  struct Options {
    redis::RedisUrl url;
    std::string owner;
    Millis flush_interval = 50;
    Millis failed_retention = 24 * kHour;
    Millis health_interval = 1000;
    TraceOptions trace;
  };

  explicit StoreWorker(Options options);
  ~StoreWorker() override;

  void start();
  // Flushes what it can (bounded by a few seconds), then joins.
  void stop();

  // Runs job on the store thread. Jobs catch redis::RedisUnavailable themselves.
  void submit(std::function<void(BindingStore&)> job);

  // RegistrationObserver: called on the SIP thread.
  void onStatus(const RegistrationStatus& status) override;
  void onFailed(const RegistrationStatus& status, FailureReason reason) override;
  void onExpired(const std::string& key, std::uint64_t generation) override;
  void onExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                  Millis expires_at) override;

  // TraceSink: called on the SIP thread; dropped when tracing is off.
  void trace(const std::string& binding_key, SipTraceEntry entry) override;
  const TraceOptions& traceOptions() const { return options_.trace; }

  bool redisHealthy() const { return healthy_.load(); }
  std::size_t pendingWrites() const;

 private:
  struct Pending {
    enum class Kind { Status, Failed, Expired } kind = Kind::Status;
    RegistrationStatus status;
    FailureReason reason = FailureReason::Unreachable;
  };
  void run();
  void flush();
  void flushTraces();
  void checkHealth();

  Options options_;
  redis::Connection connection_;
  BindingStore store_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void(BindingStore&)>> jobs_;
  std::unordered_map<std::string, Pending> pending_;
  std::vector<std::pair<std::string, SipTraceEntry>> pending_traces_;
  bool stopping_ = false;
  std::atomic<bool> healthy_{false};
};

}  // namespace sipwake::registrar
