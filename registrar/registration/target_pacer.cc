#include "registrar/registration/target_pacer.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

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
  const double global_interval_us = 1e6 / std::max(limits_.global_rate_per_second, 0.001);
  // Up to 10 ms worth of requests may leave together, so a batch goes out in
  // one wake-up; any one-second window still holds at most 1 % over the rate.
  const double burst_us = std::max(interval_us, 10'000.0);
  const double global_burst_us = std::max(global_interval_us, 10'000.0);
  // Idle time banks no more credit than the burst: no catch-up floods.
  global_next_us_ = std::max(global_next_us_, now_us - global_burst_us);
  for (auto& [_, t] : targets_) t.next_send_us = std::max(t.next_send_us, now_us - burst_us);

  std::optional<Millis> next;
  auto wakeAt = [&](double at_us) {
    Millis due = static_cast<Millis>(std::ceil(at_us / 1000.0));
    next = next ? std::min(*next, due) : due;
  };
  // Round robin, one request per target per pass: under the global cap no
  // target (no tenant's PBX) starves the others.
  // Each dispatch starts after the target served last, else under a tight
  // global cap the first target in the map would take every token.
  std::vector<std::pair<const std::string*, Target*>> order;
  order.reserve(targets_.size());
  auto last = targets_.find(last_served_);
  auto start = last == targets_.end() ? targets_.begin() : std::next(last);
  for (auto it = start; it != targets_.end(); ++it) order.emplace_back(&it->first, &it->second);
  for (auto it = targets_.begin(); it != start; ++it) order.emplace_back(&it->first, &it->second);

  bool progress = true;
  bool global_blocked = false;
  while (progress && !global_blocked) {
    progress = false;
    for (auto& [name, target] : order) {
      Target& t = *target;
      if (t.queue.empty() || t.in_flight >= limits_.max_in_flight) continue;
      if (t.next_send_us > now_us) {
        if (t.queue.front().delayed == Delay::None) t.queue.front().delayed = Delay::Target;
        wakeAt(t.next_send_us);
        continue;
      }
      if (global_next_us_ > now_us) {
        for (auto& [__, other] : targets_) {
          if (!other.queue.empty() && other.queue.front().delayed == Delay::None) {
            other.queue.front().delayed = Delay::Global;
          }
        }
        wakeAt(global_next_us_);
        global_blocked = true;
        break;
      }
      Entry e = t.queue.front();
      t.queue.pop_front();
      progress = true;
      if (send(e.slot, e.epoch)) {
        ++t.in_flight;
        t.next_send_us += interval_us;
        global_next_us_ += global_interval_us;
        last_served_ = *name;
        if (e.delayed == Delay::Target) ++stats_.delayed_by_target;
        if (e.delayed == Delay::Global) ++stats_.delayed_by_global;
      }
    }
  }
  for (auto it = targets_.begin(); it != targets_.end();) {
    if (it->second.queue.empty() && it->second.in_flight == 0) {
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
