// Fuzzes the compact JWT code (common/crypto/jwt) pushgw signs APNs provider
// tokens and Google OAuth2 assertions with, and its mocks verify with:
// parsing of hostile tokens, and sign/verify round trips of hostile claims.
// Properties: no crash; nothing we did not sign verifies; what we sign
// verifies with its claims intact, and not once a character of it changed.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/crypto/jwt.h"
#include "tests/common/crypto/test_keys.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;

namespace {

struct Keys {
  crypto::EvpKey ec = testing::generateEcP256Key();
  crypto::EvpKey ec_public = crypto::loadPublicKeyPem(crypto::publicKeyPem(ec.get()));
  crypto::EvpKey rsa = testing::sharedRsaKey();
  crypto::EvpKey rsa_public = crypto::loadPublicKeyPem(crypto::publicKeyPem(rsa.get()));
};

void roundTrip(const Keys& keys, const nlohmann::json& claims, bool rsa, std::size_t flip) {
  nlohmann::json header = {{"kid", "fuzz"}};
  std::string jwt;
  try {
    jwt = rsa ? crypto::signJwtRs256(header, claims, keys.rsa.get())
              : crypto::signJwtEs256(header, claims, keys.ec.get());
  } catch (const std::invalid_argument&) {
    return;  // claims that do not serialize (invalid UTF-8) are refused, fine
  }
  nlohmann::json back;
  auto verify = [&](std::string_view token, nlohmann::json* out) {
    return rsa ? crypto::verifyJwtRs256(token, keys.rsa_public.get(), out)
               : crypto::verifyJwtEs256(token, keys.ec_public.get(), out);
  };
  FUZZ_CHECK(verify(jwt, &back));
  FUZZ_CHECK(back == claims);
  auto header_back = crypto::decodeJwtHeader(jwt);
  FUZZ_CHECK(header_back && header_back->value("alg", "") == (rsa ? "RS256" : "ES256"));
  // One character of the claims changed: never valid.
  auto first = jwt.find('.'), second = jwt.find('.', first + 1);
  if (second - first > 2) {
    std::size_t at = first + 1 + flip % (second - first - 2);  // not the segment's last char
    std::string tampered = jwt;
    tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
    FUZZ_CHECK(!verify(tampered, nullptr));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Keys keys;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // A token from elsewhere: it may decode, it never verifies.
  (void)crypto::decodeJwtHeader(text);
  nlohmann::json claims;
  FUZZ_CHECK(!crypto::verifyJwtEs256(text, keys.ec_public.get(), &claims));
  FUZZ_CHECK(!crypto::verifyJwtRs256(text, keys.rsa_public.get(), &claims));
  FUZZ_CHECK(!crypto::verifyJwtEs256(text, keys.rsa_public.get(), nullptr));

  // The input as claims to sign (RS256 is slow under ASan: one input in 8).
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_object()) {
    roundTrip(keys, doc, false, size);
    if (size % 8 == 0) roundTrip(keys, doc, true, size);
  }
  return 0;
}
