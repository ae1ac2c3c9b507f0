#include "pushgw/provider/app_registry.h"

#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "tests/common/crypto/test_keys.h"
#include "tests/pushgw/provider/fcm/service_account_fixture.h"
#include "tests/support/process.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::testing::pemEnvelopeAround;
using Json = nlohmann::json;

namespace {

// A directory with the files an apps file refers to, keys chmod 600.
struct AppsDir {
  sipwake::testing::TempDir dir{"sipwake-apps"};
  crypto::EvpKey apns_key = sipwake::testing::generateEcP256Key();

  AppsDir() {
    writeSecret("AuthKey_KEY1234567.p8", sipwake::testing::privateKeyPem(apns_key.get()));
    writeSecret("service-account.json",
                sipwake::testing::serviceAccountJson(sipwake::testing::sharedRsaKeyPem(),
                                                     "https://127.0.0.1:8444/token")
                    .dump(2));
    sipwake::testing::writeFile(dir.file("ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  }

  void writeSecret(const std::string& name, const std::string& content) const {
    sipwake::testing::writeFile(dir.file(name), content);
    chmod(dir.file(name).c_str(), 0600);
  }

  static Json apnsEntry() {
    return {{"app", "com.example.talk"},
            {"provider", "apns"},
            {"team_id", "ABCDE12345"},
            {"key_id", "KEY1234567"},
            {"key_file", "AuthKey_KEY1234567.p8"},
            {"url", "https://api.push.apple.com"},
            {"sandbox_url", "https://api.sandbox.push.apple.com"},
            {"ca_file", nullptr}};
  }
  static Json fcmEntry() {
    return {{"app", "example-project"},
            {"provider", "fcm"},
            {"service_account_file", "service-account.json"},
            {"url", "https://fcm.googleapis.com"},
            {"ca_file", nullptr}};
  }

  AppRegistry load(const Json& apps) const {
    std::string path = dir.file("apps.json");
    sipwake::testing::writeFile(path, apps.dump(2));
    return AppRegistry::loadFile(path);
  }
  std::string errorOf(const Json& apps) const {
    try {
      load(apps);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "<accepted>";
  }
  std::string errorOfEntry(const Json& entry) const { return errorOf({{"apps", {entry}}}); }
};

}  // namespace

TEST_CASE("apps file: the contract's example loads, with defaults and lookups", "[apps]") {
  AppsDir d;
  AppRegistry registry = d.load({{"apps", {AppsDir::apnsEntry(), AppsDir::fcmEntry()}}});

  const ApnsApp* apns = registry.apns("com.example.talk");
  REQUIRE(apns != nullptr);
  CHECK(apns->team_id == "ABCDE12345");
  CHECK(apns->key_id == "KEY1234567");
  CHECK(apns->key_file == d.dir.file("AuthKey_KEY1234567.p8"));  // relative to the apps file
  CHECK(apns->url == HttpsUrl{"api.push.apple.com", 443, ""});
  CHECK(apns->sandbox_url.host == "api.sandbox.push.apple.com");
  CHECK_FALSE(apns->ca_file);
  CHECK(crypto::isEcP256Key(apns->key.get()));
  CHECK(registry.apnsUrl("com.example.talk", "production")->host == "api.push.apple.com");
  CHECK(registry.apnsUrl("com.example.talk", "")->host == "api.push.apple.com");
  CHECK(registry.apnsUrl("com.example.talk", "sandbox")->host == "api.sandbox.push.apple.com");
  CHECK_FALSE(registry.apnsUrl("com.example.talk", "staging"));
  CHECK_FALSE(registry.apnsUrl("com.example.other", "production"));

  const FcmApp* fcm = registry.fcm("example-project");
  REQUIRE(fcm != nullptr);
  CHECK(fcm->url.toString() == "https://fcm.googleapis.com");
  CHECK(fcm->account.client_email == "pushgw@example-project.iam.gserviceaccount.com");
  CHECK(fcm->token_url == HttpsUrl{"127.0.0.1", 8444, "/token"});
  CHECK(crypto::isRsaKey(fcm->account.key.get()));

  // Lookups are by (provider, app).
  CHECK(registry.apns("example-project") == nullptr);
  CHECK(registry.fcm("com.example.talk") == nullptr);
  CHECK(registry.apnsApps().size() == 1);
  CHECK(registry.fcmApps().size() == 1);
}

TEST_CASE("apps file: urls and CA files for tests and staging", "[apps]") {
  AppsDir d;
  Json apns = AppsDir::apnsEntry();
  apns.erase("url");
  apns.erase("sandbox_url");
  apns["ca_file"] = "ca.pem";
  Json fcm = AppsDir::fcmEntry();
  fcm["url"] = "https://127.0.0.1:9443/fcm-mock/";
  fcm["ca_file"] = d.dir.file("ca.pem");
  // The same name may be an APNs bundle id and an FCM project.
  Json fcm_same_name = AppsDir::fcmEntry();
  fcm_same_name["app"] = "com.example.talk";
  AppRegistry registry = d.load({{"apps", {apns, fcm, fcm_same_name}}});
  CHECK(registry.apns("com.example.talk")->url.toString() == AppRegistry::kApnsProductionUrl);
  CHECK(registry.apns("com.example.talk")->sandbox_url.toString() == AppRegistry::kApnsSandboxUrl);
  CHECK(registry.apns("com.example.talk")->ca_file == d.dir.file("ca.pem"));
  CHECK(registry.fcm("example-project")->url == HttpsUrl{"127.0.0.1", 9443, "/fcm-mock"});
  CHECK(registry.fcm("example-project")->url.authority() == "127.0.0.1:9443");
  CHECK(registry.fcm("example-project")->ca_file == d.dir.file("ca.pem"));
  CHECK(registry.fcm("com.example.talk") != nullptr);
}

TEST_CASE("apps file: every mistake is named with its app and field", "[apps]") {
  AppsDir d;
  auto with = [](Json entry, const std::string& key, Json value) {
    entry[key] = std::move(value);
    return entry;
  };
  auto without = [](Json entry, const std::string& key) {
    entry.erase(key);
    return entry;
  };
  const Json apns = AppsDir::apnsEntry();
  const Json fcm = AppsDir::fcmEntry();
  const std::string a = "app 'com.example.talk' (apns): ";
  const std::string f = "app 'example-project' (fcm): ";

  CHECK_THAT(d.errorOfEntry(with(apns, "team", "X")), Catch::Contains(a + "unknown field 'team'"));
  CHECK_THAT(d.errorOfEntry(with(fcm, "key_file", "x.p8")),
             Catch::Contains(f + "unknown field 'key_file'"));
  CHECK_THAT(d.errorOfEntry(with(apns, "provider", "gcm")),
             Catch::Contains("field 'provider' must be \"apns\" or \"fcm\""));
  CHECK_THAT(d.errorOfEntry(without(apns, "provider")),
             Catch::Contains("field 'provider' is missing"));
  CHECK_THAT(d.errorOfEntry(without(apns, "app")),
             Catch::Contains("entry 1 (apns): field 'app' is missing"));
  CHECK_THAT(d.errorOfEntry(with(apns, "app", "com.example/talk")), Catch::Contains("field 'app'"));
  CHECK_THAT(d.errorOfEntry(without(apns, "team_id")),
             Catch::Contains(a + "field 'team_id' is missing"));
  CHECK_THAT(d.errorOfEntry(with(apns, "team_id", "abcde12345")),
             Catch::Contains(a + "field 'team_id' must be 10 characters"));
  CHECK_THAT(d.errorOfEntry(with(apns, "key_id", "KEY123")), Catch::Contains(a + "field 'key_id'"));
  CHECK_THAT(d.errorOfEntry(with(apns, "key_id", 1234567890)),
             Catch::Contains(a + "field 'key_id' must be a non-empty string"));
  CHECK_THAT(d.errorOfEntry(without(apns, "key_file")),
             Catch::Contains(a + "field 'key_file' is missing"));
  CHECK_THAT(d.errorOfEntry(with(apns, "key_file", "absent.p8")),
             Catch::Contains(a + "field 'key_file'") && Catch::Contains("cannot be read"));
  CHECK_THAT(d.errorOfEntry(with(apns, "url", "http://api.push.apple.com")),
             Catch::Contains(a + "field 'url'") && Catch::Contains("https"));
  CHECK_THAT(d.errorOfEntry(with(apns, "sandbox_url", 5)),
             Catch::Contains(a + "field 'sandbox_url'"));
  CHECK_THAT(d.errorOfEntry(with(apns, "ca_file", "absent.pem")),
             Catch::Contains(a + "field 'ca_file'") && Catch::Contains("not a readable file"));
  CHECK_THAT(d.errorOfEntry(with(fcm, "ca_file", d.dir.path())),
             Catch::Contains(f + "field 'ca_file'"));
  CHECK_THAT(d.errorOfEntry(without(fcm, "service_account_file")),
             Catch::Contains(f + "field 'service_account_file' is missing"));
  CHECK_THAT(d.errorOfEntry(with(fcm, "url", "https://fcm.googleapis.com:99999")),
             Catch::Contains(f + "field 'url'") && Catch::Contains("port"));
  CHECK_THAT(d.errorOf({{"apps", {apns, apns}}}), Catch::Contains(a + "is configured twice"));
  CHECK_THAT(d.errorOf({{"apps", {apns}}, {"version", 2}}),
             Catch::Contains("unknown field 'version'"));
  CHECK_THAT(d.errorOf({{"apps", Json::array()}}), Catch::Contains("'apps' is empty"));
  CHECK_THAT(d.errorOf({{"apps", {1}}}), Catch::Contains("entry 1 must be an object"));
  CHECK_THAT(d.errorOf(Json::object()), Catch::Contains("'apps' must be an array"));
  // Errors start with the file.
  CHECK_THAT(d.errorOf(Json::object()),
             Catch::StartsWith("apps file '" + d.dir.file("apps.json") + "'"));
  sipwake::testing::writeFile(d.dir.file("broken.json"), "{\"apps\": [");
  CHECK_THROWS_WITH(AppRegistry::loadFile(d.dir.file("broken.json")),
                    Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(AppRegistry::loadFile(d.dir.file("absent.json")),
                    Catch::Contains("cannot be read"));
}

TEST_CASE("apps file: key files are loaded, checked, and must be private", "[apps]") {
  AppsDir d;
  const std::string a = "app 'com.example.talk' (apns): field 'key_file'";
  const std::string f = "app 'example-project' (fcm): field 'service_account_file'";
  const Json apns_only = {{"apps", {AppsDir::apnsEntry()}}};
  const Json fcm_only = {{"apps", {AppsDir::fcmEntry()}}};

  SECTION("world-readable keys are refused") {
    chmod(d.dir.file("AuthKey_KEY1234567.p8").c_str(), 0644);
    CHECK_THAT(d.errorOf(apns_only),
               Catch::Contains(a) && Catch::Contains("readable by other users"));
    chmod(d.dir.file("service-account.json").c_str(), 0604);
    CHECK_THAT(d.errorOf(fcm_only),
               Catch::Contains(f) && Catch::Contains("readable by other users"));
  }
  SECTION("a .p8 that is not a key, and never its content in the error") {
    d.writeSecret("AuthKey_KEY1234567.p8", pemEnvelopeAround("SECRETSECRETSECRET"));
    std::string error = d.errorOf(apns_only);
    CHECK_THAT(error, Catch::Contains(a) && Catch::Contains("not a valid PEM private key"));
    CHECK(error.find("SECRETSECRET") == std::string::npos);
  }
  SECTION("a .p8 with the wrong kind of key") {
    d.writeSecret("AuthKey_KEY1234567.p8", sipwake::testing::sharedRsaKeyPem());
    CHECK_THAT(d.errorOf(apns_only), Catch::Contains(a) && Catch::Contains("not a P-256 EC key"));
  }
  SECTION("a service account with a field missing") {
    Json account = sipwake::testing::serviceAccountJson(sipwake::testing::sharedRsaKeyPem());
    account.erase("client_email");
    d.writeSecret("service-account.json", account.dump());
    CHECK_THAT(d.errorOf(fcm_only),
               Catch::Contains(f) && Catch::Contains("missing field 'client_email'"));
  }
  SECTION("a service account whose token_uri is not a usable URL") {
    Json account = sipwake::testing::serviceAccountJson(sipwake::testing::sharedRsaKeyPem(),
                                                        "https://oauth2.googleapis.com/token?x=1");
    d.writeSecret("service-account.json", account.dump());
    CHECK_THAT(d.errorOf(fcm_only), Catch::Contains(f) && Catch::Contains("token_uri"));
  }
}

TEST_CASE("https URLs: host, port, prefix and nothing else", "[apps]") {
  CHECK(parseHttpsUrl("https://api.push.apple.com") == HttpsUrl{"api.push.apple.com", 443, ""});
  CHECK(parseHttpsUrl("HTTPS://api.push.apple.com:2197/") ==
        HttpsUrl{"api.push.apple.com", 2197, ""});
  CHECK(parseHttpsUrl("https://127.0.0.1:8443/a/b//") == HttpsUrl{"127.0.0.1", 8443, "/a/b"});
  HttpsUrl v6 = parseHttpsUrl("https://[::1]:8443/mock");
  CHECK(v6 == HttpsUrl{"::1", 8443, "/mock"});
  CHECK(v6.authority() == "[::1]:8443");
  CHECK(v6.toString() == "https://[::1]:8443/mock");
  CHECK(parseHttpsUrl("https://[2001:db8::1]").authority() == "[2001:db8::1]");
  for (const char* bad : {"http://x", "x", "https://", "https://:443", "https://user@x",
                          "https://x?y=1", "https://x#f", "https://x:", "https://x:0",
                          "https://x:65536", "https://x:8a", "https://[::1", "https://[::1]x",
                          "https://[zz]", "https://x y", "https://x_y.com", "https://x/a b"}) {
    INFO(bad);
    CHECK_THROWS_AS(parseHttpsUrl(bad), std::invalid_argument);
  }
}

TEST_CASE("provider kinds", "[apps]") {
  CHECK(parseProviderKind("apns") == ProviderKind::Apns);
  CHECK(parseProviderKind("fcm") == ProviderKind::Fcm);
  CHECK_FALSE(parseProviderKind("APNS"));
  CHECK(std::string(toString(ProviderKind::Fcm)) == "fcm");
}
