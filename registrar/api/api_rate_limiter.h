#pragma once

#include <cstddef>
#include <optional>
#include <unordered_map>

#include "common/event/clock.h"

namespace sipwake::registrar {

// Per-API-key request rate: a token bucket per key (`rate` requests per
// second, up to `burst` at once), so one tenant's flood (or a leaked key)
// cannot starve the others. Keys are the key ring's indexes, never the
// secrets themselves. Runs on the API loop thread.
class ApiRateLimiter {
 public:
  struct Limits {
    double rate_per_second = 100;
    double burst = 200;
  };
  explicit ApiRateLimiter(Limits limits) : limits_(limits) {}

  // nullopt: go ahead (a token was taken); otherwise how long until the
  // next token, for Retry-After.
  std::optional<Millis> take(std::size_t key, Millis now);

 private:
  struct Bucket {
    double tokens = 0;
    Millis at = 0;
  };
  Limits limits_;
  std::unordered_map<std::size_t, Bucket> buckets_;  // bounded by the number of keys
};

}  // namespace sipwake::registrar
