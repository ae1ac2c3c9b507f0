// Fuzzes the loading of an FCM service-account JSON key (and the PEM keys
// in it). A "private_key" of "GENERATED_RSA" or "GENERATED_EC" is replaced
// by a key made at start-up, so the fuzzer reaches the checks after the key
// without any key in the seeds.
// Properties: no crash; errors are std::invalid_argument and never quote
// the key; an accepted account is complete (RSA >= 2048, e-mail, https).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pushgw/provider/fcm/fcm_service_account.h"
#include "tests/common/crypto/test_keys.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::fuzz::contains;

namespace {

struct Keys {
  std::string rsa = testing::privateKeyPem(testing::sharedRsaKey().get());
  std::string ec = testing::privateKeyPem(testing::generateEcP256Key().get());
  // What an error must never quote.
  std::string rsa_line = fuzz::keyExcerpt(rsa);
  std::string ec_line = fuzz::keyExcerpt(ec);
};

void check(std::string_view text, const Keys& keys) {
  try {
    FcmServiceAccount account = parseServiceAccount(text);
    FUZZ_CHECK(!account.project_id.empty());
    FUZZ_CHECK(account.client_email.find('@') != std::string::npos);
    FUZZ_CHECK(account.token_uri.rfind("https://", 0) == 0);
    FUZZ_CHECK(crypto::isRsaKey(account.key.get()));
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(!contains(e.what(), keys.rsa_line) && !contains(e.what(), keys.ec_line));
  }
  // The PEM loaders on their own.
  try {
    (void)crypto::loadPrivateKeyPem(text);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(!contains(e.what(), keys.rsa_line) && !contains(e.what(), keys.ec_line));
  }
  try {
    (void)crypto::loadPublicKeyPem(text);
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Keys keys;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (contains(text, keys.rsa_line) || contains(text, keys.ec_line)) return 0;  // learned, may echo
  check(text, keys);
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_object() && doc.contains("private_key") && doc["private_key"].is_string()) {
    auto placeholder = doc["private_key"].get<std::string>();
    if (placeholder == "GENERATED_RSA" || placeholder == "GENERATED_EC") {
      doc["private_key"] = placeholder == "GENERATED_RSA" ? keys.rsa : keys.ec;
      check(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), keys);
    }
  }
  return 0;
}
