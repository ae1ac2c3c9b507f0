// Fuzzes the pushgw apps file (PUSHGW_APPS_FILE): the JSON, its https URLs
// and the key files it names. Key files are generated at start-up in a
// private temporary directory: "apns.p8" (P-256), "fcm.json" (a service
// account with an RSA key), "open.p8" (readable by others: must be refused),
// "ca.pem"; inputs naming other paths are skipped, so the fuzzer reads no
// file of the machine.
// Properties: no crash; errors are std::invalid_argument naming no key
// material; an accepted registry has a usable key and URL per app.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pushgw/provider/app_registry.h"
#include "tests/common/crypto/test_keys.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::fuzz::contains;

namespace {

struct Files {
  std::string dir;
  std::string ec = testing::privateKeyPem(testing::generateEcP256Key().get());
  std::string rsa = testing::privateKeyPem(testing::sharedRsaKey().get());
  std::string ec_line = fuzz::keyExcerpt(ec);
  std::string rsa_line = fuzz::keyExcerpt(rsa);

  Files() {
    char pattern[] = "/tmp/sipwake-fuzz-apps-XXXXXX";
    if (!mkdtemp(pattern)) std::abort();
    dir = pattern;
    write("apns.p8", ec, 0600);
    write("open.p8", ec, 0644);
    nlohmann::json account = {{"type", "service_account"},
                              {"project_id", "fuzz-project"},
                              {"private_key_id", "fuzz"},
                              {"private_key", rsa},
                              {"client_email", "fuzz@fuzz-project.iam.gserviceaccount.com"},
                              {"token_uri", "https://oauth2.example/token"}};
    write("fcm.json", account.dump(), 0600);
    write("ca.pem", "not checked here\n", 0644);
  }
  ~Files() {
    for (const char* name : {"apns.p8", "open.p8", "fcm.json", "ca.pem"}) {
      unlink((dir + "/" + name).c_str());
    }
    rmdir(dir.c_str());
  }
  void write(const char* name, const std::string& text, mode_t mode) {
    std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
  }
};

// True when every string of the document that could be a path is a plain
// name in the key directory.
bool onlyLocalNames(const nlohmann::json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return s.rfind("https://", 0) == 0 || s.rfind("HTTPS://", 0) == 0 ||
           (s.find('/') == std::string::npos && s != "." && s != "..");
  }
  if (j.is_structured()) {
    for (const auto& [key, value] : j.items()) {
      if (!onlyLocalNames(value)) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Files files;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_discarded() && !onlyLocalNames(doc)) return 0;
  try {
    AppRegistry registry = AppRegistry::parse(text, files.dir);
    FUZZ_CHECK(!registry.apnsApps().empty() || !registry.fcmApps().empty());
    for (const auto& a : registry.apnsApps()) {
      FUZZ_CHECK(crypto::isEcP256Key(a.key.get()) && !a.url.host.empty());
      FUZZ_CHECK(registry.apnsUrl(a.app, "sandbox").has_value());
      (void)a.url.authority();
    }
    for (const auto& f : registry.fcmApps()) {
      FUZZ_CHECK(crypto::isRsaKey(f.account.key.get()) && !f.url.host.empty());
      (void)f.token_url.toString();
    }
  } catch (const std::invalid_argument& e) {
    if (!contains(text, files.ec_line) && !contains(text, files.rsa_line)) {
      FUZZ_CHECK(!contains(e.what(), files.ec_line) && !contains(e.what(), files.rsa_line));
    }
  }
  // The URL parser on its own.
  try {
    HttpsUrl url = parseHttpsUrl(text);
    FUZZ_CHECK(!url.host.empty() && url.port >= 1 && url.port <= 65535);
    FUZZ_CHECK(parseHttpsUrl(url.toString()) == url);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
