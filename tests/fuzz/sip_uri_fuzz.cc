// Fuzzes the SIP URI parser API clients reach with "aor" and "registrar":
// no crash, and what it accepts prints back to a URI that parses the same.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "registrar/binding/sip_uri.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake::registrar;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  SipUriError error;
  auto uri = parseSipUri(text, &error);
  if (!uri) {
    FUZZ_CHECK(!error.message.empty());
    return 0;
  }
  FUZZ_CHECK(!uri->host.empty());
  FUZZ_CHECK(uri->port >= 0 && uri->port <= 65535);
  FUZZ_CHECK(uri->transport(SipTransport::Tcp).has_value());
  (void)uri->hostPort();
  auto again = parseSipUri(uri->toString());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->toString() == uri->toString());
  FUZZ_CHECK(again->secure == uri->secure && again->user == uri->user &&
             again->host == uri->host && again->port == uri->port && again->params == uri->params);
  return 0;
}
