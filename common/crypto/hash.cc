#include "common/crypto/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

#include "common/util/encoding.h"

namespace sipwake::crypto {

namespace {

// OpenSSL 3 looks an algorithm up by name on every EVP_md5()-style use;
// fetching each once saves most of the cost of a short digest (measured:
// digest auth dominated a refresh's CPU before this).
const EVP_MD* fetched(HashAlgorithm algorithm) {
  static const EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  static const EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  static const EVP_MD* sha512_256 = EVP_MD_fetch(nullptr, "SHA2-512/256", nullptr);
  switch (algorithm) {
    case HashAlgorithm::Md5: return md5;
    case HashAlgorithm::Sha256: return sha256;
    case HashAlgorithm::Sha512_256: return sha512_256;
  }
  return sha256;
}

}  // namespace

std::string digest(HashAlgorithm algorithm, std::string_view data) {
  const EVP_MD* md = fetched(algorithm);
  if (md == nullptr) throw std::runtime_error("digest algorithm unavailable");
  // One context per thread, reused: EVP_Digest would allocate one per call.
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                          &EVP_MD_CTX_free);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, &len) != 1) {
    throw std::runtime_error("digest failed");
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
