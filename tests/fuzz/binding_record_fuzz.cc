// Fuzzes what the registrar reads back from Redis: a binding's hash fields,
// as the engine loads them at start-up (BindingStore::toLoaded, then the
// persisted Digest challenge and the sealed credential), and as GET
// /v1/bindings/{id} shows them (bindingView, its device JSON included).
// Input: "name=value" lines, one field each.
// Properties: no crash, no exception; a loaded binding is complete; the view
// serializes (it goes out as the API's answer).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/crypto/credential_sealer.h"
#include "common/crypto/random.h"
#include "common/http/http_message.h"
#include "registrar/api/binding_view.h"
#include "registrar/binding/binding_store.h"
#include "registrar/registration/digest_auth.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::registrar;

namespace {

BindingFields parseFields(std::string_view text) {
  BindingFields fields;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    fields[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return fields;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const crypto::CredentialSealer sealer({{"fuzz", crypto::randomBytes(32)}});
  static const bool quiet = (fuzz::captureLogs(), true);
  (void)quiet;
  fuzz::loggedText().clear();

  BindingFields fields = parseFields(std::string_view(reinterpret_cast<const char*>(data), size));

  if (auto loaded = BindingStore::toLoaded(fields)) {
    const RegistrationSpec& spec = loaded->spec;
    FUZZ_CHECK(spec.key != "/" && !spec.sealed_password.empty() && !spec.contact_user.empty() &&
               !spec.call_id.empty() && !spec.destination.empty());
    FUZZ_CHECK(loaded->resume.state != RegistrationState::Failed &&
               loaded->resume.state != RegistrationState::Unregistered);
    if (auto challenge = deserializeChallenge(loaded->resume.challenge)) {
      (void)digestHa1(*challenge, spec.auth_username, "fuzz");
    }
    (void)crypto::CredentialSealer::keyIdOf(spec.sealed_password);
    FUZZ_CHECK(!sealer.open(spec.sealed_password, spec.key).has_value());  // never sealed here
  }

  nlohmann::json view = bindingView(fields, 1'700'000'000'000);
  std::string text = http::jsonResponse(200, view).body;  // as RegistrarApi answers GET
  FUZZ_CHECK(nlohmann::json::accept(text));
  return 0;
}
