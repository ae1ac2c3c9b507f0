#include "registrar/api/api_rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace sipwake::registrar {

std::optional<Millis> ApiRateLimiter::take(std::size_t key, Millis now) {
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{limits_.burst, now});
  Bucket& b = it->second;
  if (!fresh && now > b.at) {
    b.tokens = std::min(limits_.burst,
                        b.tokens + static_cast<double>(now - b.at) * limits_.rate_per_second / 1000.0);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  return static_cast<Millis>(std::ceil((1.0 - b.tokens) * 1000.0 / limits_.rate_per_second));
}

}  // namespace sipwake::registrar
