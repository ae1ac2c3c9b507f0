// A service-account key file shaped like the ones Google's console hands out.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tests/common/crypto/test_keys.h"

namespace sipwake::testing {

inline nlohmann::json serviceAccountJson(
    const std::string& private_key_pem,
    const std::string& token_uri = "https://oauth2.googleapis.com/token") {
  return {
      {"type", "service_account"},
      {"project_id", "example-project"},
      {"private_key_id", "0123456789abcdef0123456789abcdef01234567"},
      {"private_key", private_key_pem},
      {"client_email", "pushgw@example-project.iam.gserviceaccount.com"},
      {"client_id", "112233445566778899001"},
      {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
      {"token_uri", token_uri},
      {"auth_provider_x509_cert_url", "https://www.googleapis.com/oauth2/v1/certs"},
      {"client_x509_cert_url",
       "https://www.googleapis.com/robot/v1/metadata/x509/"
       "pushgw%40example-project.iam.gserviceaccount.com"},
      {"universe_domain", "googleapis.com"},
  };
}

inline std::string sharedRsaKeyPem() {
  static const std::string pem = privateKeyPem(sharedRsaKey().get());
  return pem;
}

}  // namespace sipwake::testing
