#include "pushgw/provider/retry_after.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace sipwake::pushgw {

std::optional<Millis> retryAfter(const http2::Response& response) {
  const std::string* header = response.header("retry-after");
  if (header == nullptr) return std::nullopt;
  std::string_view value = *header;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || value.size() > 9) return std::nullopt;  // 9 digits: no overflow below
  Millis seconds = 0;
  for (char c : value) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;  // an HTTP-date
    seconds = seconds * 10 + (c - '0');
  }
  return std::min(seconds * kSecond, kHour);
}

}  // namespace sipwake::pushgw
