#include "common/crypto/jwt.h"

#include <openssl/evp.h>

#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "common/util/encoding.h"
#include "tests/common/crypto/test_keys.h"
#include "tests/support/process.h"

using namespace sipwake;
using namespace sipwake::crypto;
using sipwake::testing::generateEcP256Key;
using sipwake::testing::privateKeyPem;
using sipwake::testing::pemEnvelopeAround;
using sipwake::testing::sharedRsaKey;
using Json = nlohmann::json;

namespace {

struct Parts {
  std::string header, claims, signature;  // as in the JWT (base64url)
  std::string signingInput() const { return header + "." + claims; }
};

Parts split(const std::string& jwt) {
  auto a = jwt.find('.');
  auto b = jwt.find('.', a + 1);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  return {jwt.substr(0, a), jwt.substr(a + 1, b - a - 1), jwt.substr(b + 1)};
}

// DER INTEGER from a big-endian unsigned number, written here independently
// of the code under test: minimal length, a 0x00 in front when the high bit
// is set.
std::string derInteger(std::string_view be) {
  std::size_t i = 0;
  while (i + 1 < be.size() && be[i] == '\0') ++i;
  std::string v(be.substr(i));
  if (static_cast<unsigned char>(v[0]) & 0x80) v.insert(0, 1, '\0');
  return std::string("\x02", 1) + static_cast<char>(v.size()) + v;
}

std::string derFromRawSignature(std::string_view raw) {
  std::string body = derInteger(raw.substr(0, 32)) + derInteger(raw.substr(32, 32));
  return std::string("\x30", 1) + static_cast<char>(body.size()) + body;
}

// A standard verifier: EVP_DigestVerify over SHA-256 with the DER signature.
bool standardVerify(EVP_PKEY* key, const std::string& data, const std::string& sig) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

// The openssl command line, as a verifier that shares no code with ours.
bool opensslCliVerify(EVP_PKEY* key, const std::string& data, const std::string& sig) {
  sipwake::testing::TempDir dir("sipwake-jwt");
  sipwake::testing::writeFile(dir.file("pub.pem"), publicKeyPem(key));
  sipwake::testing::writeFile(dir.file("data"), data);
  sipwake::testing::writeFile(dir.file("sig"), sig);
  int status = -1;
  auto q = sipwake::testing::shellQuote;
  std::string out = sipwake::testing::runCommand(
      "openssl dgst -sha256 -verify " + q(dir.file("pub.pem")) + " -signature " +
          q(dir.file("sig")) + " " + q(dir.file("data")) + " 2>&1",
      &status);
  return status == 0 && out.find("Verified OK") != std::string::npos;
}

}  // namespace

TEST_CASE("ES256 JWTs: base64url without padding, raw 64-byte r||s, round trip", "[jwt]") {
  EvpKey key = generateEcP256Key();
  EvpKey pub = loadPublicKeyPem(publicKeyPem(key.get()));
  Json claims = {{"iss", "ABCDE12345"}, {"iat", 1700000000}};
  std::string jwt = signJwtEs256({{"kid", "KEY1234567"}}, claims, key.get());

  CHECK(jwt.find('=') == std::string::npos);
  CHECK(jwt.find('+') == std::string::npos);
  CHECK(jwt.find('/') == std::string::npos);
  Parts p = split(jwt);
  auto header = Json::parse(*base64UrlDecode(p.header));
  CHECK(header == Json{{"alg", "ES256"}, {"kid", "KEY1234567"}});
  CHECK(Json::parse(*base64UrlDecode(p.claims)) == claims);
  auto sig = base64UrlDecode(p.signature);
  REQUIRE(sig);
  CHECK(sig->size() == 64);
  CHECK(p.signature.size() == 86);  // 64 bytes, unpadded

  Json out;
  CHECK(verifyJwtEs256(jwt, pub.get(), &out));
  CHECK(out == claims);
  CHECK(verifyJwtEs256(jwt, key.get(), nullptr));  // a private key verifies too
  CHECK(decodeJwtHeader(jwt) == header);
}

TEST_CASE("ES256 signatures verify with a standard DER verifier, leading zeros included", "[jwt]") {
  EvpKey key = generateEcP256Key();
  // Sign until r or s starts with a zero byte (1 in 128 per signature), so the
  // left-padding of short integers is exercised, checking every signature.
  bool saw_short_integer = false;
  for (int i = 0; i < 3000 && !saw_short_integer; ++i) {
    std::string jwt = signJwtEs256(Json::object(), {{"n", i}}, key.get());
    Parts p = split(jwt);
    std::string raw = *base64UrlDecode(p.signature);
    REQUIRE(raw.size() == 64);
    REQUIRE(standardVerify(key.get(), p.signingInput(), derFromRawSignature(raw)));
    REQUIRE(verifyJwtEs256(jwt, key.get(), nullptr));
    saw_short_integer = raw[0] == '\0' || raw[32] == '\0';
  }
  CHECK(saw_short_integer);

  std::string jwt = signJwtEs256({{"kid", "K"}}, {{"iss", "T"}}, key.get());
  Parts p = split(jwt);
  CHECK(opensslCliVerify(key.get(), p.signingInput(),
                         derFromRawSignature(*base64UrlDecode(p.signature))));
}

TEST_CASE("RS256 JWTs round trip and verify with openssl", "[jwt]") {
  const EvpKey& key = sharedRsaKey();
  EvpKey pub = loadPublicKeyPem(publicKeyPem(key.get()));
  Json claims = {{"iss", "pushgw@example-project.iam.gserviceaccount.com"}, {"exp", 1700003600}};
  std::string jwt = signJwtRs256({{"typ", "JWT"}, {"alg", "HS256"}}, claims, key.get());
  Parts p = split(jwt);
  CHECK(Json::parse(*base64UrlDecode(p.header)) == Json{{"alg", "RS256"}, {"typ", "JWT"}});
  CHECK(base64UrlDecode(p.signature)->size() == 256);
  CHECK(jwt.find('=') == std::string::npos);
  Json out;
  CHECK(verifyJwtRs256(jwt, pub.get(), &out));
  CHECK(out == claims);
  CHECK(standardVerify(pub.get(), p.signingInput(), *base64UrlDecode(p.signature)));
  CHECK(opensslCliVerify(key.get(), p.signingInput(), *base64UrlDecode(p.signature)));
}

TEST_CASE("JWT verification rejects tampering, other keys, other algorithms, bad forms", "[jwt]") {
  EvpKey ec = generateEcP256Key();
  EvpKey other_ec = generateEcP256Key();
  const EvpKey& rsa = sharedRsaKey();
  std::string es = signJwtEs256(Json::object(), {{"iss", "A"}}, ec.get());
  std::string rs = signJwtRs256(Json::object(), {{"iss", "A"}}, rsa.get());
  Parts p = split(es);

  CHECK_FALSE(verifyJwtEs256(es, other_ec.get(), nullptr));
  CHECK_FALSE(verifyJwtEs256(es, rsa.get(), nullptr));
  CHECK_FALSE(verifyJwtRs256(es, rsa.get(), nullptr));
  CHECK_FALSE(verifyJwtEs256(rs, ec.get(), nullptr));
  CHECK_FALSE(verifyJwtRs256(rs, generateEcP256Key().get(), nullptr));

  std::string forged_claims = base64UrlEncode(R"({"iss":"B"})");
  CHECK_FALSE(
      verifyJwtEs256(p.header + "." + forged_claims + "." + p.signature, ec.get(), nullptr));
  std::string none_header = base64UrlEncode(R"({"alg":"none"})");
  CHECK_FALSE(verifyJwtEs256(none_header + "." + p.claims + "." + p.signature, ec.get(), nullptr));
  CHECK_FALSE(verifyJwtEs256(none_header + "." + p.claims + ".", ec.get(), nullptr));
  std::string flipped = p.signature;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  CHECK_FALSE(verifyJwtEs256(p.header + "." + p.claims + "." + flipped, ec.get(), nullptr));
  // A DER signature where raw r||s is expected.
  auto der = derFromRawSignature(*base64UrlDecode(p.signature));
  CHECK_FALSE(verifyJwtEs256(p.signingInput() + "." + base64UrlEncode(der), ec.get(), nullptr));

  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "a.b", "a.b.c.d", es + ".", es + "=", "x" + es}) {
    CHECK_FALSE(verifyJwtEs256(bad, ec.get(), nullptr));
  }
  CHECK_FALSE(verifyJwtEs256(es, nullptr, nullptr));
  Json untouched = "unchanged";
  CHECK_FALSE(verifyJwtEs256(es, other_ec.get(), &untouched));
  CHECK(untouched == "unchanged");
}

TEST_CASE("signing checks the key type and the JSON", "[jwt]") {
  EvpKey ec = generateEcP256Key();
  EvpKey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  CHECK_THROWS_AS(signJwtEs256(Json::object(), Json::object(), sharedRsaKey().get()),
                  std::invalid_argument);
  CHECK_THROWS_AS(signJwtEs256(Json::object(), Json::object(), p384.get()), std::invalid_argument);
  CHECK_THROWS_AS(signJwtRs256(Json::object(), Json::object(), ec.get()), std::invalid_argument);
  CHECK_THROWS_AS(signJwtEs256(Json::array(), Json::object(), ec.get()), std::invalid_argument);
  CHECK_THROWS_AS(signJwtEs256(Json::object(), "claims", ec.get()), std::invalid_argument);
  CHECK_THROWS_AS(signJwtEs256(Json::object(), {{"iss", "\xff"}}, ec.get()), std::invalid_argument);
  CHECK(isEcP256Key(ec.get()));
  CHECK_FALSE(isEcP256Key(p384.get()));
  CHECK_FALSE(isEcP256Key(nullptr));
  CHECK(isRsaKey(sharedRsaKey().get()));
  CHECK_FALSE(isRsaKey(sharedRsaKey().get(), 4096));
  CHECK_FALSE(isRsaKey(ec.get()));
}

TEST_CASE("private keys load from PKCS#8 and traditional PEM, errors hide the key", "[jwt]") {
  sipwake::testing::TempDir dir("sipwake-jwt");
  auto q = sipwake::testing::shellQuote;
  int status = -1;
  // What Apple hands out: a PKCS#8 P-256 key (.p8).
  std::string p8 = sipwake::testing::runCommand(
      "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null", &status);
  REQUIRE(status == 0);
  REQUIRE(p8.find("-----BEGIN PRIVATE KEY-----") != std::string::npos);
  EvpKey apple = loadPrivateKeyPem(p8);
  CHECK(isEcP256Key(apple.get()));
  CHECK(
      verifyJwtEs256(signJwtEs256(Json::object(), {{"a", 1}}, apple.get()), apple.get(), nullptr));

  std::string sec1 = sipwake::testing::runCommand(
      "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null", &status);
  REQUIRE(status == 0);
  REQUIRE(sec1.find("BEGIN EC PRIVATE KEY") != std::string::npos);
  CHECK(isEcP256Key(loadPrivateKeyPem(sec1).get()));

  std::string rsa_pem = privateKeyPem(sharedRsaKey().get());
  CHECK(isRsaKey(loadPrivateKeyPem(rsa_pem).get()));

  // Encrypted: refused, and never a passphrase prompt.
  sipwake::testing::writeFile(dir.file("plain.pem"), p8);
  std::string encrypted = sipwake::testing::runCommand(
      "openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:secret -in " + q(dir.file("plain.pem")) +
          " 2>/dev/null",
      &status);
  REQUIRE(status == 0);
  CHECK_THROWS_AS(loadPrivateKeyPem(encrypted), std::invalid_argument);
  std::string unmarked = encrypted;  // mislabelled: still refused, still no prompt
  unmarked.replace(unmarked.find("ENCRYPTED PRIVATE KEY"), 21, "PRIVATE KEY");
  unmarked.replace(unmarked.find("ENCRYPTED PRIVATE KEY"), 21, "PRIVATE KEY");
  CHECK_THROWS_AS(loadPrivateKeyPem(unmarked), std::invalid_argument);

  std::string garbage = pemEnvelopeAround("TOPSECRETMATERIALTOPSECRETMATERIAL");
  try {
    loadPrivateKeyPem(garbage);
    FAIL("garbage accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("TOPSECRET") == std::string::npos);
  }
  CHECK_THROWS_AS(loadPrivateKeyPem(""), std::invalid_argument);
  CHECK_THROWS_AS(loadPrivateKeyPem(publicKeyPem(apple.get())), std::invalid_argument);
  CHECK_THROWS_AS(loadPublicKeyPem("not a key"), std::invalid_argument);
}

TEST_CASE("EvpKey copies share the key and free it once", "[jwt]") {
  EvpKey a = generateEcP256Key();
  EvpKey b = a;
  CHECK(b.get() == a.get());
  EvpKey c = std::move(b);
  CHECK_FALSE(b);
  CHECK(c.get() == a.get());
  b = c;
  a = EvpKey();
  CHECK(isEcP256Key(b.get()));
  CHECK(verifyJwtEs256(signJwtEs256(Json::object(), Json::object(), b.get()), c.get(), nullptr));
}
