// Throw-away signing keys for tests and mock servers.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "common/crypto/jwt.h"

namespace sipwake::testing {

inline crypto::EvpKey generateEcP256Key() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) throw std::runtime_error("EC key generation failed");
  return crypto::EvpKey(key);
}

inline crypto::EvpKey generateRsaKey(std::size_t bits = 2048) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits);
  if (key == nullptr) throw std::runtime_error("RSA key generation failed");
  return crypto::EvpKey(key);
}

// RSA generation takes a while (more under sanitizers): one per test process.
inline const crypto::EvpKey& sharedRsaKey() {
  static const crypto::EvpKey key = generateRsaKey();
  return key;
}

// PKCS#8 "BEGIN PRIVATE KEY", the form of APNs .p8 files and service accounts.
inline std::string privateKeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw std::runtime_error("cannot write a private key");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// What a broken key file looks like: the PEM lines of a freshly generated
// key around `body` instead of the key (no key text lives in the sources).
inline std::string pemEnvelopeAround(const std::string& body) {
  std::string pem = privateKeyPem(generateEcP256Key().get());
  return pem.substr(0, pem.find('\n') + 1) + body + "\n" + pem.substr(pem.rfind("-----END"));
}

}  // namespace sipwake::testing
