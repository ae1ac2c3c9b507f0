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
// awaiting a final response. Sofia's per-connection TCP queue overflows in bursts (PITFALLS),
// and a PBX's intrusion detection does not like floods either.
// Runs on the SIP thread.
class TargetPacer {
 public:
  struct Limits {
    double rate_per_second = 1000;
    int max_in_flight = 100;
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

 private:
  struct Entry {
    std::uint32_t slot;
    std::uint64_t epoch;
  };
  struct Target {
    std::deque<Entry> queue;
    int in_flight = 0;
    double next_send_us = 0;  // theoretical arrival time of the next request
  };
  Limits limits_;
  std::unordered_map<std::string, Target> targets_;
};

}  // namespace sipwake::registrar
