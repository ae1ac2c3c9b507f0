// Fuzzes the validation of PUT /v1/bindings/{id} bodies on its own (the
// http_api target reaches it too, behind the HTTP parser and routing).
// Properties: no crash; what passes is within the documented limits and
// yields a REGISTER destination and Request-URI that parse as SIP URIs; the
// password never appears in an error message.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/crypto/random.h"
#include "registrar/binding/binding_request.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::fuzz::contains;

namespace {

void check(std::string_view body, const std::string& secret) {
  ExpiresLimits limits;
  ValidationError error;
  auto request = parseBindingRequest(body, limits, error);
  if (!request) {
    FUZZ_CHECK(!error.code.empty() && !error.message.empty());
    FUZZ_CHECK(!contains(error.message, secret) && !contains(error.code, secret));
    return;
  }
  FUZZ_CHECK(!request->aor.user.empty() && !request->aor.host.empty());
  FUZZ_CHECK(request->expires >= limits.min && request->expires <= limits.max);
  FUZZ_CHECK(!request->devices.empty() && request->devices.size() <= 10);
  std::set<std::string> ids;
  for (const auto& d : request->devices) {
    FUZZ_CHECK(ids.insert(d.id).second);
    FUZZ_CHECK(d.provider == "apns" || d.provider == "fcm");
    FUZZ_CHECK(!d.token.empty() && !d.app.empty());
  }
  FUZZ_CHECK(!request->password.empty() && !request->username.empty());
  FUZZ_CHECK(parseSipUri(destinationOf(*request)).has_value());
  FUZZ_CHECK(parseSipUri(requestUriOf(request->aor)).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string canary = "pw-" + crypto::randomToken(120);  // never in an input
  std::string_view body(reinterpret_cast<const char*>(data), size);
  // libFuzzer learns the canary from the comparisons; once an input carries
  // it, it may be echoed (as a device id), which is fine.
  if (contains(body, canary)) return 0;
  check(body, canary);
  // The same body with the canary as its password.
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object() && doc.contains("auth") && doc["auth"].is_object()) {
    doc["auth"]["password"] = canary;
    check(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), canary);
  }
  return 0;
}
