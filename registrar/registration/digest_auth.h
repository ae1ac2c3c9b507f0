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

// A challenge in one line, to persist it (nothing in it is secret: the PBX
// sends it in clear), and back; empty / nullopt when it cannot be.
std::string serializeChallenge(const DigestChallenge& challenge);
std::optional<DigestChallenge> deserializeChallenge(std::string_view text);

// Of several challenges, the one we answer: RFC 8760 preference, strongest first.
int digestAlgorithmRank(const std::string& algorithm);

struct DigestInput {
  std::string_view username;
  std::string_view password;  // unused when ha1 is given
  std::string_view method;
  std::string_view uri;
  std::string_view body;  // for qop=auth-int
  unsigned nonce_count = 1;
  std::string_view cnonce;
  std::string_view ha1;  // digestHa1() for this challenge's realm and algorithm, if known
};

// H(username:realm:password) in hex for the challenge's hash (before any
// -sess step). It answers every challenge of the same realm and algorithm,
// so a refresh needs neither the password nor its decryption.
std::string digestHa1(const DigestChallenge& challenge, std::string_view username,
                      std::string_view password);

// The Authorization / Proxy-Authorization header value answering `challenge`.
std::string buildDigestAuthorization(const DigestChallenge& challenge, const DigestInput& input);

// The server side: an Authorization header as a client sent it.
struct DigestAuthorization {
  std::string username;
  std::string realm;
  std::string nonce;
  std::string uri;
  std::string response;
  std::string algorithm = "MD5";
  std::string qop;  // "", "auth"
  std::string nc;
  std::string cnonce;
};

// nullopt for other schemes or a missing username/realm/nonce/uri/response.
std::optional<DigestAuthorization> parseDigestAuthorization(std::string_view header_value);

// True when `a` is what a client knowing the password behind `ha1`
// (H(username:realm:password), MD5) computes for `method`. MD5 with qop
// auth or none; anything else is false. Compared in constant time.
bool verifyDigestResponse(const DigestAuthorization& a, std::string_view method, std::string_view ha1);

}  // namespace sipwake::registrar
