#pragma once

#include <chrono>
#include <cstdint>

namespace sipwake {

// Milliseconds since the Unix epoch. Wall time is used throughout because the
// registration engine persists deadlines (expiry, back-off, failure windows)
// that must keep their meaning across restarts.
using Millis = std::int64_t;

constexpr Millis kSecond = 1000;
constexpr Millis kMinute = 60 * kSecond;
constexpr Millis kHour = 60 * kMinute;
constexpr Millis kDay = 24 * kHour;

// Injectable time source: business logic takes a Clock& so tests can drive time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Millis now() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

// A clock that only moves when told to; for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Millis start = 1'700'000'000'000) : now_(start) {}
  Millis now() const override { return now_; }
  void advance(Millis delta) { now_ += delta; }
  void set(Millis t) { now_ = t; }

 private:
  Millis now_;
};

}  // namespace sipwake
