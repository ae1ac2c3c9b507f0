#include "registrar/api/api_rate_limiter.h"

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::registrar;

TEST_CASE("API rate limit: a burst then the rate per key", "[api][abuse]") {
  ApiRateLimiter limiter({10, 20});
  Millis now = 1'000'000;
  int allowed = 0;
  std::optional<Millis> wait;
  for (int i = 0; i < 100; ++i) {
    wait = limiter.take(1, now);
    if (!wait) ++allowed;
  }
  CHECK(allowed == 20);
  REQUIRE(wait);
  CHECK(*wait == 100);  // one token every 100 ms
  // Another key is untouched.
  CHECK_FALSE(limiter.take(2, now));
  // Over the next 10 s: 10 a second.
  allowed = 0;
  for (int ms = 1; ms <= 10'000; ++ms) {
    if (!limiter.take(1, now + ms)) ++allowed;
  }
  CHECK(allowed >= 99);
  CHECK(allowed <= 101);
  // Idle time refills up to the burst, no more.
  allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += !limiter.take(1, now + 1'000'000);
  CHECK(allowed == 20);
}
