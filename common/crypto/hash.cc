#include "common/crypto/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdexcept>

#include "common/util/encoding.h"

namespace sipwake::crypto {

std::string digest(HashAlgorithm algorithm, std::string_view data) {
  const EVP_MD* md = nullptr;
  switch (algorithm) {
    case HashAlgorithm::Md5: md = EVP_md5(); break;
    case HashAlgorithm::Sha256: md = EVP_sha256(); break;
    case HashAlgorithm::Sha512_256: md = EVP_sha512_256(); break;
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) {
    throw std::runtime_error("EVP_Digest failed");
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string sha256(std::string_view data) { return digest(HashAlgorithm::Sha256, data); }

std::string digestHex(HashAlgorithm algorithm, std::string_view data) {
  return hexEncode(digest(algorithm, data));
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void wipe(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

}  // namespace sipwake::crypto
