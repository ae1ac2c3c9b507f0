#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/secret.h"

namespace sipwake::crypto {

// One AES-256 key with the id written into every ciphertext it seals.
struct SealingKey {
  std::string id;
  std::string key;  // 32 raw bytes
};

// Parses "key-id base64(32 bytes)" lines ('#' comments, blank lines skipped).
// Throws std::invalid_argument naming the line, never its key material.
std::vector<SealingKey> parseSealingKeys(std::string_view text);
// Reads and parses a keys file; refuses files that other users can read.
std::vector<SealingKey> loadSealingKeysFile(const std::string& path);

// AES-256-GCM sealing of credentials at rest. The first key seals, every key
// opens, so keys can be rotated: add a new first line, re-seal, drop the old.
// Blob layout: 0x01 | len(id) | id | iv[12] | ciphertext | tag[16]; the
// version byte and key id are authenticated together with the caller's
// associated data (the binding's identity), so a blob cannot be moved to
// another binding.
// Thread-safe: the keys can be replaced at run time (key rotation) while
// other threads seal and open.
class CredentialSealer {
 public:
  explicit CredentialSealer(std::vector<SealingKey> keys);
  CredentialSealer(const CredentialSealer&) = delete;
  CredentialSealer& operator=(const CredentialSealer&) = delete;
  CredentialSealer(CredentialSealer&& other) noexcept;

  std::string seal(std::string_view plaintext, std::string_view associated_data) const;
  // nullopt when the blob is malformed, its key is unknown, or it was tampered with.
  std::optional<Secret> open(std::string_view blob, std::string_view associated_data) const;
  // The key id a blob was sealed with, if the blob is well formed.
  static std::optional<std::string> keyIdOf(std::string_view blob);
  std::string currentKeyId() const;
  // Every key id that opens, the sealing one first.
  std::vector<std::string> keyIds() const;

  // Key rotation without downtime: `keys` (a re-read keys file) become the
  // keys, its first one seals from now on. A key that was known but is not
  // in `keys` stays usable for opening until the process restarts, so blobs
  // still held in memory (or not yet re-sealed by another instance) keep
  // working; returns the ids of those retired keys.
  // Throws std::invalid_argument like the constructor.
  std::vector<std::string> replaceKeys(std::vector<SealingKey> keys);

 private:
  using Keys = std::vector<SealingKey>;
  std::shared_ptr<const Keys> snapshot() const;
  static const SealingKey* find(const Keys& keys, std::string_view id);
  mutable std::mutex mutex_;
  std::shared_ptr<const Keys> keys_;
};

}  // namespace sipwake::crypto
