#include "common/util/redact.h"

#include <catch2/catch.hpp>

#include "registrar/registration/digest_auth.h"

using namespace sipwake;

TEST_CASE("redactDigest hides response, nonce and cnonce of an Authorization we build", "[redact]") {
  auto challenge = registrar::parseDigestChallenge(
      "Digest realm=\"pbx.test\", nonce=\"n0nce-SECRET-1\", qop=\"auth\", opaque=\"op1\"", false);
  REQUIRE(challenge);
  std::string ha1 = registrar::digestHa1(*challenge, "1000", "s3cret-password");
  registrar::DigestInput in{"1000", "", "REGISTER", "sip:pbx.test", "", 1, "cnonce-SECRET-2", ha1};
  std::string header = registrar::buildDigestAuthorization(*challenge, in);
  REQUIRE(header.find("n0nce-SECRET-1") != std::string::npos);

  std::string redacted = redactDigest(header);
  CHECK(redacted.find("n0nce-SECRET-1") == std::string::npos);
  CHECK(redacted.find("cnonce-SECRET-2") == std::string::npos);
  CHECK(redacted.find("s3cret-password") == std::string::npos);
  // The response digest is 32 hex characters: none of it is left.
  auto pos = header.find("response=\"");
  REQUIRE(pos != std::string::npos);
  std::string response = header.substr(pos + 10, 32);
  CHECK(redacted.find(response) == std::string::npos);
  CHECK(redacted.find("response=\"…\"") != std::string::npos);
  CHECK(redacted.find("nonce=\"…\"") != std::string::npos);
  CHECK(redacted.find("cnonce=\"…\"") != std::string::npos);
  // What a reader needs stays.
  CHECK(redacted.find("username=\"1000\"") != std::string::npos);
  CHECK(redacted.find("realm=\"pbx.test\"") != std::string::npos);
  CHECK(redacted.find("uri=\"sip:pbx.test\"") != std::string::npos);
  CHECK(redacted.find("nc=00000001") != std::string::npos);
  CHECK(redacted.rfind("Digest ", 0) == 0);
}

TEST_CASE("redactDigest: unquoted values, any case, and look-alikes inside quotes", "[redact]") {
  CHECK(redactDigest("Digest Response=abc123, NONCE=xyz, nc=00000002") ==
        "Digest Response=…, NONCE=…, nc=00000002");
  CHECK(redactDigest("Digest realm=\"nonce=looks-like\", nonce = \"real\"") ==
        "Digest realm=\"nonce=looks-like\", nonce = \"…\"");
  CHECK(redactDigest("Digest nonce=\"with \\\" quote\", algorithm=MD5") ==
        "Digest nonce=\"…\", algorithm=MD5");
  CHECK(redactDigest("nextnonce=\"n2\", rspauth=\"r1\", qop=auth") ==
        "nextnonce=\"…\", rspauth=\"…\", qop=auth");
  // Unterminated input never reads past the end.
  CHECK(redactDigest("Digest nonce=\"open") == "Digest nonce=\"…\"");
  CHECK(redactDigest("Digest response=") == "Digest response=…");
  CHECK(redactDigest("") == "");
  // Names that merely contain a secret's name are not secrets.
  CHECK(redactDigest("Digest nonces=1, xresponse=2") == "Digest nonces=1, xresponse=2");
}

TEST_CASE("shortenToken keeps 8 characters, never a short token whole", "[redact]") {
  CHECK(shortenToken("a1b2c3d4e5f60718") == "a1b2c3d4…");
  CHECK(shortenToken("short") == "…");
  CHECK(shortenToken("12345678") == "…");
}
