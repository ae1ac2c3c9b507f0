#include "pushgw/provider/fcm/fcm_provider.h"

#include <algorithm>
#include <chrono>

#include "common/log/logger.h"
#include "pushgw/provider/apns/apns_provider.h"
#include "pushgw/provider/fcm/fcm_request.h"
#include "pushgw/provider/fcm/fcm_response.h"

namespace sipwake::pushgw {
namespace {

constexpr std::size_t kMaxWaiting = 10000;

}  // namespace

FcmProvider::FcmProvider(EventLoop& loop, const FcmApp& app, Clock& clock,
                         CredentialObserver* observer)
    : loop_(loop), app_(app), clock_(clock), observer_(observer), tokens_(app.account) {
  fcm_ = std::make_unique<http2::Client>(loop_, clientOptionsFor(app_.url, app_.ca_file));
  oauth_ = std::make_unique<http2::Client>(loop_, clientOptionsFor(app_.token_url, app_.ca_file));
  retry_timer_ = std::make_unique<LoopTimer>(loop_, [this] { refreshToken(); });
  reportCredential(false);
}

FcmProvider::~FcmProvider() {
  for (auto& [message, done] : waiting_) {
    done(ClassifiedResponse{PushOutcome::RetryLater, std::nullopt, "shutting down"}, 0.0);
  }
}

void FcmProvider::send(const PushMessage& message, Done done) {
  Millis now = clock_.now();
  if (tokens_.needsRefresh(now)) refreshToken();
  if (auto token = tokens_.accessToken(now)) {
    sendWithToken(message, *token, std::move(done));
    return;
  }
  if (waiting_.size() >= kMaxWaiting) {
    loop_.post([done = std::move(done)] {
      done(ClassifiedResponse{PushOutcome::RetryLater, std::nullopt, "no FCM access token"}, 0.0);
    });
    return;
  }
  waiting_.emplace_back(message, std::move(done));
}

void FcmProvider::sendWithToken(const PushMessage& message, const std::string& token, Done done) {
  std::string error;
  auto request = buildFcmRequest(message, app_.account.project_id, token, clock_.now(), &error);
  if (!request) {
    loop_.post([done = std::move(done), error] {
      done(ClassifiedResponse{PushOutcome::PermanentError, std::nullopt, error}, 0.0);
    });
    return;
  }
  if (!app_.url.path_prefix.empty()) request->path = app_.url.path_prefix + request->path;
  auto started = std::chrono::steady_clock::now();
  fcm_->submit(std::move(*request), [this, started, token,
                                     done = std::move(done)](http2::Response&& response) {
    ClassifiedResponse outcome = classifyFcmResponse(response);
    outcome.status = response.status;
    if (outcome.outcome == PushOutcome::RefreshCredentials) last_rejected_ = token;
    done(outcome,
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  });
}

void FcmProvider::refreshToken() {
  Millis now = clock_.now();
  if (fetching_) return;
  if (!tokens_.needsRefresh(now)) {
    // Backing off after a failure: come back when the cache allows, or the
    // renewal would wait for the next push.
    if (tokens_.retryAt() > now) retry_timer_->start(tokens_.retryAt() - now);
    return;
  }
  fetching_ = true;
  std::string path = app_.token_url.path_prefix.empty() ? "/" : app_.token_url.path_prefix;
  oauth_->submit(tokens_.tokenRequest(now, path),
                 [this](http2::Response&& response) { onToken(std::move(response)); });
}

void FcmProvider::onToken(http2::Response&& response) {
  fetching_ = false;
  Millis now = clock_.now();
  bool accepted = tokens_.acceptTokenResponse(response, now);
  if (!accepted) {
    log::warn("FCM access token not obtained", {{"app", app_.app}, {"error", tokens_.lastError()}});
  }
  reportCredential(!accepted);
  auto token = tokens_.accessToken(now);
  std::deque<std::pair<PushMessage, Done>> waiting;
  waiting.swap(waiting_);
  for (auto& [message, done] : waiting) {
    if (token) {
      sendWithToken(message, *token, std::move(done));
    } else {
      loop_.post([done = std::move(done)] {
        done(ClassifiedResponse{PushOutcome::RetryLater, std::nullopt, "no FCM access token"}, 0.0);
      });
    }
  }
  // The cache spaces failed attempts itself (1 s doubling to 60 s): ask
  // again when it allows.
  if (!accepted || !token || tokens_.needsRefresh(now)) {
    retry_timer_->start(std::max<Millis>(tokens_.retryAt() - now, 1));
  }
}

void FcmProvider::reportCredential(bool refresh_failed) {
  if (observer_ != nullptr) observer_->credentialState(name(), app_.app, tokens_.expiresAt(), refresh_failed);
}

void FcmProvider::refreshCredentials() {
  tokens_.invalidate(last_rejected_);
  refreshToken();
}

}  // namespace sipwake::pushgw
