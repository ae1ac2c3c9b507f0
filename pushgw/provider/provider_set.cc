#include "pushgw/provider/provider_set.h"

#include "pushgw/provider/apns/apns_provider.h"
#include "pushgw/provider/fcm/fcm_provider.h"

namespace sipwake::pushgw {

ProviderSet::ProviderSet(EventLoop& loop, std::optional<AppRegistry> registry, Clock& clock,
                         CredentialObserver* credentials)
    : registry_(std::move(registry)) {
  if (!registry_) {
    log_ = std::make_unique<LogProvider>(loop);
    return;
  }
  for (const auto& app : registry_->apnsApps()) {
    apns_[app.app] = std::make_unique<ApnsProvider>(loop, app, clock);
  }
  for (const auto& app : registry_->fcmApps()) {
    fcm_[app.app] = std::make_unique<FcmProvider>(loop, app, clock, credentials);
  }
}

ProviderSet::~ProviderSet() = default;

PushProvider* ProviderSet::find(const std::string& provider, const std::string& app) {
  if (log_) return log_.get();
  auto& table = provider == "apns" ? apns_ : fcm_;
  auto it = table.find(app);
  return it == table.end() ? nullptr : it->second.get();
}

}  // namespace sipwake::pushgw
