#include "common/crypto/random.h"

#include <openssl/rand.h>

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

}  // namespace sipwake::crypto
