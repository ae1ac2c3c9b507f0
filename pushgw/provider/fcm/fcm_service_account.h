#pragma once

#include <string>
#include <string_view>

#include "common/crypto/jwt.h"
#include "common/crypto/secret.h"

namespace sipwake::pushgw {

// The fields of a Google service-account JSON key file that FCM HTTP v1 needs.
struct FcmServiceAccount {
  std::string project_id;
  std::string client_email;    // the "iss" of our OAuth2 assertions
  std::string private_key_id;  // optional; the "kid" of our assertions
  crypto::Secret private_key;  // PEM, as in the file
  std::string token_uri;       // where access tokens come from
  crypto::EvpKey key;          // private_key, parsed: an RSA key
};

// Throws std::invalid_argument naming the missing or bad field; messages never
// contain the key (nor JSON parser excerpts, which could).
FcmServiceAccount parseServiceAccount(std::string_view json);
// Reads and parses a service-account file; refuses one that other users can
// read. Errors name the file.
FcmServiceAccount loadServiceAccountFile(const std::string& path);

}  // namespace sipwake::pushgw
