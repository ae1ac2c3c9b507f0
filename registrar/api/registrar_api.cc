#include "registrar/api/registrar_api.h"

#include <nlohmann/json.hpp>

#include "common/crypto/hash.h"
#include "common/crypto/random.h"
#include "common/log/logger.h"
#include "registrar/api/api_util.h"
#include "registrar/api/binding_view.h"
#include "registrar/binding/device_contact.h"

namespace sipwake::registrar {
namespace {

using http::jsonError;
using http::jsonResponse;
using http::Response;
using nlohmann::json;

json devicesJson(const std::vector<Device>& devices) {
  json out = json::array();
  for (const auto& d : devices) {
    json j = {{"id", d.id}, {"provider", d.provider}, {"token", d.token}, {"app", d.app}};
    if (d.provider == "apns") {
      j["environment"] = d.environment;
      j["push_type"] = d.push_type;
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

RegistrarApi::RegistrarApi(EventLoop& loop, ApiOptions options, const ApiKeyRing& keys,
                           const crypto::CredentialSealer& sealer, StoreWorker& store,
                           RegistrationControl& engine, ReadinessProbe readiness,
                           MetricsText metrics, AdminOptions admin)
    : loop_(loop),
      options_(std::move(options)),
      keys_(keys),
      sealer_(sealer),
      store_(store),
      engine_(engine),
      readiness_(std::move(readiness)),
      metrics_(std::move(metrics)),
      admin_(std::move(admin)),
      limiter_(options_.rate),
      api_metrics_(std::make_shared<ApiMetrics>(options_.registry)) {}

// The route table: every path the API serves. A new endpoint is one line
// here and one handler; registrar/api/openapi.yaml documents each line (the
// OpenAPI test compares the two).
const std::vector<RegistrarApi::Route>& RegistrarApi::table() {
  using A = ApiAuth;
  static const std::vector<Route> routes = {
      {{"GET", "/healthz", A::None}, &RegistrarApi::routeHealthz},
      {{"GET", "/readyz", A::None}, &RegistrarApi::routeReadyz},
      {{"GET", "/metrics", A::None}, &RegistrarApi::routeMetrics},
      {{"PUT", "/v1/bindings/{id}", A::Tenant}, &RegistrarApi::routePutBinding},
      {{"GET", "/v1/bindings/{id}", A::Tenant}, &RegistrarApi::routeGetBinding},
      {{"DELETE", "/v1/bindings/{id}", A::Tenant}, &RegistrarApi::routeDeleteBinding},
      {{"POST", "/v1/bindings/{id}/devices/{device}/ack", A::Tenant}, &RegistrarApi::routeAckDevice},
      {{"GET", "/v1/bindings/{id}/trace", A::Tenant}, &RegistrarApi::routeTrace},
      {{"POST", "/v1/bindings/{id}/test-push", A::Tenant}, &RegistrarApi::routeTestPush},
      {{"GET", "/v1/admin/bindings", A::Admin}, &RegistrarApi::adminListBindings},
      {{"GET", "/v1/admin/bindings/{tenant}/{id}", A::Admin}, &RegistrarApi::adminGetBinding},
      {{"DELETE", "/v1/admin/bindings/{tenant}/{id}", A::Admin}, &RegistrarApi::adminDeleteBinding},
      {{"GET", "/v1/admin/instances", A::Admin}, &RegistrarApi::adminInstances},
      {{"POST", "/v1/admin/rotate-keys", A::Admin}, &RegistrarApi::adminRotateKeys},
      {{"GET", "/v1/admin/log-level", A::Admin}, &RegistrarApi::adminGetLogLevel},
      {{"PUT", "/v1/admin/log-level", A::Admin}, &RegistrarApi::adminSetLogLevel},
  };
  return routes;
}

std::vector<RouteInfo> RegistrarApi::routes() {
  std::vector<RouteInfo> out;
  for (const auto& r : table()) out.push_back(r.info);
  return out;
}

namespace {

// Matches `path` against `pattern` segment by segment; a "{name}" segment
// takes any one segment (even empty: the handler answers 400 for a bad id).
bool matchPattern(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
  params.clear();
  while (true) {
    std::size_t ps = pattern.find('/', 1), qs = path.find('/', 1);
    std::string_view pseg = pattern.substr(0, ps), qseg = path.substr(0, qs);
    if (pseg.size() > 1 && pseg[1] == '{') {
      if (qseg.empty() || qseg[0] != '/') return false;
      params.emplace_back(qseg.substr(1));
    } else if (pseg != qseg) {
      return false;
    }
    if (ps == std::string_view::npos || qs == std::string_view::npos) {
      return ps == std::string_view::npos && qs == std::string_view::npos;
    }
    pattern = pattern.substr(ps);
    path = path.substr(qs);
  }
}

}  // namespace

void RegistrarApi::handleMetrics(http::Request&& request, http::Responder respond) {
  if (request.path != "/metrics") {
    respond(jsonError(404, "not_found", "only /metrics is served here"));
    return;
  }
  if (request.method != "GET") {
    respond(methodNotAllowed("GET"));
    return;
  }
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_();
  respond(std::move(r));
}

void RegistrarApi::handle(http::Request&& request, http::Responder respond) {
  const Route* matched = nullptr;
  std::string allow;
  std::vector<std::string> params, route_params;
  std::optional<ApiAuth> auth;
  for (const auto& route : table()) {
    if (!matchPattern(route.info.pattern, request.path, params)) continue;
    auth = route.info.auth;  // the same for every method of a path
    if (!allow.empty()) allow += ", ";
    allow += route.info.method;
    if (route.info.method == request.method && !matched) {
      matched = &route;
      route_params = params;
    }
  }
  std::string route_label =
      matched ? std::string(matched->info.method) + " " + std::string(matched->info.pattern)
              : auth ? "method_not_allowed" : "unknown";
  respond = [metrics = api_metrics_, route_label, respond = std::move(respond)](Response r) {
    metrics->answered(route_label, r.status);
    respond(std::move(r));
  };
  if (!auth) {
    respond(jsonError(404, "not_found", "no such resource"));
    return;
  }
  Call call{std::move(request), std::move(respond), {}, std::move(route_params)};
  // Authentication comes before the method check: a caller without a key
  // learns nothing of what a path allows.
  if (*auth != ApiAuth::None) {
    auto token = bearerToken(call.request);
    std::optional<std::string> who;
    std::optional<ApiKeyRing::Match> tenant_key;  // one constant-time pass over the keys
    if (token && *auth == ApiAuth::Tenant) {
      tenant_key = keys_.identify(*token);
      if (tenant_key) who = tenant_key->tenant;
    } else if (token && admin_.keys) {
      who = admin_.keys->authenticate(*token);
    }
    if (!who) {
      if (*auth == ApiAuth::Admin && token && keys_.authenticate(*token)) {
        call.respond(jsonError(403, "forbidden", "this path needs an operator (admin) key"));
        return;
      }
      Response r = jsonError(401, "unauthorized",
                             *auth == ApiAuth::Admin
                                 ? "a valid 'Authorization: Bearer <admin key>' is required"
                                 : "a valid 'Authorization: Bearer <api key>' is required");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      call.respond(std::move(r));
      return;
    }
    call.principal = std::move(*who);
    // Each tenant key has its own request budget: one flooding key cannot
    // starve the others.
    if (tenant_key) {
      if (auto wait = limiter_.take(tenant_key->key_index, SystemClock::instance().now())) {
        Response r = jsonError(429, "rate_limited", "too many requests with this API key; slow down");
        r.headers.emplace_back("Retry-After", std::to_string((*wait + 999) / 1000));
        call.respond(std::move(r));
        return;
      }
    }
  }
  if (!matched) {
    call.respond(methodNotAllowed(allow));
    return;
  }
  (this->*(matched->handler))(call);
}

void RegistrarApi::routeHealthz(Call& call) { call.respond(jsonResponse(200, {{"status", "ok"}})); }

void RegistrarApi::routeReadyz(Call& call) {
  if (auto why = readiness_()) {
    call.respond(jsonError(503, "not_ready", *why));
  } else {
    call.respond(jsonResponse(200, {{"status", "ready"}}));
  }
}

void RegistrarApi::routeMetrics(Call& call) {
  handleMetrics(std::move(call.request), std::move(call.respond));
}

void RegistrarApi::routePutBinding(Call& call) {
  const std::string& id = call.params[0];
  if (!validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  putBinding(call.principal, id, call.request, std::move(call.respond));
  crypto::wipe(call.request.body);  // it carried the SIP password in clear
}

void RegistrarApi::routeGetBinding(Call& call) {
  const std::string& id = call.params[0];
  if (!validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  getBinding(call.principal, id, std::move(call.respond));
}

void RegistrarApi::routeDeleteBinding(Call& call) {
  const std::string& id = call.params[0];
  if (!validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  deleteBinding(call.principal, id, std::move(call.respond));
}

void RegistrarApi::routeAckDevice(Call& call) {
  const std::string& id = call.params[0];
  const std::string& device = call.params[1];
  if (!validBindingId(id) || !validBindingId(device)) {
    call.respond(jsonError(400, "invalid_binding_id", "ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  ackDevice(call.principal, id, device, call.request, std::move(call.respond));
}

void RegistrarApi::routeTrace(Call& call) {
  const std::string& id = call.params[0];
  if (!validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  getTrace(call.principal, id, call.request, std::move(call.respond));
}

void RegistrarApi::routeTestPush(Call& call) {
  const std::string& id = call.params[0];
  if (!validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  testPush(call.principal, id, std::move(call.respond));
}

void RegistrarApi::getTrace(const std::string& tenant, const std::string& id,
                            const http::Request& request, http::Responder respond) {
  if (!options_.trace.enabled) {
    respond(jsonError(404, "trace_disabled", "tracing is off on this service (REGISTRAR_TRACE_ENABLED)"));
    return;
  }
  int limit = options_.trace.max_entries;
  // ?limit=N (1..trace.max_entries); nothing else is accepted.
  if (!request.query.empty()) {
    constexpr std::string_view kLimit = "limit=";
    std::string_view q = request.query;
    bool ok = q.rfind(kLimit, 0) == 0 && q.size() > kLimit.size() && q.size() <= kLimit.size() + 5;
    int n = 0;
    for (std::size_t i = kLimit.size(); ok && i < q.size(); ++i) {
      ok = q[i] >= '0' && q[i] <= '9';
      n = n * 10 + (q[i] - '0');
    }
    if (!ok || n < 1 || n > options_.trace.max_entries) {
      respond(jsonError(400, "invalid_query", "only ?limit=N with 1 <= N <= " +
                                                  std::to_string(options_.trace.max_entries)));
      return;
    }
    limit = n;
  }
  std::string key = tenant + "/" + id;
  withStore(std::move(respond), [key, id, limit](BindingStore& store) {
    std::vector<std::string> lines = store.readTrace(key, limit);
    if (lines.empty() && !store.get(key)) return jsonError(404, "not_found", "no binding with this id");
    json entries = json::array();
    for (const auto& line : lines) {
      auto entry = json::parse(line, nullptr, false);
      if (entry.is_object()) entries.push_back(std::move(entry));
    }
    return jsonResponse(200, {{"id", id}, {"entries", std::move(entries)}});
  });
}

void RegistrarApi::testPush(const std::string& tenant, const std::string& id,
                            http::Responder respond) {
  if (!test_pushes_) {
    respond(jsonError(404, "not_found", "no such resource"));
    return;
  }
  std::string key = tenant + "/" + id;
  std::string test_id = crypto::randomToken(96);
  test_pushes_->begin(test_id, options_.test_push_timeout,
                      [respond](json results) {
                        respond(results.is_null()
                                    ? jsonError(504, "timeout", "the binding store did not answer in time")
                                    : jsonResponse(200, results));
                      });
  BindingStore::TestPush test;
  test.test_id = test_id;
  test.instance = options_.owner;
  test.expires_at = SystemClock::instance().now() + options_.test_push_timeout;
  store_.submit([this, key, test, respond](BindingStore& store) {
    std::optional<std::vector<TestPushWaiters::Device>> devices;
    std::optional<Response> error;
    try {
      devices = store.queueTestPushes(key, test, SystemClock::instance().now());
      if (!devices) error = jsonError(404, "not_found", "no binding with this id");
    } catch (const redis::RedisUnavailable& e) {
      log::warn("API request failed: redis unavailable", {{"error", e.what()}});
      error = storageUnavailable();
    }
    loop_.post([this, test_id = test.test_id, devices = std::move(devices), error, respond]() mutable {
      if (error) {
        test_pushes_->cancel(test_id);
        respond(std::move(*error));
        return;
      }
      test_pushes_->devices(test_id, std::move(*devices));
    });
  });
}

void RegistrarApi::withStore(http::Responder respond,
                             std::function<Response(BindingStore&)> job) {
  auto response = std::make_shared<Response>();
  inBatches(
      std::move(respond),
      [job = std::move(job), response](BindingStore& store) {
        *response = job(store);
        return true;
      },
      [response] { return std::move(*response); });
}

void RegistrarApi::putBinding(const std::string& tenant, const std::string& id,
                              const http::Request& request, http::Responder respond) {
  if (const std::string* type = request.header("content-type")) {
    if (type->rfind("application/json", 0) != 0) {
      respond(jsonError(415, "unsupported_media_type", "send the binding as application/json"));
      return;
    }
  }
  ValidationError error;
  auto parsed = parseBindingRequest(request.body, options_.expires, error);
  if (!parsed) {
    respond(jsonError(400, error.code, error.message));
    return;
  }
  if (options_.target_policy) {
    // Literal addresses are judged here; a name is judged again, address by
    // address, each time it is resolved before a REGISTER leaves.
    if (auto why = options_.target_policy->checkHost(tenant, parsed->target.host)) {
      respond(jsonError(403, "target_forbidden", "the registrar target is not allowed: " + *why));
      return;
    }
  }
  if (parsed->transport == SipTransport::Tls && options_.contacts.tls.empty()) {
    respond(jsonError(400, "transport_unavailable",
                      "TLS toward PBXs is not enabled on this service (REGISTRAR_SIP_TLS_LISTEN)"));
    return;
  }

  auto binding = std::make_shared<NewBinding>();
  binding->tenant = tenant;
  binding->id = id;
  binding->key = tenant + "/" + id;
  binding->aor = parsed->aor_text;
  binding->registrar = parsed->registrar_text.value_or("");
  binding->destination = destinationOf(*parsed);
  binding->request_uri = requestUriOf(parsed->aor);
  binding->transport = std::string(toString(parsed->transport));
  binding->expires = parsed->expires;
  binding->username = parsed->username;
  binding->sealed_password = sealer_.seal(parsed->password.reveal(), binding->key);
  binding->devices_json = devicesJson(parsed->devices).dump();
  binding->owner = options_.owner;
  const std::string& contact_host =
      parsed->transport == SipTransport::Tls ? options_.contacts.tls : options_.contacts.udp_tcp;
  binding->contact_suffix = "@" + contact_host + ";transport=" + binding->transport;
  binding->candidate_token = crypto::randomToken(128);
  binding->candidate_call_id = crypto::randomToken(128) + "@sipwake";
  SipTransport transport = parsed->transport;

  withStore(std::move(respond), [this, binding, transport](BindingStore& store) {
    Millis now = SystemClock::instance().now();
    PutResult result = store.put(*binding, now);
    RegistrationSpec spec;
    spec.key = binding->key;
    spec.generation = result.generation;
    spec.aor = binding->aor;
    spec.request_uri = binding->request_uri;
    spec.destination = binding->destination;
    spec.transport = transport;
    spec.auth_username = binding->username;
    spec.sealed_password = binding->sealed_password;
    spec.contact_user = result.contact_token;
    spec.call_id = result.call_id;
    spec.cseq = result.cseq;
    spec.expires = binding->expires;
    spec.put_at = now;
    engine_.upsert(std::move(spec));
    log::info(result.created ? "binding created" : "binding replaced",
              {{"binding", binding->key}, {"generation", std::to_string(result.generation)}});
    auto fields = store.get(binding->key);
    json view = fields ? bindingView(*fields, now) : json::object();
    return jsonResponse(result.created ? 201 : 200, view);
  });
}

void RegistrarApi::getBinding(const std::string& tenant, const std::string& id,
                              http::Responder respond) {
  std::string key = tenant + "/" + id;
  withStore(std::move(respond), [key](BindingStore& store) {
    auto fields = store.get(key);
    if (!fields) return jsonError(404, "not_found", "no binding with this id");
    return jsonResponse(200, bindingView(*fields, SystemClock::instance().now()));
  });
}

void RegistrarApi::ackDevice(const std::string& tenant, const std::string& id,
                             const std::string& device, const http::Request& request,
                             http::Responder respond) {
  auto body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    respond(jsonError(400, "invalid_json", "the body must be a JSON object"));
    return;
  }
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "call_id" && it.key() != "contact") {
      respond(jsonError(400, "unknown_field", "unknown field '" + it.key() + "'"));
      return;
    }
  }
  auto call_id = body.find("call_id");
  if (call_id == body.end() || !call_id->is_string() || call_id->get<std::string>().empty() ||
      call_id->get<std::string>().size() > 256) {
    respond(jsonError(400, "invalid_field", "'call_id' must be the call's id (1-256 characters)"));
    return;
  }
  std::string contact;
  if (auto c = body.find("contact"); c != body.end()) {
    if (!c->is_string() || !isDeviceContactUri(c->get<std::string>())) {
      respond(jsonError(400, "invalid_field",
                        "'contact' must be a sip: or sips: URI of at most 512 characters"));
      return;
    }
    contact = c->get<std::string>();
  }
  engine_.deviceAck(tenant + "/" + id, device, call_id->get<std::string>(), std::move(contact),
                    [this, respond](bool found) {
                      loop_.post([respond, found] {
                        respond(found ? jsonResponse(200, {{"status", "accepted"}})
                                      : jsonError(404, "call_not_found",
                                                  "no call with this id is ringing for this binding"));
                      });
                    });
}

void RegistrarApi::deleteBinding(const std::string& tenant, const std::string& id,
                                 http::Responder respond) {
  std::string key = tenant + "/" + id;
  store_.submit([this, key, respond = std::move(respond)](BindingStore& store) mutable {
    bool exists;
    try {
      exists = store.get(key).has_value();
    } catch (const redis::RedisUnavailable&) {
      loop_.post([respond] { respond(storageUnavailable()); });
      return;
    }
    if (!exists) {
      loop_.post([respond] { respond(jsonError(404, "not_found", "no binding with this id")); });
      return;
    }
    // Un-REGISTER first (bounded wait), then erase: the contact must not
    // outlive the credentials at the PBX longer than necessary.
    struct Pending {
      bool finished = false;
      std::shared_ptr<LoopTimer> timer;
    };
    auto pending = std::make_shared<Pending>();
    auto finish = [this, key, respond, pending](bool unregistered) {
      if (pending->finished) return;
      pending->finished = true;
      // finish may run inside the timer's own callback: release it later.
      if (auto timer = std::move(pending->timer)) {
        timer->cancel();
        loop_.post([timer] {});
      }
      if (!unregistered) log::warn("binding erased without PBX confirmation", {{"binding", key}});
      withStore(respond, [key, unregistered](BindingStore& store) {
        store.erase(key);
        log::info("binding deleted", {{"binding", key}, {"unregistered", unregistered ? "yes" : "no"}});
        Response r;
        r.status = 204;
        r.content_type.clear();
        return r;
      });
    };
    loop_.post([this, key, pending, finish] {
      pending->timer = std::make_shared<LoopTimer>(loop_, [finish] { finish(false); });
      pending->timer->start(options_.unregister_wait);
      engine_.remove(key, [this, finish](bool ok) { loop_.post([finish, ok] { finish(ok); }); });
    });
  });
}

}  // namespace sipwake::registrar
