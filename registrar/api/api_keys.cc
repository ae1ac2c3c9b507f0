#include "registrar/api/api_keys.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/crypto/hash.h"
#include "common/util/encoding.h"
#include "registrar/binding/binding_request.h"

namespace sipwake::registrar {

ApiKeyRing ApiKeyRing::parse(std::string_view text) {
  ApiKeyRing ring;
  std::istringstream in{std::string(text)};
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    std::string tenant, key, extra;
    fields >> tenant >> key >> extra;
    std::string where = "API keys line " + std::to_string(line_no);
    if (key.empty() || !extra.empty()) throw std::invalid_argument(where + ": expected 'tenant key'");
    if (!validTenantName(tenant)) {
      throw std::invalid_argument(where + ": tenant must be 1-64 of [A-Za-z0-9_-]");
    }
    std::string digest;
    if (key.rfind("sha256:", 0) == 0) {
      auto raw = hexDecode(key.substr(7));
      if (!raw || raw->size() != 32) {
        throw std::invalid_argument(where + ": sha256: must be followed by 64 hex digits");
      }
      digest = *raw;
    } else {
      if (key.size() < 16) throw std::invalid_argument(where + ": keys must be at least 16 characters");
      digest = crypto::sha256(key);
      crypto::wipe(key);
    }
    ring.entries_.push_back({tenant, digest});
  }
  return ring;
}

ApiKeyRing ApiKeyRing::loadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read API keys file '" + path + "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
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
  std::string digest = crypto::sha256(bearer_token);
  std::optional<std::string> tenant;
  // No early exit: the time taken does not depend on which entry matched.
  for (const auto& e : entries_) {
    if (crypto::constantTimeEqual(digest, e.digest) && !tenant) tenant = e.tenant;
  }
  return tenant;
}

}  // namespace sipwake::registrar
