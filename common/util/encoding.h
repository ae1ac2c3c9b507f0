#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sipwake {

std::string base64Encode(std::string_view data);
// Accepts padded or unpadded standard alphabet; nullopt on any other byte.
std::optional<std::string> base64Decode(std::string_view text);
std::string base64UrlEncode(std::string_view data);  // no padding (JWTs)
std::optional<std::string> base64UrlDecode(std::string_view text);

std::string hexEncode(std::string_view data);
std::optional<std::string> hexDecode(std::string_view text);

// RFC 4648 base32, lower case, no padding: safe in SIP URI user parts even
// through PBXs that fold case.
std::string base32Lower(std::string_view data);

}  // namespace sipwake
