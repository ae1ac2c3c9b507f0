#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sipwake::registrar {

// Tenant API keys, held only as SHA-256 digests. The file has lines
// "tenant key" or "tenant sha256:<hex>"; '#' starts a comment.
class ApiKeyRing {
 public:
  ApiKeyRing() = default;
  static ApiKeyRing parse(std::string_view text);  // throws std::invalid_argument
  static ApiKeyRing loadFile(const std::string& path);

  // The tenant owning the bearer token, comparing every digest in constant time.
  std::optional<std::string> authenticate(std::string_view bearer_token) const;
  // The same, with which key matched (its index: rate limits are per key).
  struct Match {
    std::string tenant;
    std::size_t key_index = 0;
  };
  std::optional<Match> identify(std::string_view bearer_token) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string tenant;
    std::string digest;  // raw SHA-256 of the key
  };
  std::vector<Entry> entries_;
};

}  // namespace sipwake::registrar
