#include "pushgw/provider/fcm/fcm_service_account.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/config/key_file.h"
#include "common/crypto/hash.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("service account: " + what);
}

std::string& requiredString(Json& doc, const char* field) {
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) bad(std::string("missing field '") + field + "'");
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    bad(std::string("field '") + field + "' must be a non-empty string");
  }
  return it->get_ref<std::string&>();
}

}  // namespace

FcmServiceAccount parseServiceAccount(std::string_view json) {
  Json doc;
  try {
    doc = Json::parse(json);
  } catch (const Json::parse_error& e) {
    // e.what() quotes the text around the error: possibly the key.
    bad("not valid JSON (error at byte " + std::to_string(e.byte) + ")");
  } catch (const Json::exception&) {
    // A number too large for a double is out_of_range, not parse_error.
    bad("not valid JSON (a number out of range)");
  }
  if (!doc.is_object()) bad("not a JSON object");
  auto type = doc.find("type");
  if (type != doc.end() && (!type->is_string() || type->get<std::string>() != "service_account")) {
    bad("field 'type' must be \"service_account\"");
  }

  FcmServiceAccount account;
  account.project_id = requiredString(doc, "project_id");
  account.client_email = requiredString(doc, "client_email");
  if (account.client_email.find('@') == std::string::npos) {
    bad("field 'client_email' is not an e-mail address");
  }
  account.token_uri = requiredString(doc, "token_uri");
  if (account.token_uri.rfind("https://", 0) != 0) bad("field 'token_uri' must be an https URL");
  auto key_id = doc.find("private_key_id");
  if (key_id != doc.end() && key_id->is_string())
    account.private_key_id = key_id->get<std::string>();

  std::string& pem = requiredString(doc, "private_key");
  account.private_key = crypto::Secret(std::move(pem));
  crypto::wipe(pem);
  try {
    account.key = crypto::loadPrivateKeyPem(account.private_key.reveal());
  } catch (const std::invalid_argument&) {
    bad("field 'private_key' is not a valid PEM private key");
  }
  if (!crypto::isRsaKey(account.key.get())) {
    bad("field 'private_key' is not an RSA key of at least 2048 bits");
  }
  return account;
}

FcmServiceAccount loadServiceAccountFile(const std::string& path) {
  std::string text = config::readSecretFile(path, "service account", /*private_only=*/true);
  try {
    auto account = parseServiceAccount(text);
    crypto::wipe(text);
    return account;
  } catch (const std::invalid_argument& e) {
    crypto::wipe(text);
    throw std::invalid_argument(path + ": " + e.what());
  }
}

}  // namespace sipwake::pushgw
