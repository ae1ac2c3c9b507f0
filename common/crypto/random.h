#pragma once

#include <cstdint>
#include <string>

namespace sipwake::crypto {

// Cryptographically strong bytes (OpenSSL RAND_bytes); throws if the RNG fails.
std::string randomBytes(std::size_t n);
// An unguessable token of `bits` entropy, lower-case base32.
std::string randomToken(std::size_t bits = 128);
// A unique, not secret, token (SIP tags, cnonces): a per-thread generator
// seeded from the OS, much cheaper than the CSPRNG on hot paths.
std::string uniqueToken(std::size_t bits = 64);

}  // namespace sipwake::crypto
