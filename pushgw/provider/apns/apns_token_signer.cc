#include "pushgw/provider/apns/apns_token_signer.h"

#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/crypto/random.h"

namespace sipwake::pushgw {
namespace {

Millis jitteredLifetime() {
  std::uint64_t r = 0;
  std::string bytes = crypto::randomBytes(sizeof r);
  std::memcpy(&r, bytes.data(), sizeof r);
  auto span =
      static_cast<std::uint64_t>(ApnsTokenSigner::kMaxLifetime - ApnsTokenSigner::kMinLifetime);
  return ApnsTokenSigner::kMinLifetime + static_cast<Millis>(r % (span + 1));
}

}  // namespace

ApnsTokenSigner::ApnsTokenSigner(std::string team_id, std::string key_id, crypto::EvpKey key)
    : team_id_(std::move(team_id)), key_id_(std::move(key_id)), key_(std::move(key)) {
  if (team_id_.empty() || key_id_.empty()) {
    throw std::invalid_argument("APNs token signer needs a team id and a key id");
  }
  if (!crypto::isEcP256Key(key_.get())) {
    throw std::invalid_argument("APNs key " + key_id_ + " is not a P-256 EC private key");
  }
}

std::string ApnsTokenSigner::token(Millis now) {
  bool expired = now >= expires_at_ && now - issued_at_ >= kMinMintInterval;
  if (token_.empty() || invalidated_ || expired) {
    if (!token_.empty() && !expired) last_early_mint_ = now;
    mint(now);
  }
  return token_;
}

ApnsTokenSigner::Invalidation ApnsTokenSigner::invalidate(Millis now,
                                                          std::string_view rejected_token) {
  if (token_.empty()) return Invalidation::WillMint;
  if (!rejected_token.empty() && rejected_token != token_) return Invalidation::AlreadyReplaced;
  if (invalidated_) return Invalidation::WillMint;
  if (now >= expires_at_) return Invalidation::WillMint;  // replaced on the next token() anyway
  if (last_early_mint_ && now - *last_early_mint_ < kMinMintInterval) {
    return Invalidation::Refused;
  }
  invalidated_ = true;
  return Invalidation::WillMint;
}

void ApnsTokenSigner::mint(Millis now) {
  nlohmann::json header = {{"alg", "ES256"}, {"kid", key_id_}};
  nlohmann::json claims = {{"iss", team_id_}, {"iat", now / kSecond}};
  token_ = crypto::signJwtEs256(header, claims, key_.get());
  issued_at_ = now;
  expires_at_ = now + jitteredLifetime();
  invalidated_ = false;
  ++mints_;
}

}  // namespace sipwake::pushgw
