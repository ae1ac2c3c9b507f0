#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/crypto/jwt.h"
#include "common/event/clock.h"

namespace sipwake::pushgw {

// The APNs provider authentication token (JWT ES256 signed with a team's .p8
// key) for one key, shared by every connection that uses it.
//
// APNs answers 429 TooManyProviderTokenUpdates to a token replaced less than
// 20 minutes after the previous one, and 403 ExpiredProviderToken to one older
// than an hour (PITFALLS "HTTP/2 clients"). So a token is reused for a lifetime
// drawn between 40 and 50 minutes (jittered so that instances sharing a key do
// not all switch at once), and never replaced within 20 minutes unless APNs
// rejected it.
//
// Not thread-safe: owned by the loop that talks to APNs for this key.
class ApnsTokenSigner {
 public:
  static constexpr Millis kMinLifetime = 40 * kMinute;
  static constexpr Millis kMaxLifetime = 50 * kMinute;
  static constexpr Millis kMinMintInterval = 20 * kMinute;

  enum class Invalidation {
    WillMint,         // the next token() mints a fresh token: resend with it
    AlreadyReplaced,  // the rejected token is no longer the current one: resend with token()
    Refused,          // a token minted early after a rejection was rejected again within
                      // 20 minutes: the key or team is wrong, minting again only earns 429s
  };

  // Throws std::invalid_argument unless `key` is a P-256 private key and both
  // ids are non-empty.
  ApnsTokenSigner(std::string team_id, std::string key_id, crypto::EvpKey key);

  // The current token, minted when there is none, when it outlived its
  // lifetime or after an accepted invalidation.
  std::string token(Millis now);

  // After 403 ExpiredProviderToken / InvalidProviderToken. `rejected_token`,
  // when given, is the token the rejected request carried: a late answer to a
  // request signed with an older token does not discard the new one. Several
  // invalidations before the next token() count as one.
  Invalidation invalidate(Millis now, std::string_view rejected_token = {});

  const std::string& teamId() const { return team_id_; }
  const std::string& keyId() const { return key_id_; }
  Millis issuedAt() const { return issued_at_; }    // of the current token; 0 before the first
  Millis expiresAt() const { return expires_at_; }  // when token() will replace it
  std::uint64_t mintCount() const { return mints_; }

 private:
  void mint(Millis now);

  std::string team_id_;
  std::string key_id_;
  crypto::EvpKey key_;
  std::string token_;
  Millis issued_at_ = 0;
  Millis expires_at_ = 0;
  bool invalidated_ = false;
  std::optional<Millis> last_early_mint_;
  std::uint64_t mints_ = 0;
};

}  // namespace sipwake::pushgw
