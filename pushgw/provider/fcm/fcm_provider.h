#pragma once

#include <deque>
#include <memory>

#include "common/event/event_loop.h"
#include "common/http2/http2_client.h"
#include "pushgw/provider/app_registry.h"
#include "pushgw/provider/credential_observer.h"
#include "pushgw/provider/fcm/oauth_token_cache.h"
#include "pushgw/provider/push_provider.h"

namespace sipwake::pushgw {

// One FCM project: HTTP v1 sends with an OAuth2 access token from the
// service account, fetched from its token_uri before it is needed again.
// Runs on the dispatcher's loop thread.
class FcmProvider final : public PushProvider {
 public:
  FcmProvider(EventLoop& loop, const FcmApp& app, Clock& clock,
              CredentialObserver* observer = nullptr);
  ~FcmProvider() override;
  const char* name() const override { return "fcm"; }
  void send(const PushMessage& message, Done done) override;
  void refreshCredentials() override;

 private:
  void sendWithToken(const PushMessage& message, const std::string& token, Done done);
  void refreshToken();
  void onToken(http2::Response&& response);
  void reportCredential(bool refresh_failed);

  EventLoop& loop_;
  const FcmApp& app_;
  Clock& clock_;
  CredentialObserver* observer_;
  OAuthTokenCache tokens_;
  std::unique_ptr<http2::Client> fcm_;
  std::unique_ptr<http2::Client> oauth_;
  bool fetching_ = false;
  std::deque<std::pair<PushMessage, Done>> waiting_;  // for a token
  std::unique_ptr<LoopTimer> retry_timer_;
  std::string last_rejected_;
};

}  // namespace sipwake::pushgw
