#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "common/redis/redis_connection.h"
#include "registrar/call/push_request.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

// Writes push jobs to the Redis stream pushgw consumes: one entry per device
// of the binding (read from Redis, where pushgw removes dead tokens). A call
// is pushed once per call id, whichever instance sees it (a per-call key set
// with HSETNX); its state key tells pushgw when retries are pointless.
// Has its own thread and connection so the INVITE path never waits on API
// traffic.
// The stream is bounded by pushgw trimming what it acknowledged (never what it
// has not delivered). Should it still exceed max_stream_length (no pushgw
// consuming for a long time), new jobs are refused, logged and counted in
// registrar_push_jobs_refused_total, rather than trimming old ones silently.
// While Redis is unreachable jobs wait here, in order, and are written when it
// returns, each until its own expiry (a call's: its ring time).
class PushJobWriter final : public PushSink {
 public:
  static constexpr long long kDefaultMaxStreamLength = 1'000'000;
  PushJobWriter(redis::RedisUrl url, std::string instance,
                prometheus::Registry* registry = nullptr,
                long long max_stream_length = kDefaultMaxStreamLength);
  ~PushJobWriter() override;
  // Before start(): queued jobs are traced, and carry the settings to pushgw.
  void setTrace(const TraceOptions& trace) { trace_ = trace; }
  void start();
  void stop();

  // PushSink, called on the SIP thread.
  void enqueue(PushRequest request) override;
  void callEnded(const std::string& binding_key, const std::string& call_id) override;
  // Calls this instance left ringing when it died (still "ringing" in Redis,
  // started before `before`): marked ended, so pushgw stops retrying them,
  // and counted through `done` (on the writer's thread) once Redis answers.
  void sweepLostCalls(Millis before, std::function<void(int lost)> done);

 private:
  struct Item {
    bool ended = false;  // a callEnded marker rather than a push
    PushRequest request;
    std::function<void(int)> swept;  // a sweep of lost calls rather than a push
    Millis sweep_before = 0;
  };
  int sweep(Millis before);
  void run();
  void write(const Item& item);
  void writePush(const PushRequest& request);
  bool streamFull();

  redis::Connection redis_;
  std::string instance_;
  redis::Script fanout_script_;
  TraceOptions trace_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  long long max_stream_length_;
  Millis next_length_check_ = 0;
  bool stream_full_ = false;
  prometheus::Counter* refused_ = nullptr;
};

// Keys shared with pushgw (same hash tag as the binding).
std::string callStateKey(const std::string& binding_key, const std::string& call_id);

}  // namespace sipwake::registrar
