#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/event/event_loop.h"
#include "pushgw/dispatch/push_dispatcher.h"
#include "pushgw/provider/app_registry.h"
#include "pushgw/provider/credential_observer.h"
#include "pushgw/provider/log_provider.h"

namespace sipwake::pushgw {

// Every configured app's provider, created on the dispatcher's loop thread.
// Without an apps file, every push goes to the log provider (local runs).
class ProviderSet final : public ProviderDirectory {
 public:
  ProviderSet(EventLoop& loop, std::optional<AppRegistry> registry, Clock& clock,
              CredentialObserver* credentials = nullptr);
  ~ProviderSet() override;
  PushProvider* find(const std::string& provider, const std::string& app) override;

 private:
  std::optional<AppRegistry> registry_;
  std::unique_ptr<LogProvider> log_;
  std::map<std::string, std::unique_ptr<PushProvider>> apns_;
  std::map<std::string, std::unique_ptr<PushProvider>> fcm_;
};

}  // namespace sipwake::pushgw
