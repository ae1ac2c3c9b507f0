#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sipwake::pushgw {

// Serializes a provider payload. Strings from the network (SIP display names,
// MESSAGE bodies) may hold invalid UTF-8, on which nlohmann's dump() throws:
// invalid sequences become U+FFFD instead.
std::string dumpPayload(const nlohmann::json& value);

// `text` with every byte that is not part of a valid UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF included) replaced by
// U+FFFD, so that sizes counted on raw strings (FCM's data limit) are those
// the provider sees.
std::string validUtf8(std::string_view text);

// The longest prefix of `text` of at most `max_bytes` bytes that does not cut a
// UTF-8 sequence in two.
std::string_view utf8Prefix(std::string_view text, std::size_t max_bytes);

enum class FitResult {
  Fits,      // nothing to do
  Trimmed,   // payload["body"] was shortened (and ends with an ellipsis)
  TooLarge,  // does not fit even with an empty body; payload left trimmed
};

// The one place where provider size limits are enforced: shortens the string
// payload["body"] (a message push's text), UTF-8 safely, until
// measure(payload) <= limit. `measure` gives the size the provider counts
// (the serialized request body for APNs, data keys + values for FCM).
FitResult fitBody(nlohmann::json& payload, std::size_t limit,
                  const std::function<std::size_t(const nlohmann::json&)>& measure);

}  // namespace sipwake::pushgw
