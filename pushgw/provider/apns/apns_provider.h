#pragma once

#include <memory>

#include "common/event/event_loop.h"
#include "common/http2/http2_client.h"
#include "pushgw/provider/apns/apns_token_signer.h"
#include "pushgw/provider/app_registry.h"
#include "pushgw/provider/push_provider.h"

namespace sipwake::pushgw {

// One APNs app (bundle id and key): a connection per environment, the
// provider token shared by both. Runs on the dispatcher's loop thread.
class ApnsProvider final : public PushProvider {
 public:
  ApnsProvider(EventLoop& loop, const ApnsApp& app, Clock& clock);
  ~ApnsProvider() override;
  const char* name() const override { return "apns"; }
  void send(const PushMessage& message, Done done) override;
  void refreshCredentials() override;

 private:
  http2::Client& clientFor(const std::string& environment);

  EventLoop& loop_;
  const ApnsApp& app_;
  Clock& clock_;
  ApnsTokenSigner signer_;
  std::unique_ptr<http2::Client> production_;
  std::unique_ptr<http2::Client> sandbox_;
  std::string last_rejected_;
};

http2::ClientOptions clientOptionsFor(const HttpsUrl& url,
                                      const std::optional<std::string>& ca_file);

}  // namespace sipwake::pushgw
