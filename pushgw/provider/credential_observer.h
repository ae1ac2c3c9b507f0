#pragma once

#include <string>

#include "common/event/clock.h"

namespace sipwake::pushgw {

// Told about provider credentials that expire and are renewed over the
// network (FCM OAuth access tokens), so operators see a renewal failing
// before the credential runs out. APNs provider tokens are minted locally
// from the .p8 key, which does not expire: a revoked key shows as rejected
// pushes instead. Called on the provider's loop thread.
class CredentialObserver {
 public:
  virtual ~CredentialObserver() = default;
  // expires_at: when the credential in hand runs out (0: none yet).
  // refresh_failed: this report follows a failed renewal.
  virtual void credentialState(const std::string& provider, const std::string& app,
                               Millis expires_at, bool refresh_failed) = 0;
};

}  // namespace sipwake::pushgw
