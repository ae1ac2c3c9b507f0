#include "registrar/registration/digest_auth.h"

#include <catch2/catch.hpp>

using namespace sipwake::registrar;

namespace {
std::string field(const std::string& header, const std::string& name) {
  auto pos = header.find(name + "=");
  REQUIRE(pos != std::string::npos);
  pos += name.size() + 1;
  bool quoted = header[pos] == '"';
  if (quoted) ++pos;
  auto end = header.find(quoted ? "\"" : ",", pos);
  return header.substr(pos, end - pos);
}
}  // namespace

TEST_CASE("digest response matches RFC 2617 section 3.5", "[digest]") {
  auto c = parseDigestChallenge(
      "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
      false);
  REQUIRE(c);
  CHECK(c->qop_auth);
  CHECK(c->qop_auth_int);
  DigestInput in{"Mufasa", "Circle Of Life", "GET", "/dir/index.html", "", 1, "0a4f113b", ""};
  auto header = buildDigestAuthorization(*c, in);
  CHECK(field(header, "response") == "6629fae49393a05397450978507c4ef1");
  CHECK(field(header, "opaque") == "5ccc069c403ebaf9f0171e9517f40e41");
  CHECK(field(header, "qop") == "auth");
  CHECK(field(header, "nc") == "00000001");
}

TEST_CASE("digest response matches RFC 7616 section 3.9.1 for SHA-256 and MD5", "[digest]") {
  const std::string params =
      "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", "
      "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", "
      "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
  DigestInput in{"Mufasa", "Circle of Life", "GET", "/dir/index.html", "", 1,
                 "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ""};
  auto sha = parseDigestChallenge("Digest " + params + ", algorithm=SHA-256", false);
  REQUIRE(sha);
  CHECK(field(buildDigestAuthorization(*sha, in), "response") ==
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  auto md5 = parseDigestChallenge("Digest " + params + ", algorithm=MD5", false);
  REQUIRE(md5);
  CHECK(field(buildDigestAuthorization(*md5, in), "response") ==
        "8ca523f5e9506fed4657c9700eebdbec");
  CHECK(digestAlgorithmRank("SHA-256") > digestAlgorithmRank("MD5"));
}

TEST_CASE("digest challenge parsing rejects what cannot be answered", "[digest]") {
  CHECK_FALSE(parseDigestChallenge("Basic realm=\"x\"", false));
  CHECK_FALSE(parseDigestChallenge("Digest nonce=\"n\"", false));
  CHECK_FALSE(parseDigestChallenge("Digest realm=\"r\"", false));
  CHECK_FALSE(parseDigestChallenge("Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5", false));
  CHECK_FALSE(parseDigestChallenge("Digest realm=\"r, nonce=\"n\"", false));
  CHECK_FALSE(parseDigestChallenge("", false));
  auto stale = parseDigestChallenge("digest REALM=r,NONCE=\"n\",stale=TRUE", true);
  REQUIRE(stale);
  CHECK(stale->stale);
  CHECK(stale->proxy);
  CHECK(stale->realm == "r");
}

TEST_CASE("digest header quotes user names with quotes", "[digest]") {
  auto c = parseDigestChallenge("Digest realm=\"r\", nonce=\"n\"", false);
  DigestInput in{"a\"b", "p", "REGISTER", "sip:x", "", 1, "c", ""};
  auto header = buildDigestAuthorization(*c, in);
  CHECK(header.find("username=\"a\\\"b\"") != std::string::npos);
  CHECK(header.find("qop=") == std::string::npos);  // RFC 2069 style when no qop offered
}
