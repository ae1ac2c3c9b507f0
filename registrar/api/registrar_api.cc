#include "registrar/api/registrar_api.h"

#include <nlohmann/json.hpp>

#include "common/crypto/random.h"
#include "common/log/logger.h"
#include "registrar/api/binding_view.h"
#include "registrar/binding/device_contact.h"

namespace sipwake::registrar {
namespace {

using http::jsonError;
using http::jsonResponse;
using http::Response;
using nlohmann::json;

constexpr std::string_view kBindingsPrefix = "/v1/bindings/";

Response unavailable() {
  Response r = jsonError(503, "storage_unavailable",
                         "the binding store (Redis) is unreachable; retry later");
  r.headers.emplace_back("Retry-After", "5");
  return r;
}

Response methodNotAllowed(const char* allow) {
  Response r = jsonError(405, "method_not_allowed", std::string("allowed: ") + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

std::optional<std::string> bearerToken(const http::Request& request) {
  const std::string* auth = request.header("authorization");
  if (!auth) return std::nullopt;
  constexpr std::string_view kScheme = "Bearer ";
  if (auth->size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>((*auth)[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i])))
      return std::nullopt;
  }
  return auth->substr(kScheme.size());
}

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
                           MetricsText metrics)
    : loop_(loop),
      options_(std::move(options)),
      keys_(keys),
      sealer_(sealer),
      store_(store),
      engine_(engine),
      readiness_(std::move(readiness)),
      metrics_(std::move(metrics)) {}

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
  const std::string& path = request.path;
  if (path == "/healthz") {
    respond(jsonResponse(200, {{"status", "ok"}}));
    return;
  }
  if (path == "/readyz") {
    if (auto why = readiness_()) {
      respond(jsonError(503, "not_ready", *why));
    } else {
      respond(jsonResponse(200, {{"status", "ready"}}));
    }
    return;
  }
  if (path == "/metrics") {
    handleMetrics(std::move(request), std::move(respond));
    return;
  }
  if (path.rfind(kBindingsPrefix, 0) != 0) {
    respond(jsonError(404, "not_found", "no such resource"));
    return;
  }

  auto token = bearerToken(request);
  std::optional<std::string> tenant = token ? keys_.authenticate(*token) : std::nullopt;
  if (!tenant) {
    Response r = jsonError(401, "unauthorized", "a valid 'Authorization: Bearer <api key>' is required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    respond(std::move(r));
    return;
  }

  std::string id = path.substr(kBindingsPrefix.size());
  if (auto slash = id.find('/'); slash != std::string::npos) {
    // /v1/bindings/{id}/devices/{device}/ack
    std::string rest = id.substr(slash);
    id.resize(slash);
    constexpr std::string_view kDevices = "/devices/", kAck = "/ack";
    if (rest.rfind(kDevices, 0) != 0 || rest.size() <= kDevices.size() + kAck.size() ||
        rest.compare(rest.size() - kAck.size(), kAck.size(), kAck) != 0) {
      respond(jsonError(404, "not_found", "no such resource"));
      return;
    }
    std::string device =
        rest.substr(kDevices.size(), rest.size() - kDevices.size() - kAck.size());
    if (!validBindingId(id) || !validBindingId(device)) {
      respond(jsonError(400, "invalid_binding_id", "ids are 1-128 of [A-Za-z0-9._:-]"));
      return;
    }
    if (request.method != "POST") {
      respond(methodNotAllowed("POST"));
      return;
    }
    ackDevice(*tenant, id, device, request, std::move(respond));
    return;
  }
  if (!validBindingId(id)) {
    respond(jsonError(400, "invalid_binding_id", "binding ids are 1-128 of [A-Za-z0-9._:-]"));
    return;
  }
  if (request.method == "PUT") {
    putBinding(*tenant, id, request, std::move(respond));
  } else if (request.method == "GET") {
    getBinding(*tenant, id, std::move(respond));
  } else if (request.method == "DELETE") {
    deleteBinding(*tenant, id, std::move(respond));
  } else {
    respond(methodNotAllowed("GET, PUT, DELETE"));
  }
}

void RegistrarApi::withStore(http::Responder respond,
                             std::function<Response(BindingStore&)> job) {
  store_.submit([this, respond = std::move(respond), job = std::move(job)](BindingStore& store) {
    Response response;
    try {
      response = job(store);
    } catch (const redis::RedisUnavailable& e) {
      log::warn("API request failed: redis unavailable", {{"error", e.what()}});
      response = unavailable();
    } catch (const std::exception& e) {
      log::error("API request failed", {{"error", e.what()}});
      response = jsonError(500, "internal_error", "the request could not be completed");
    }
    loop_.post([respond, response = std::move(response)]() mutable { respond(std::move(response)); });
  });
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
      loop_.post([respond] { respond(unavailable()); });
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
      withStore(respond, [key](BindingStore& store) {
        store.erase(key);
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
