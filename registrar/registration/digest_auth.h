#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sipwake::registrar {

// A Digest challenge from a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate).
struct DigestChallenge {
  bool proxy = false;  // answer with Proxy-Authorization
  std::string realm;
  std::string nonce;
  std::string opaque;
  std::string algorithm = "MD5";  // MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256(-sess)
  bool qop_auth = false;
  bool qop_auth_int = false;
  bool stale = false;
};

// Parses a challenge header value ("Digest realm=\"x\", nonce=...").
// nullopt for other schemes, a missing realm/nonce or an algorithm we lack.
std::optional<DigestChallenge> parseDigestChallenge(std::string_view header_value, bool proxy);

// Of several challenges, the one we answer: RFC 8760 preference, strongest first.
int digestAlgorithmRank(const std::string& algorithm);

struct DigestInput {
  std::string_view username;
  std::string_view password;
  std::string_view method;
  std::string_view uri;
  std::string_view body;  // for qop=auth-int
  unsigned nonce_count = 1;
  std::string_view cnonce;
};

// The Authorization / Proxy-Authorization header value answering `challenge`.
std::string buildDigestAuthorization(const DigestChallenge& challenge, const DigestInput& input);

}  // namespace sipwake::registrar
