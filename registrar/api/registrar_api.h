#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/crypto/credential_sealer.h"
#include "common/event/event_loop.h"
#include "common/http/http_message.h"
#include "common/http/http_server.h"
#include "registrar/api/api_keys.h"
#include "registrar/api/api_rate_limiter.h"
#include "registrar/binding/target_policy.h"
#include "registrar/binding/binding_request.h"
#include "registrar/binding/store_worker.h"
#include "registrar/registration/registration_engine.h"

namespace sipwake::registrar {

// The API's door to the registration engine, which lives on the SIP thread.
// Thread-safe: implementations post.
class RegistrationControl {
 public:
  virtual ~RegistrationControl() = default;
  virtual void upsert(RegistrationSpec spec) = 0;
  // `done` runs once, on the SIP thread, when the un-REGISTER ended.
  virtual void remove(std::string key, std::function<void(bool unregistered)> done) = 0;
  // The fast channel: a device is coming for a call. `done(found)` runs on
  // the SIP thread.
  // `contact`: where the app takes the call ("" when it did not say).
  virtual void deviceAck(std::string key, std::string device, std::string call_id,
                         std::string contact, std::function<void(bool found)> done) = 0;
};

struct ApiOptions {
  ExpiresLimits expires;
  ContactAddresses contacts;
  std::string owner;                 // this instance's name
  Millis unregister_wait = 5 * kSecond;  // DELETE waits this long for the PBX
  const TargetPolicy* target_policy = nullptr;  // nullptr: every target allowed
  ApiRateLimiter::Limits rate;                  // per API key
};

// The HTTP API of PRODUCT.md: bindings, health, readiness, metrics.
// Runs on the API loop thread.
class RegistrarApi {
 public:
  using ReadinessProbe = std::function<std::optional<std::string>()>;  // nullopt: ready
  using MetricsText = std::function<std::string()>;

  RegistrarApi(EventLoop& loop, ApiOptions options, const ApiKeyRing& keys,
               const crypto::CredentialSealer& sealer, StoreWorker& store,
               RegistrationControl& engine, ReadinessProbe readiness, MetricsText metrics);

  void handle(http::Request&& request, http::Responder respond);
  // Handler for the metrics-only listener.
  void handleMetrics(http::Request&& request, http::Responder respond);

 private:
  void putBinding(const std::string& tenant, const std::string& id, const http::Request& request,
                  http::Responder respond);
  void getBinding(const std::string& tenant, const std::string& id, http::Responder respond);
  void deleteBinding(const std::string& tenant, const std::string& id, http::Responder respond);
  void ackDevice(const std::string& tenant, const std::string& id, const std::string& device,
                 const http::Request& request, http::Responder respond);
  // Runs `job` on the store thread and answers from the API thread.
  void withStore(http::Responder respond,
                 std::function<http::Response(BindingStore&)> job);

  EventLoop& loop_;
  ApiOptions options_;
  const ApiKeyRing& keys_;
  const crypto::CredentialSealer& sealer_;
  StoreWorker& store_;
  RegistrationControl& engine_;
  ReadinessProbe readiness_;
  MetricsText metrics_;
  ApiRateLimiter limiter_;
};

}  // namespace sipwake::registrar
