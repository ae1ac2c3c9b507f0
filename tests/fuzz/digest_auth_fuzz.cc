// Fuzzes the Digest header parsers: the challenges PBXs send us
// (WWW-/Proxy-Authenticate), the persisted form of a challenge (read back
// from Redis), and the Authorization header apps send the device listener.
// Properties: no crash; a parsed challenge survives serialize/deserialize;
// the Authorization we build for it parses back and verifies (MD5).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "registrar/registration/digest_auth.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake::registrar;

namespace {

void checkAnswer(const DigestChallenge& c, FuzzedDataProvider& in) {
  std::string username = in.ConsumeRandomLengthString(64);
  std::string password = in.ConsumeRandomLengthString(64);
  std::string uri = in.ConsumeRandomLengthString(128);
  std::string cnonce = in.ConsumeRandomLengthString(32);
  DigestInput input;
  input.username = username;
  input.password = password;
  input.method = "REGISTER";
  input.uri = uri;
  input.cnonce = cnonce;
  input.nonce_count = in.ConsumeIntegral<unsigned>();
  std::string header = buildDigestAuthorization(c, input);
  auto parsed = parseDigestAuthorization(header);
  if (username.empty() || uri.empty()) return;  // not a complete answer by design
  FUZZ_CHECK(parsed.has_value());
  FUZZ_CHECK(parsed->username == username && parsed->realm == c.realm &&
             parsed->nonce == c.nonce && parsed->uri == uri);
  bool plain_md5 = c.algorithm == "MD5" || c.algorithm == "md5";
  bool answerable = c.qop_auth || !c.qop_auth_int;
  if (plain_md5 && answerable && (!c.qop_auth || !cnonce.empty())) {
    std::string ha1 = digestHa1(c, username, password);
    FUZZ_CHECK(verifyDigestResponse(*parsed, "REGISTER", ha1));
    FUZZ_CHECK(!verifyDigestResponse(*parsed, "INVITE", ha1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const bool proxy = in.ConsumeBool();
  std::string header = in.ConsumeRandomLengthString(2048);

  if (auto c = parseDigestChallenge(header, proxy)) {
    FUZZ_CHECK(c->proxy == proxy && !c->nonce.empty() && digestAlgorithmRank(c->algorithm) > 0);
    std::string stored = serializeChallenge(*c);
    if (!stored.empty()) {
      auto back = deserializeChallenge(stored);
      FUZZ_CHECK(back.has_value());
      FUZZ_CHECK(back->proxy == c->proxy && back->realm == c->realm && back->nonce == c->nonce &&
                 back->opaque == c->opaque && back->algorithm == c->algorithm &&
                 back->qop_auth == c->qop_auth && back->qop_auth_int == c->qop_auth_int);
    }
    if (!c->realm.empty()) checkAnswer(*c, in);
  }
  if (auto c = deserializeChallenge(header)) (void)buildDigestAuthorization(*c, DigestInput{});
  if (auto a = parseDigestAuthorization(header)) {
    FUZZ_CHECK(!a->username.empty() && !a->realm.empty() && !a->nonce.empty());
    (void)verifyDigestResponse(*a, "REGISTER", "0123456789abcdef0123456789abcdef");
  }
  return 0;
}
