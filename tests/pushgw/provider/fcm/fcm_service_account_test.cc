#include "pushgw/provider/fcm/fcm_service_account.h"

#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "tests/pushgw/provider/fcm/service_account_fixture.h"
#include "tests/support/process.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::testing::pemEnvelopeAround;
using sipwake::testing::serviceAccountJson;
using sipwake::testing::sharedRsaKeyPem;
using Json = nlohmann::json;

namespace {

std::string errorOf(const std::string& text) {
  try {
    parseServiceAccount(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<accepted>";
}

}  // namespace

TEST_CASE("service accounts: the fields FCM needs, the key parsed", "[fcm]") {
  auto account = parseServiceAccount(serviceAccountJson(sharedRsaKeyPem()).dump(2));
  CHECK(account.project_id == "example-project");
  CHECK(account.client_email == "pushgw@example-project.iam.gserviceaccount.com");
  CHECK(account.private_key_id == "0123456789abcdef0123456789abcdef01234567");
  CHECK(account.token_uri == "https://oauth2.googleapis.com/token");
  CHECK(account.private_key.reveal() == sharedRsaKeyPem());
  CHECK(crypto::isRsaKey(account.key.get()));
  Json minimal = serviceAccountJson(sharedRsaKeyPem());
  minimal.erase("type");
  minimal.erase("private_key_id");
  CHECK(parseServiceAccount(minimal.dump()).private_key_id.empty());
}

TEST_CASE("service accounts: errors name the field and never show the key", "[fcm]") {
  const std::string pem = sharedRsaKeyPem();
  for (const char* field : {"project_id", "client_email", "private_key", "token_uri"}) {
    INFO(field);
    Json doc = serviceAccountJson(pem);
    doc.erase(field);
    CHECK(errorOf(doc.dump()) == std::string("service account: missing field '") + field + "'");
    doc[field] = 42;
    CHECK_THAT(errorOf(doc.dump()), Catch::Contains(std::string("'") + field + "' must be"));
    doc[field] = "";
    CHECK_THAT(errorOf(doc.dump()), Catch::Contains(std::string("'") + field + "' must be"));
  }
  Json doc = serviceAccountJson(pem);
  doc["type"] = "authorized_user";
  CHECK_THAT(errorOf(doc.dump()), Catch::Contains("'type'"));
  doc = serviceAccountJson(pem);
  doc["token_uri"] = "http://oauth2.googleapis.com/token";
  CHECK_THAT(errorOf(doc.dump()), Catch::Contains("'token_uri'"));
  doc = serviceAccountJson(pem);
  doc["client_email"] = "pushgw";
  CHECK_THAT(errorOf(doc.dump()), Catch::Contains("'client_email'"));

  // A key that does not parse: the message names the field, not its text.
  std::string body = pem.substr(pem.find('\n') + 1, 40);
  doc = serviceAccountJson(pem);
  doc["private_key"] = pemEnvelopeAround(body);
  std::string error = errorOf(doc.dump());
  CHECK_THAT(error, Catch::Contains("'private_key' is not a valid PEM private key"));
  CHECK(error.find(body.substr(0, 20)) == std::string::npos);

  // An EC key is not what Google issues.
  doc["private_key"] = sipwake::testing::privateKeyPem(sipwake::testing::generateEcP256Key().get());
  CHECK_THAT(errorOf(doc.dump()), Catch::Contains("not an RSA key"));

  // Broken JSON: nlohmann's message would quote the text around the error.
  std::string broken = serviceAccountJson(pem).dump();
  broken.insert(broken.find("MII") + 10, "\\q");
  error = errorOf(broken);
  CHECK_THAT(error, Catch::Contains("not valid JSON"));
  CHECK(error.find("MII") == std::string::npos);
  CHECK(errorOf("[]") == "service account: not a JSON object");
}

TEST_CASE("service account files must not be readable by others", "[fcm]") {
  sipwake::testing::TempDir dir("sipwake-sa");
  std::string path = dir.file("service-account.json");
  sipwake::testing::writeFile(path, serviceAccountJson(sharedRsaKeyPem()).dump());
  chmod(path.c_str(), 0644);
  CHECK_THROWS_WITH(loadServiceAccountFile(path), Catch::Contains("readable by other users"));
  chmod(path.c_str(), 0600);
  CHECK(loadServiceAccountFile(path).project_id == "example-project");
  sipwake::testing::writeFile(path, "{}");
  CHECK_THROWS_WITH(loadServiceAccountFile(path),
                    Catch::Contains(path) && Catch::Contains("missing field 'project_id'"));
  CHECK_THROWS_WITH(loadServiceAccountFile(dir.file("absent.json")),
                    Catch::Contains("cannot be read"));
}

// Found by tests/fuzz/service_account: nlohmann reports a number too large
// for a double as out_of_range, not parse_error, so it escaped as another
// exception type than the std::invalid_argument callers catch.
TEST_CASE("service accounts: a number out of range is invalid JSON, not another exception", "[fcm]") {
  REQUIRE_THROWS_AS(parseServiceAccount(R"({"project_id": 1e999, "private_key": "x"})"),
                    std::invalid_argument);
  REQUIRE_THROWS_WITH(parseServiceAccount(R"({"project_id": 48E666})"),
                      Catch::Matchers::Contains("not valid JSON"));
}
