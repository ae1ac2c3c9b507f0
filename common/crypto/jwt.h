#pragma once

#include <openssl/evp.h>

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sipwake::crypto {

// Owns one reference to an OpenSSL key. Copies share the key (EVP_PKEY is
// reference counted and immutable once loaded), so an app's key can be held by
// the registry and by the signer that uses it.
class EvpKey {
 public:
  EvpKey() = default;
  explicit EvpKey(EVP_PKEY* owned) noexcept : key_(owned) {}
  EvpKey(const EvpKey& other) noexcept;
  EvpKey& operator=(const EvpKey& other) noexcept;
  EvpKey(EvpKey&& other) noexcept : key_(other.key_) { other.key_ = nullptr; }
  EvpKey& operator=(EvpKey&& other) noexcept;
  ~EvpKey();

  EVP_PKEY* get() const { return key_; }
  explicit operator bool() const { return key_ != nullptr; }

 private:
  EVP_PKEY* key_ = nullptr;
};

// Parses a PEM private key: PKCS#8 "BEGIN PRIVATE KEY" (APNs .p8 files, Google
// service accounts) or the traditional EC/RSA forms. Encrypted keys are refused
// (never prompts). Throws std::invalid_argument; the message never contains
// key material.
EvpKey loadPrivateKeyPem(std::string_view pem);
// Parses a PEM public key ("BEGIN PUBLIC KEY"), for verifiers and mock servers.
EvpKey loadPublicKeyPem(std::string_view pem);
// The public half of a key as "BEGIN PUBLIC KEY" PEM.
std::string publicKeyPem(EVP_PKEY* key);

bool isEcP256Key(EVP_PKEY* key);
bool isRsaKey(EVP_PKEY* key, int min_bits = 2048);

// Compact JWS (RFC 7515) with base64url parts without padding. `header` must
// be a JSON object; its "alg" is set to the algorithm used. Throws
// std::invalid_argument when the key does not fit the algorithm and
// std::runtime_error when OpenSSL fails.
//
// ES256 (RFC 7518 section 3.4): the signature is the raw 64-byte r||s, each
// left-padded to 32 bytes, not OpenSSL's DER; APNs rejects DER.
std::string signJwtEs256(const nlohmann::json& header, const nlohmann::json& claims, EVP_PKEY* key);
// RS256: RSASSA-PKCS1-v1_5 with SHA-256 (Google's OAuth2 JWT bearer grant).
std::string signJwtRs256(const nlohmann::json& header, const nlohmann::json& claims, EVP_PKEY* key);

// Checks the form, the header's "alg" and the signature; on success stores the
// claims in `claims_out` (when given). Expiry and audience are the caller's.
bool verifyJwtEs256(std::string_view jwt, EVP_PKEY* public_key, nlohmann::json* claims_out);
bool verifyJwtRs256(std::string_view jwt, EVP_PKEY* public_key, nlohmann::json* claims_out);

// The header of a compact JWT, unverified (a verifier picks its key by "kid").
std::optional<nlohmann::json> decodeJwtHeader(std::string_view jwt);

}  // namespace sipwake::crypto
