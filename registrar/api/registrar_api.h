#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/credential_sealer.h"
#include "common/event/event_loop.h"
#include "common/http/http_message.h"
#include "common/http/http_server.h"
#include "registrar/api/api_keys.h"
#include "registrar/api/api_metrics.h"
#include "registrar/binding/binding_admin.h"
#include "registrar/api/api_rate_limiter.h"
#include "registrar/binding/target_policy.h"
#include "registrar/binding/binding_request.h"
#include "registrar/binding/store_worker.h"
#include "registrar/push/test_push_waiters.h"
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
  // Key rotation re-sealed these stored credentials: the engine holds the
  // new blobs from now on (see RegistrationEngine::replaceSealedCredential).
  virtual void resealed(std::vector<Resealed> batch) { (void)batch; }
};

// The operators' side of the API (/v1/admin/...).
struct AdminOptions {
  const ApiKeyRing* keys = nullptr;  // "operator key" lines; null or empty: refused
  // Re-reads the credential keys file (rotation); returns the retired key
  // ids. Throws std::exception with a message naming no key material.
  std::function<std::vector<std::string>()> reload_credential_keys;
};

// Who may call a route.
enum class ApiAuth { None, Tenant, Admin };

// One served method and path; "{name}" matches one path segment.
struct RouteInfo {
  std::string_view method;
  std::string_view pattern;
  ApiAuth auth;
};

struct ApiOptions {
  ExpiresLimits expires;
  ContactAddresses contacts;
  std::string owner;                 // this instance's name
  Millis unregister_wait = 5 * kSecond;  // DELETE waits this long for the PBX
  TraceOptions trace;                    // GET .../trace: off -> 404 trace_disabled
  Millis test_push_timeout = 10 * kSecond;
  const TargetPolicy* target_policy = nullptr;  // nullptr: every target allowed
  ApiRateLimiter::Limits rate;                  // per API key
  prometheus::Registry* registry = nullptr;     // registrar_api_requests_total; none: not counted
};

// The HTTP API of PRODUCT.md: bindings, health, readiness, metrics.
// Runs on the API loop thread.
class RegistrarApi {
 public:
  using ReadinessProbe = std::function<std::optional<std::string>()>;  // nullopt: ready
  using MetricsText = std::function<std::string()>;

  RegistrarApi(EventLoop& loop, ApiOptions options, const ApiKeyRing& keys,
               const crypto::CredentialSealer& sealer, StoreWorker& store,
               RegistrationControl& engine, ReadinessProbe readiness, MetricsText metrics,
               AdminOptions admin = {});

  void handle(http::Request&& request, http::Responder respond);
  // Handler for the metrics-only listener.
  void handleMetrics(http::Request&& request, http::Responder respond);
  // Where POST .../test-push waits for pushgw; without it that path is 404.
  void setTestPushes(TestPushWaiters* waiters) { test_pushes_ = waiters; }

  // Every method and path served by handle() (`registrar --routes`; the
  // OpenAPI test checks each is documented).
  static std::vector<RouteInfo> routes();

  // A request matched to a route.
  struct Call {
    http::Request request;
    http::Responder respond;
    std::string principal;            // the tenant, or the operator's name
    std::vector<std::string> params;  // the pattern's {names}, in order
  };

 private:
  using RouteHandler = void (RegistrarApi::*)(Call&);
  struct Route {
    RouteInfo info;
    RouteHandler handler;
  };
  static const std::vector<Route>& table();

  void routeHealthz(Call& call);
  void routeReadyz(Call& call);
  void routeMetrics(Call& call);
  void routePutBinding(Call& call);
  void routeGetBinding(Call& call);
  void routeDeleteBinding(Call& call);
  void routeAckDevice(Call& call);
  void routeTrace(Call& call);
  void routeTestPush(Call& call);
  // admin_api.cc
  void adminListBindings(Call& call);
  void adminGetBinding(Call& call);
  void adminDeleteBinding(Call& call);
  void adminInstances(Call& call);
  void adminRotateKeys(Call& call);
  void adminGetLogLevel(Call& call);
  void adminSetLogLevel(Call& call);

  // Runs `step` on the store thread, one store job per call so other requests
  // interleave, until it returns true; then answers with `finish`. `ended`
  // runs (on the store thread) before the answer, whether it succeeded or not.
  void inBatches(http::Responder respond, std::function<bool(BindingStore&)> step,
                 std::function<http::Response()> finish, std::function<void()> ended = {});

  void putBinding(const std::string& tenant, const std::string& id, const http::Request& request,
                  http::Responder respond);
  void getBinding(const std::string& tenant, const std::string& id, http::Responder respond);
  void deleteBinding(const std::string& tenant, const std::string& id, http::Responder respond);
  void getTrace(const std::string& tenant, const std::string& id, const http::Request& request,
                http::Responder respond);
  void testPush(const std::string& tenant, const std::string& id, http::Responder respond);
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
  AdminOptions admin_;
  std::atomic<bool> rotating_{false};
  TestPushWaiters* test_pushes_ = nullptr;
  ApiRateLimiter limiter_;
  // Shared with the responders, which may run after this object is gone.
  std::shared_ptr<ApiMetrics> api_metrics_;
};

}  // namespace sipwake::registrar
