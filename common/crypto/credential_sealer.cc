#include "common/crypto/credential_sealer.h"

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

#include "common/config/key_file.h"
#include "common/crypto/random.h"
#include "common/util/encoding.h"

namespace sipwake::crypto {
namespace {

constexpr unsigned char kVersion = 0x01;
constexpr std::size_t kIvSize = 12;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kKeySize = 32;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx newCtx() { return CipherCtx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free); }

// Fetched once: OpenSSL 3 otherwise looks AES-256-GCM up by name per call.
const EVP_CIPHER* aes256gcm() {
  static const EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool validKeyId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

struct ParsedBlob {
  std::string_view header;  // version + id length + id: authenticated
  std::string_view key_id;
  std::string_view iv;
  std::string_view ciphertext;
  std::string_view tag;
};

std::optional<ParsedBlob> parseBlob(std::string_view blob) {
  if (blob.size() < 2 || static_cast<unsigned char>(blob[0]) != kVersion) return std::nullopt;
  std::size_t id_len = static_cast<unsigned char>(blob[1]);
  std::size_t header_len = 2 + id_len;
  if (id_len == 0 || blob.size() < header_len + kIvSize + kTagSize) return std::nullopt;
  ParsedBlob p;
  p.header = blob.substr(0, header_len);
  p.key_id = blob.substr(2, id_len);
  p.iv = blob.substr(header_len, kIvSize);
  p.ciphertext = blob.substr(header_len + kIvSize, blob.size() - header_len - kIvSize - kTagSize);
  p.tag = blob.substr(blob.size() - kTagSize);
  return p;
}

}  // namespace

std::vector<SealingKey> parseSealingKeys(std::string_view text) {
  std::vector<SealingKey> keys;
  for (auto& line : config::parseKeyFileLines(text, "credential keys")) {
    auto where = "credential keys line " + std::to_string(line.line_no);
    if (!validKeyId(line.name)) {
      throw std::invalid_argument(where + ": key id must be 1-64 of [A-Za-z0-9._-]");
    }
    auto key = base64Decode(line.value);
    wipe(line.value);
    if (!key || key->size() != kKeySize) {
      throw std::invalid_argument(where + ": key must be base64 of exactly 32 bytes");
    }
    for (const auto& k : keys) {
      if (k.id == line.name) {
        throw std::invalid_argument(where + ": duplicate key id '" + line.name + "'");
      }
    }
    keys.push_back({line.name, std::move(*key)});
  }
  if (keys.empty()) throw std::invalid_argument("no credential keys configured");
  return keys;
}

std::vector<SealingKey> loadSealingKeysFile(const std::string& path) {
  std::string text = config::readSecretFile(path, "credential keys", /*private_only=*/true);
  try {
    auto keys = parseSealingKeys(text);
    wipe(text);
    return keys;
  } catch (const std::invalid_argument& e) {
    wipe(text);
    throw std::invalid_argument(path + ": " + e.what());
  }
}

namespace {

void checkKeys(const std::vector<SealingKey>& keys) {
  if (keys.empty()) throw std::invalid_argument("no credential keys configured");
  for (const auto& k : keys) {
    if (k.key.size() != kKeySize || !validKeyId(k.id)) {
      throw std::invalid_argument("invalid credential key '" + k.id + "'");
    }
  }
}

}  // namespace

CredentialSealer::CredentialSealer(std::vector<SealingKey> keys) {
  checkKeys(keys);
  keys_ = std::make_shared<const Keys>(std::move(keys));
}

CredentialSealer::CredentialSealer(CredentialSealer&& other) noexcept : keys_(other.snapshot()) {}

std::shared_ptr<const CredentialSealer::Keys> CredentialSealer::snapshot() const {
  std::lock_guard lock(mutex_);
  return keys_;
}

std::string CredentialSealer::currentKeyId() const { return snapshot()->front().id; }

std::vector<std::string> CredentialSealer::keyIds() const {
  std::vector<std::string> ids;
  for (const auto& k : *snapshot()) ids.push_back(k.id);
  return ids;
}

std::vector<std::string> CredentialSealer::replaceKeys(std::vector<SealingKey> keys) {
  checkKeys(keys);
  std::lock_guard lock(mutex_);
  std::vector<std::string> retired;
  for (const auto& old : *keys_) {
    if (find(keys, old.id) == nullptr) {
      keys.push_back(old);
      retired.push_back(old.id);
    }
  }
  keys_ = std::make_shared<const Keys>(std::move(keys));
  return retired;
}

const SealingKey* CredentialSealer::find(const Keys& keys, std::string_view id) {
  for (const auto& k : keys) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

std::string CredentialSealer::seal(std::string_view plaintext,
                                   std::string_view associated_data) const {
  auto keys = snapshot();
  const SealingKey& key = keys->front();
  std::string out;
  out.reserve(2 + key.id.size() + kIvSize + plaintext.size() + kTagSize);
  out += static_cast<char>(kVersion);
  out += static_cast<char>(key.id.size());
  out += key.id;
  std::string header = out;
  std::string iv = randomBytes(kIvSize);
  out += iv;

  auto ctx = newCtx();
  int len = 0;
  std::string ciphertext(plaintext.size(), '\0');
  std::string tag(kTagSize, '\0');
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), aes256gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kIvSize, nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key.key), bytes(iv)) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(header), int(header.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(associated_data),
                              int(associated_data.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(ciphertext.data()), &len,
                              bytes(plaintext), int(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), nullptr, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, tag.data()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM sealing failed");
  out += ciphertext;
  out += tag;
  return out;
}

std::optional<Secret> CredentialSealer::open(std::string_view blob,
                                             std::string_view associated_data) const {
  auto parsed = parseBlob(blob);
  if (!parsed) return std::nullopt;
  auto keys = snapshot();
  const SealingKey* key = find(*keys, parsed->key_id);
  if (key == nullptr) return std::nullopt;

  auto ctx = newCtx();
  int len = 0;
  std::string plaintext(parsed->ciphertext.size(), '\0');
  std::string tag(parsed->tag);
  bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), aes256gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kIvSize, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key->key), bytes(parsed->iv)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(parsed->header),
                        int(parsed->header.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(associated_data),
                        int(associated_data.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &len,
                        bytes(parsed->ciphertext), int(parsed->ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), nullptr, &len) == 1;
  if (!ok) {
    wipe(plaintext);
    return std::nullopt;
  }
  return Secret(std::move(plaintext));
}

std::optional<std::string> CredentialSealer::keyIdOf(std::string_view blob) {
  auto parsed = parseBlob(blob);
  if (!parsed) return std::nullopt;
  return std::string(parsed->key_id);
}

}  // namespace sipwake::crypto
