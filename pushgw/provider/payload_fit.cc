#include "pushgw/provider/payload_fit.h"

#include <cstdint>

namespace sipwake::pushgw {
namespace {

// Tells the reader the text goes on (U+2026 HORIZONTAL ELLIPSIS).
constexpr std::string_view kEllipsis = "\xE2\x80\xA6";

bool isContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

std::string dumpPayload(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string validUtf8(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    auto b = static_cast<unsigned char>(text[i]);
    std::size_t len = b < 0x80           ? 1
                      : (b >> 5) == 0x6  ? 2
                      : (b >> 4) == 0xE  ? 3
                      : (b >> 3) == 0x1E ? 4
                                         : 0;
    bool ok = len > 0 && i + len <= text.size();
    std::uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (std::size_t k = 1; ok && k < len; ++k) {
      ok = isContinuationByte(text[i + k]);
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    if (ok) {
      static constexpr std::uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMinForLength[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

std::string_view utf8Prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  // A sequence is at most 4 bytes: walk back over at most 3 continuation bytes
  // to the lead byte of the sequence the cut would split. More than that is
  // not UTF-8 anyway (dumpPayload replaces it), so cut where asked.
  for (int i = 0; i < 3 && cut > 0 && isContinuationByte(text[cut]); ++i) --cut;
  if (isContinuationByte(text[cut])) cut = max_bytes;
  return text.substr(0, cut);
}

FitResult fitBody(nlohmann::json& payload, std::size_t limit,
                  const std::function<std::size_t(const nlohmann::json&)>& measure) {
  std::size_t size = measure(payload);
  if (size <= limit) return FitResult::Fits;
  auto body = payload.find("body");
  if (body == payload.end() || !body->is_string() || body->get_ref<const std::string&>().empty()) {
    return FitResult::TooLarge;
  }
  const std::string original = body->get<std::string>();
  auto sizeKeeping = [&](std::size_t keep) {
    std::string_view prefix = utf8Prefix(original, keep);
    *body = prefix.empty() ? std::string() : std::string(prefix) + std::string(kEllipsis);
    return measure(payload);
  };
  if (sizeKeeping(0) > limit) return FitResult::TooLarge;
  // The longest prefix that fits. A binary search on the measured size: the
  // body may count more than once (APNs alerts repeat it in aps.alert) and
  // escaping makes bytes longer, so the overflow alone does not say how much
  // to cut. Oversized messages are rare; a dozen measures is cheap.
  std::size_t fits = 0;                    // keeping this many bytes fits
  std::size_t too_long = original.size();  // keeping this many does not
  while (too_long - fits > 1) {
    std::size_t mid = fits + (too_long - fits) / 2;
    if (sizeKeeping(mid) <= limit) {
      fits = mid;
    } else {
      too_long = mid;
    }
  }
  sizeKeeping(fits);
  return FitResult::Trimmed;
}

}  // namespace sipwake::pushgw
