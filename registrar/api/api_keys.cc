#include "registrar/api/api_keys.h"

#include <stdexcept>

#include "common/config/key_file.h"
#include "common/crypto/hash.h"
#include "common/util/encoding.h"
#include "registrar/binding/binding_request.h"

namespace sipwake::registrar {

ApiKeyRing ApiKeyRing::parse(std::string_view text) {
  ApiKeyRing ring;
  for (auto& line : config::parseKeyFileLines(text, "API keys")) {
    std::string where = "API keys line " + std::to_string(line.line_no);
    if (!validTenantName(line.name)) {
      throw std::invalid_argument(where + ": tenant must be 1-64 of [A-Za-z0-9_-]");
    }
    std::string digest;
    if (line.value.rfind("sha256:", 0) == 0) {
      auto raw = hexDecode(line.value.substr(7));
      if (!raw || raw->size() != 32) {
        throw std::invalid_argument(where + ": sha256: must be followed by 64 hex digits");
      }
      digest = *raw;
    } else {
      if (line.value.size() < 16) {
        throw std::invalid_argument(where + ": keys must be at least 16 characters");
      }
      digest = crypto::sha256(line.value);
    }
    crypto::wipe(line.value);
    ring.entries_.push_back({line.name, digest});
  }
  return ring;
}

ApiKeyRing ApiKeyRing::loadFile(const std::string& path) {
  std::string text = config::readSecretFile(path, "API keys", /*private_only=*/false);
  try {
    auto ring = parse(text);
    crypto::wipe(text);
    return ring;
  } catch (const std::invalid_argument& e) {
    crypto::wipe(text);
    throw std::invalid_argument(path + ": " + e.what());
  }
}

std::optional<std::string> ApiKeyRing::authenticate(std::string_view bearer_token) const {
  auto match = identify(bearer_token);
  if (!match) return std::nullopt;
  return std::move(match->tenant);
}

std::optional<ApiKeyRing::Match> ApiKeyRing::identify(std::string_view bearer_token) const {
  // Digests of equal length are compared, so the comparison time does not
  // depend on the presented key's length either.
  std::string digest = crypto::sha256(bearer_token);
  std::optional<Match> match;
  // No early exit: the time taken does not depend on which entry matched.
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (crypto::constantTimeEqual(digest, entries_[i].digest) && !match) {
      match = Match{entries_[i].tenant, i};
    }
  }
  return match;
}

}  // namespace sipwake::registrar
