#include "common/crypto/random.h"

#include <openssl/rand.h>

#include <random>
#include <stdexcept>

#include "common/util/encoding.h"

namespace sipwake::crypto {

std::string randomBytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string randomToken(std::size_t bits) { return base32Lower(randomBytes((bits + 7) / 8)); }

std::string uniqueToken(std::size_t bits) {
  thread_local std::mt19937_64 generator = [] {
    std::string seed = randomBytes(32);
    std::seed_seq seq(seed.begin(), seed.end());
    return std::mt19937_64(seq);
  }();
  std::string bytes;
  bytes.reserve((bits + 7) / 8 + 8);
  while (bytes.size() * 8 < bits) {
    std::uint64_t v = generator();
    bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  bytes.resize((bits + 7) / 8);
  return base32Lower(bytes);
}

}  // namespace sipwake::crypto
