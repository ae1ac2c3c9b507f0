#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <unordered_map>

#include "common/event/clock.h"

namespace sipwake::registrar {

// The nonces we hand woken apps in 401 challenges. Random, remembered until
// they expire, so an answer to a nonce we never issued (or one too old) is
// refused. Bounded: the oldest are forgotten first. SIP thread only.
class NonceBook {
 public:
  explicit NonceBook(Clock& clock, Millis lifetime = 5 * kMinute, std::size_t capacity = 100000);
  std::string issue();
  bool valid(const std::string& nonce);
  std::size_t size() const { return expiry_.size(); }

 private:
  void prune(Millis now);

  Clock& clock_;
  Millis lifetime_;
  std::size_t capacity_;
  std::unordered_map<std::string, Millis> expiry_;
  std::multimap<Millis, std::string> by_expiry_;
};

// Failed sign-ins per source address: after `max_failures` within `window`
// the source is refused without checking anything until the window passes,
// so nobody can guess a password at our expense (or the PBX's). SIP thread.
class FailureLimiter {
 public:
  FailureLimiter(Clock& clock, int max_failures, Millis window);
  bool blocked(const std::string& source);
  void failed(const std::string& source);

 private:
  struct Entry {
    int failures = 0;
    Millis window_end = 0;
  };
  void prune(Millis now);

  Clock& clock_;
  int max_failures_;
  Millis window_;
  std::unordered_map<std::string, Entry> entries_;
  Millis next_prune_ = 0;
};

}  // namespace sipwake::registrar
