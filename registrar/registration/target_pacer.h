#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/event/clock.h"

namespace sipwake::registrar {

// Paces REGISTERs toward each PBX target: at most `rate` per second (a
// generic cell rate meter: requests are spaced 1/rate apart on average, with
// a burst tolerance of 10 ms worth) and at most `max_in_flight` transactions
// awaiting a final response; and all targets together at most
// `global_rate_per_second`, so no tenant makes us flood a PBX or the network. Sofia's per-connection TCP queue overflows in bursts (PITFALLS),
// and a PBX's intrusion detection does not like floods either.
// Runs on the SIP thread.
class TargetPacer {
 public:
  struct Limits {
    double rate_per_second = 1000;
    int max_in_flight = 100;
    double global_rate_per_second = 5000;
  };
  // Sent REGISTERs that had to wait for a cap, by the cap that held them
  // first (cumulative).
  struct Stats {
    std::uint64_t delayed_by_target = 0;
    std::uint64_t delayed_by_global = 0;
  };

  explicit TargetPacer(Limits limits) : limits_(limits) {}

  // Queues a send for `slot` toward `target`; urgent ones (answers to a
  // challenge, un-registrations) go first.
  void enqueue(const std::string& target, std::uint32_t slot, std::uint64_t epoch, bool urgent);
  // A transaction toward `target` ended: frees its in-flight place.
  void release(const std::string& target);

  // Pops every send allowed at `now`, calling send(slot, epoch) for each,
  // and returns when the next queued send may go (or nullopt when nothing waits
  // on time). The callee returns false when the entry was stale (not sent).
  using SendFn = std::function<bool(std::uint32_t slot, std::uint64_t epoch)>;
  std::optional<Millis> dispatch(Millis now, const SendFn& send);

  std::size_t queued() const;
  int inFlight(const std::string& target) const;
  const Stats& stats() const { return stats_; }

 private:
  enum class Delay : std::uint8_t { None, Target, Global };
  struct Entry {
    std::uint32_t slot;
    std::uint64_t epoch;
    Delay delayed = Delay::None;
  };
  struct Target {
    std::deque<Entry> queue;
    int in_flight = 0;
    double next_send_us = 0;  // theoretical arrival time of the next request
  };
  Limits limits_;
  std::unordered_map<std::string, Target> targets_;
  double global_next_us_ = 0;
  std::string last_served_;  // round robin across dispatches
  Stats stats_;
};

}  // namespace sipwake::registrar
