// Fuzzes the credential sealer, which guards every SIP password at rest:
// open() of whatever blob Redis hands back, the credential keys file
// parser, and sealing round trips.
// Properties: no crash; a blob we did not seal never opens; a sealed blob
// opens only with its binding's identity and, with one byte changed, not at
// all; a keys-file error never quotes the key.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/crypto/credential_sealer.h"
#include "common/crypto/random.h"
#include "common/util/encoding.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using sipwake::fuzz::contains;

namespace {

// Two keys generated per run: "new" seals, both open.
const crypto::CredentialSealer& sealer() {
  static const crypto::CredentialSealer s(
      {{"new", crypto::randomBytes(32)}, {"old", crypto::randomBytes(32)}});
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string identity = in.ConsumeRandomLengthString(64);
  const std::string text = in.ConsumeRandomLengthString(1024);
  const std::size_t flip = in.ConsumeIntegral<std::size_t>();
  const std::uint8_t mask = in.ConsumeIntegralInRange<std::uint8_t>(1, 255);
  const std::string blob = in.ConsumeRemainingBytesAsString();

  // A blob from storage: its key ids are ours but the key never sealed it.
  FUZZ_CHECK(!sealer().open(blob, identity).has_value());
  if (auto id = crypto::CredentialSealer::keyIdOf(blob)) FUZZ_CHECK(!id->empty());

  // Round trip, then tampering.
  std::string sealed = sealer().seal(text, identity);
  auto opened = sealer().open(sealed, identity);
  FUZZ_CHECK(opened.has_value() && opened->reveal() == text);
  FUZZ_CHECK(crypto::CredentialSealer::keyIdOf(sealed) == sealer().currentKeyId());
  FUZZ_CHECK(!sealer().open(sealed, identity + "x").has_value());
  std::string tampered = sealed;
  tampered[flip % tampered.size()] = static_cast<char>(tampered[flip % tampered.size()] ^ mask);
  FUZZ_CHECK(!sealer().open(tampered, identity).has_value());

  // The keys file: errors name the line, never the key.
  try {
    auto keys = crypto::parseSealingKeys(text);
    FUZZ_CHECK(!keys.empty());
    for (const auto& k : keys) FUZZ_CHECK(k.key.size() == 32);
  } catch (const std::invalid_argument& e) {
    std::string message = e.what();
    std::size_t at = 0;
    while (at < text.size()) {  // no second field of a line may show up
      std::size_t end = text.find('\n', at);
      std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
      at = end == std::string::npos ? text.size() : end + 1;
      auto space = line.find_first_of(" \t");
      if (space == std::string::npos) continue;
      std::string value = line.substr(line.find_first_not_of(" \t", space) == std::string::npos
                                          ? line.size()
                                          : line.find_first_not_of(" \t", space));
      value = value.substr(0, value.find_first_of(" \t\r\v\f"));
      if (value.size() >= 16) FUZZ_CHECK(!contains(message, value));
    }
  }
  return 0;
}
