#include "pushgw/provider/apns/apns_provider.h"

#include <chrono>

#include "common/log/logger.h"
#include "pushgw/provider/apns/apns_request.h"
#include "pushgw/provider/apns/apns_response.h"

namespace sipwake::pushgw {
namespace {

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

http2::ClientOptions clientOptionsFor(const HttpsUrl& url,
                                      const std::optional<std::string>& ca_file) {
  http2::ClientOptions o;
  o.host = url.host;
  o.port = static_cast<std::uint16_t>(url.port);
  o.authority = url.authority();
  o.ca_file = ca_file.value_or("");
  return o;
}

ApnsProvider::ApnsProvider(EventLoop& loop, const ApnsApp& app, Clock& clock)
    : loop_(loop), app_(app), clock_(clock), signer_(app.team_id, app.key_id, app.key) {}

ApnsProvider::~ApnsProvider() = default;

http2::Client& ApnsProvider::clientFor(const std::string& environment) {
  bool sandbox = environment == "sandbox";
  auto& client = sandbox ? sandbox_ : production_;
  if (!client) {
    client = std::make_unique<http2::Client>(
        loop_, clientOptionsFor(sandbox ? app_.sandbox_url : app_.url, app_.ca_file));
  }
  return *client;
}

void ApnsProvider::send(const PushMessage& message, Done done) {
  std::string token = signer_.token(clock_.now());
  std::string error;
  auto request = buildApnsRequest(message, token, &error);
  if (!request) {
    loop_.post([done = std::move(done), error] {
      done(ClassifiedResponse{PushOutcome::PermanentError, std::nullopt, error}, 0.0);
    });
    return;
  }
  const HttpsUrl* url = app_.urlFor(message.environment);
  if (url && !url->path_prefix.empty()) request->path = url->path_prefix + request->path;
  auto started = std::chrono::steady_clock::now();
  clientFor(message.environment)
      .submit(std::move(*request),
              [this, started, token, done = std::move(done)](http2::Response&& response) {
                ClassifiedResponse outcome = classifyApnsResponse(response);
                outcome.status = response.status;
                if (outcome.outcome == PushOutcome::RefreshCredentials) last_rejected_ = token;
                done(outcome, secondsSince(started));
              });
}

void ApnsProvider::refreshCredentials() {
  auto result = signer_.invalidate(clock_.now(), last_rejected_);
  if (result == ApnsTokenSigner::Invalidation::Refused) {
    log::error("APNs rejects our provider tokens: check team_id, key_id and the .p8 key",
               {{"app", app_.app}, {"key_id", app_.key_id}});
  }
}

}  // namespace sipwake::pushgw
