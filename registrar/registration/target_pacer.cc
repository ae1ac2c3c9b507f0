#include "registrar/registration/target_pacer.h"

#include <algorithm>
#include <cmath>

namespace sipwake::registrar {

void TargetPacer::enqueue(const std::string& target, std::uint32_t slot, std::uint64_t epoch,
                          bool urgent) {
  auto& t = targets_[target];
  if (urgent) {
    t.queue.push_front({slot, epoch});
  } else {
    t.queue.push_back({slot, epoch});
  }
}

void TargetPacer::release(const std::string& target) {
  auto it = targets_.find(target);
  if (it != targets_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

std::optional<Millis> TargetPacer::dispatch(Millis now, const SendFn& send) {
  const double now_us = static_cast<double>(now) * 1000.0;
  const double interval_us = 1e6 / std::max(limits_.rate_per_second, 0.001);
  // Up to 10 ms worth of requests may leave together, so a batch goes out in
  // one wake-up; any one-second window still holds at most 1 % over the rate.
  const double burst_us = std::max(interval_us, 10'000.0);
  std::optional<Millis> next;
  for (auto it = targets_.begin(); it != targets_.end();) {
    Target& t = it->second;
    // Idle time banks no more credit than the burst: no catch-up floods.
    t.next_send_us = std::max(t.next_send_us, now_us - burst_us);
    while (!t.queue.empty() && t.in_flight < limits_.max_in_flight) {
      if (t.next_send_us > now_us) {
        Millis due = static_cast<Millis>(std::ceil(t.next_send_us / 1000.0));
        next = next ? std::min(*next, due) : due;
        break;
      }
      Entry e = t.queue.front();
      t.queue.pop_front();
      if (send(e.slot, e.epoch)) {
        ++t.in_flight;
        t.next_send_us += interval_us;
      }
    }
    if (t.queue.empty() && t.in_flight == 0) {
      it = targets_.erase(it);
    } else {
      ++it;
    }
  }
  return next;
}

std::size_t TargetPacer::queued() const {
  std::size_t n = 0;
  for (const auto& [_, t] : targets_) n += t.queue.size();
  return n;
}

int TargetPacer::inFlight(const std::string& target) const {
  auto it = targets_.find(target);
  return it == targets_.end() ? 0 : it->second.in_flight;
}

}  // namespace sipwake::registrar
