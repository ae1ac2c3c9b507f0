#include "common/crypto/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "common/util/encoding.h"

namespace sipwake::crypto {
namespace {

using Json = nlohmann::json;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;

constexpr std::size_t kEs256PartSize = 32;  // P-256: r and s are 32 bytes each

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Refuses encrypted PEM keys instead of letting OpenSSL prompt on the terminal.
int noPassphrase(char*, int, int, void*) {
  return -1;
}

BioPtr readOnlyBio(std::string_view data) {
  if (data.size() > static_cast<std::size_t>(INT_MAX)) {
    throw std::invalid_argument("key text is too large");
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())), &BIO_free);
  if (!bio) throw std::runtime_error("out of memory reading a key");
  return bio;
}

std::string encodeJson(const Json& value, const char* what) {
  if (!value.is_object())
    throw std::invalid_argument(std::string("JWT ") + what + " must be an object");
  try {
    return value.dump();
  } catch (const Json::type_error&) {  // invalid UTF-8 in a string
    throw std::invalid_argument(std::string("JWT ") + what + " is not valid UTF-8");
  }
}

std::string signingInput(const Json& header, const Json& claims, const char* alg) {
  Json h = header;
  if (h.is_object()) h["alg"] = alg;
  return base64UrlEncode(encodeJson(h, "header")) + "." +
         base64UrlEncode(encodeJson(claims, "claims"));
}

// EVP_DigestSign with SHA-256: DER for EC keys, the PKCS#1 v1.5 block for RSA.
std::string digestSign(EVP_PKEY* key, std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes(data), data.size()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("JWT signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes(data),
                     data.size()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("JWT signing failed");
  }
  sig.resize(len);
  return sig;
}

bool digestVerify(EVP_PKEY* key, std::string_view data, std::string_view sig) {
  MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), bytes(sig), sig.size(), bytes(data), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

// DER ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) -> 64-byte r||s.
std::string derToRawEs256(std::string_view der) {
  const unsigned char* p = bytes(der);
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), &ECDSA_SIG_free);
  if (!sig || p != bytes(der) + der.size()) throw std::runtime_error("unexpected ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(2 * kEs256PartSize, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, kEs256PartSize) != int(kEs256PartSize) ||
      BN_bn2binpad(s, out + kEs256PartSize, kEs256PartSize) != int(kEs256PartSize)) {
    throw std::runtime_error("unexpected ECDSA signature size");
  }
  return raw;
}

// 64-byte r||s -> DER, for EVP_DigestVerify.
std::optional<std::string> rawToDerEs256(std::string_view raw) {
  if (raw.size() != 2 * kEs256PartSize) return std::nullopt;
  EcdsaSigPtr sig(ECDSA_SIG_new(), &ECDSA_SIG_free);
  BIGNUM* r = BN_bin2bn(bytes(raw), kEs256PartSize, nullptr);
  BIGNUM* s = BN_bin2bn(bytes(raw) + kEs256PartSize, kEs256PartSize, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* q = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &q) != len) return std::nullopt;
  return der;
}

struct JwtParts {
  std::string_view signing_input;  // header.claims, as received
  Json header;
  Json claims;
  std::string signature;
};

std::optional<Json> decodeJsonPart(std::string_view part) {
  if (part.find('=') != std::string_view::npos) return std::nullopt;  // JWS forbids padding
  auto text = base64UrlDecode(part);
  if (!text) return std::nullopt;
  Json value = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  return value;
}

std::optional<JwtParts> splitJwt(std::string_view jwt, const char* expected_alg) {
  auto first = jwt.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = jwt.find('.', first + 1);
  if (second == std::string_view::npos || jwt.find('.', second + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  auto header = decodeJsonPart(jwt.substr(0, first));
  auto claims = decodeJsonPart(jwt.substr(first + 1, second - first - 1));
  std::string_view sig_part = jwt.substr(second + 1);
  if (!header || !claims || sig_part.find('=') != std::string_view::npos) return std::nullopt;
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || alg->get<std::string>() != expected_alg) {
    return std::nullopt;
  }
  auto signature = base64UrlDecode(sig_part);
  if (!signature) return std::nullopt;
  return JwtParts{jwt.substr(0, second), std::move(*header), std::move(*claims),
                  std::move(*signature)};
}

}  // namespace

EvpKey::EvpKey(const EvpKey& other) noexcept : key_(other.key_) {
  if (key_ != nullptr) EVP_PKEY_up_ref(key_);
}

EvpKey& EvpKey::operator=(const EvpKey& other) noexcept {
  if (this != &other) {
    if (other.key_ != nullptr) EVP_PKEY_up_ref(other.key_);
    EVP_PKEY_free(key_);
    key_ = other.key_;
  }
  return *this;
}

EvpKey& EvpKey::operator=(EvpKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(key_);
    key_ = other.key_;
    other.key_ = nullptr;
  }
  return *this;
}

EvpKey::~EvpKey() {
  EVP_PKEY_free(key_);
}

EvpKey loadPrivateKeyPem(std::string_view pem) {
  if (pem.find("-----BEGIN") == std::string_view::npos) {
    throw std::invalid_argument("not a PEM private key");
  }
  if (pem.find("ENCRYPTED") != std::string_view::npos) {
    throw std::invalid_argument("encrypted private keys are not supported");
  }
  auto bio = readOnlyBio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, &noPassphrase, nullptr);
  ERR_clear_error();  // the queue may describe the key; nobody should print it
  if (key == nullptr) throw std::invalid_argument("not a valid PEM private key");
  return EvpKey(key);
}

EvpKey loadPublicKeyPem(std::string_view pem) {
  auto bio = readOnlyBio(pem);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, &noPassphrase, nullptr);
  ERR_clear_error();
  if (key == nullptr) throw std::invalid_argument("not a valid PEM public key");
  return EvpKey(key);
}

std::string publicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || key == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    ERR_clear_error();
    throw std::runtime_error("cannot export a public key");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

bool isEcP256Key(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_is_a(key, "EC") != 1) return false;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) {
    ERR_clear_error();
    return false;
  }
  return std::strcmp(group, "prime256v1") == 0 || std::strcmp(group, "P-256") == 0;
}

bool isRsaKey(EVP_PKEY* key, int min_bits) {
  return key != nullptr && EVP_PKEY_is_a(key, "RSA") == 1 && EVP_PKEY_get_bits(key) >= min_bits;
}

std::string signJwtEs256(const nlohmann::json& header, const nlohmann::json& claims,
                         EVP_PKEY* key) {
  if (!isEcP256Key(key)) throw std::invalid_argument("ES256 needs a P-256 EC key");
  std::string input = signingInput(header, claims, "ES256");
  std::string raw = derToRawEs256(digestSign(key, input));
  return input + "." + base64UrlEncode(raw);
}

std::string signJwtRs256(const nlohmann::json& header, const nlohmann::json& claims,
                         EVP_PKEY* key) {
  if (!isRsaKey(key)) throw std::invalid_argument("RS256 needs an RSA key of at least 2048 bits");
  std::string input = signingInput(header, claims, "RS256");
  return input + "." + base64UrlEncode(digestSign(key, input));
}

bool verifyJwtEs256(std::string_view jwt, EVP_PKEY* public_key, nlohmann::json* claims_out) {
  if (!isEcP256Key(public_key)) return false;
  auto parts = splitJwt(jwt, "ES256");
  if (!parts) return false;
  auto der = rawToDerEs256(parts->signature);
  if (!der || !digestVerify(public_key, parts->signing_input, *der)) return false;
  if (claims_out != nullptr) *claims_out = std::move(parts->claims);
  return true;
}

bool verifyJwtRs256(std::string_view jwt, EVP_PKEY* public_key, nlohmann::json* claims_out) {
  if (!isRsaKey(public_key)) return false;
  auto parts = splitJwt(jwt, "RS256");
  if (!parts || !digestVerify(public_key, parts->signing_input, parts->signature)) return false;
  if (claims_out != nullptr) *claims_out = std::move(parts->claims);
  return true;
}

std::optional<nlohmann::json> decodeJwtHeader(std::string_view jwt) {
  auto dot = jwt.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  return decodeJsonPart(jwt.substr(0, dot));
}

}  // namespace sipwake::crypto
