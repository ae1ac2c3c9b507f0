#pragma once

#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/redis/redis_connection.h"
#include "pushgw/queue/push_job.h"

namespace sipwake::pushgw {

inline constexpr const char* kJobStreamKey = "sipwake:push:jobs";
inline constexpr const char* kDeadLetterStreamKey = "sipwake:push:dead";

// Reads push jobs from the Redis stream as one consumer of a consumer group,
// so several pushgw instances share the work and a dead one's jobs are not
// lost: entries it left pending are claimed by the others (XAUTOCLAIM) after
// `claim_idle`. A job is acknowledged only after its final outcome (ack()).
// Jobs still under way here are claimed again now and then (JUSTID), so a
// long retry is not taken for a dead consumer's. Malformed jobs and jobs
// handed out more than max_deliveries times go to the dead-letter stream.
// The stream's length is bounded by trimming what every group has
// acknowledged (XTRIM MINID below the oldest pending or undelivered entry),
// so a trim never removes a job that has not reached its final outcome.
// Runs its own thread with its own Redis connection.
class JobStream {
 public:
  struct Options {
    redis::RedisUrl url;
    std::string group = "pushgw";
    std::string consumer;            // unique per instance
    std::size_t batch = 500;         // entries per read
    Millis block = 100;              // XREADGROUP BLOCK
    Millis claim_idle = 30 * kSecond;
    Millis claim_interval = 2 * kSecond;
    Millis trim_interval = kSecond;  // XTRIM of acknowledged entries
    int max_deliveries = 5;          // beyond: dead letter
    std::size_t max_outstanding = 20000;  // handed out, not yet acknowledged
    Millis shutdown_drain = 5 * kSecond;  // drain(): longest wait for jobs under way
  };
  using Sink = std::function<void(std::vector<PushJob>&&)>;  // called on the stream thread

  JobStream(Options options, Sink sink);
  ~JobStream();
  void start();
  // Stops taking jobs (new or reclaimed) and waits up to shutdown_drain for
  // those handed out to be acknowledged. True when none is left; the rest
  // stay pending for another instance. Call stop() afterwards.
  bool drain();
  void stop();

  // Thread-safe; written in batches by the stream thread.
  void ack(const std::string& entry_id);
  void deadLetter(const PushJob& job, const std::string& reason);

  std::size_t outstanding() const { return outstanding_.load(); }
  // Jobs moved to the dead-letter stream since start, by cause.
  struct DeadLetterCounts {
    std::uint64_t malformed = 0;      // unparseable fields
    std::uint64_t redelivered = 0;    // handed out max_deliveries times
    std::uint64_t undeliverable = 0;  // given up by the dispatcher (unknown app, rejected)
  };
  DeadLetterCounts deadLetters() const {
    return {malformed_.load(), redelivered_.load(), undeliverable_.load()};
  }
  // Acknowledged entries removed by our trims; pending entries found deleted
  // by someone else's trim when reclaimed (their jobs are lost: logged).
  struct TrimCounts {
    std::uint64_t acknowledged = 0;
    std::uint64_t lost_pending = 0;
  };
  TrimCounts trims() const { return {trimmed_.load(), lost_pending_.load()}; }
  // Entries not yet delivered to any consumer plus pending ones (last measured).
  long long depth() const { return depth_.load(); }
  bool healthy() const { return healthy_.load(); }

 private:
  struct Dead {
    std::string entry_id;
    std::string job;
    std::string reason;
    bool handed_out = false;  // counted in outstanding_
  };
  void run();
  void ensureGroup();
  void readNew();
  void reclaim();
  void flushAcks();
  void measureDepth();
  void trimAcknowledged();
  void handOut(std::vector<PushJob>&& jobs);
  void keepHeld();
  std::vector<PushJob> claimPage(bool& more);
  std::vector<PushJob> parseEntries(const redis::Reply& entries, int deliveries);

  Options options_;
  Sink sink_;
  redis::Connection redis_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> outstanding_{0};
  std::atomic<std::uint64_t> malformed_{0}, redelivered_{0}, undeliverable_{0};
  std::atomic<std::uint64_t> trimmed_{0}, lost_pending_{0};
  std::atomic<bool> draining_{false};
  std::atomic<long long> depth_{0};
  std::atomic<bool> healthy_{false};
  std::mutex mutex_;
  std::vector<std::string> acks_;
  std::vector<Dead> dead_;
  std::unordered_map<std::string, Millis> held_;  // handed out, not done: last (re)claimed
  Millis next_claim_ = 0;
  Millis next_depth_ = 0;
  Millis next_trim_ = 0;
  std::string claim_cursor_ = "0-0";  // XAUTOCLAIM resumes here
  bool group_ready_ = false;
};

}  // namespace sipwake::pushgw
