#pragma once

#include <string>
#include <string_view>

namespace sipwake::crypto {

enum class HashAlgorithm { Md5, Sha256, Sha512_256 };

// Raw digest bytes.
std::string digest(HashAlgorithm algorithm, std::string_view data);
std::string sha256(std::string_view data);
// Lower-case hex of the digest (what SIP digest auth works with).
std::string digestHex(HashAlgorithm algorithm, std::string_view data);

// Compares without leaking where the inputs differ (API keys, digests).
bool constantTimeEqual(std::string_view a, std::string_view b);

// Overwrites memory that held a secret in a way the compiler keeps.
void wipe(std::string& secret);

}  // namespace sipwake::crypto
