// The operators' endpoints of RegistrarApi (/v1/admin/...): every tenant's
// bindings, instance ownership and the push queue, key rotation, log level.
#include <map>

#include <nlohmann/json.hpp>

#include "common/log/logger.h"
#include "common/redis/keyspace_scan.h"
#include "common/util/time_format.h"
#include "registrar/api/api_util.h"
#include "registrar/api/binding_view.h"
#include "registrar/api/registrar_api.h"
#include "registrar/registration/registration_state.h"

namespace sipwake::registrar {
namespace {

using http::jsonError;
using http::Response;
using nlohmann::json;

constexpr std::size_t kDefaultPage = 100;
constexpr std::size_t kMaxPage = 1000;
constexpr std::size_t kBatch = 500;  // bindings per store job for whole-index walks

bool allDigits(const std::string& s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "{tenant}/{id}" of an admin path, or answers 400 and gives nullopt.
std::optional<std::string> bindingKeyOf(RegistrarApi::Call& call) {
  const std::string &tenant = call.params[0], &id = call.params[1];
  if (!validTenantName(tenant) || !validBindingId(id)) {
    call.respond(jsonError(400, "invalid_binding_id",
                           "tenants are 1-64 of [A-Za-z0-9_-], binding ids 1-128 of [A-Za-z0-9._:-]"));
    return std::nullopt;
  }
  return tenant + "/" + id;
}

json adminView(const BindingFields& fields, Millis now) {
  json view = bindingView(fields, now);
  auto it = fields.find("tenant");
  view["tenant"] = it == fields.end() ? "" : it->second;
  return view;
}

}  // namespace

void RegistrarApi::inBatches(http::Responder respond, std::function<bool(BindingStore&)> step,
                             std::function<Response()> finish, std::function<void()> ended) {
  // The step runs again as a new store job until it says done; each job is
  // one bounded batch, so tenant requests are not held up behind a walk of
  // every binding.
  auto run = std::make_shared<std::function<void(BindingStore&)>>();
  *run = [this, respond, step = std::move(step), finish = std::move(finish), ended = std::move(ended),
          weak = std::weak_ptr<std::function<void(BindingStore&)>>(run)](BindingStore& store) {
    std::optional<Response> failure;
    bool done = false;
    try {
      done = step(store);
    } catch (const redis::RedisUnavailable& e) {
      log::warn("API request failed: redis unavailable", {{"error", e.what()}});
      failure = storageUnavailable();
    } catch (const std::exception& e) {
      log::error("API request failed", {{"error", e.what()}});
      failure = jsonError(500, "internal_error", "the request could not be completed");
    }
    if (failure || done) {
      Response response = failure ? std::move(*failure) : finish();
      if (ended) ended();
      loop_.post([respond, response = std::move(response)]() mutable { respond(std::move(response)); });
      return;
    }
    // The queued job holds the chain; the running one lets go when it returns.
    if (auto self = weak.lock()) store_.submit([self](BindingStore& s) { (*self)(s); });
  };
  store_.submit([run](BindingStore& store) { (*run)(store); });
}

void RegistrarApi::adminListBindings(Call& call) {
  auto query = parseQuery(call.request.query);
  if (!query) {
    call.respond(jsonError(400, "invalid_query", "the query string is malformed"));
    return;
  }
  std::string tenant, state, cursor = "0";
  std::size_t limit = kDefaultPage;
  for (const auto& [name, value] : *query) {
    if (name == "tenant") {
      if (!validTenantName(value)) {
        call.respond(jsonError(400, "invalid_parameter", "'tenant' must be 1-64 of [A-Za-z0-9_-]"));
        return;
      }
      tenant = value;
    } else if (name == "state") {
      if (!registrationStateFromString(value)) {
        call.respond(jsonError(400, "invalid_parameter",
                               "'state' must be registering, registered, retrying, failed or unregistered"));
        return;
      }
      state = value;
    } else if (name == "limit") {
      if (!allDigits(value) || std::stoull(value) == 0 || std::stoull(value) > kMaxPage) {
        call.respond(jsonError(400, "invalid_parameter", "'limit' must be 1-1000"));
        return;
      }
      limit = std::stoull(value);
    } else if (name == "cursor") {
      if (!redis::isKeyspaceCursor(value)) {
        call.respond(jsonError(400, "invalid_parameter", "'cursor' must be a next_cursor given before"));
        return;
      }
      cursor = value;
    } else {
      call.respond(jsonError(400, "unknown_parameter", "unknown parameter '" + name + "'"));
      return;
    }
  }
  withStore(std::move(call.respond), [=](BindingStore& store) {
    BindingPage page = listBindings(store.connection(), tenant, state, limit, cursor);
    Millis now = SystemClock::instance().now();
    json list = json::array();
    for (const auto& fields : page.bindings) list.push_back(adminView(fields, now));
    return jsonResponse(200, {{"bindings", list},
                              {"next_cursor", page.next_cursor == "0" ? json(nullptr)
                                                                      : json(page.next_cursor)}});
  });
}

void RegistrarApi::adminGetBinding(Call& call) {
  auto key = bindingKeyOf(call);
  if (!key) return;
  withStore(std::move(call.respond), [key = *key](BindingStore& store) {
    auto fields = store.get(key);
    if (!fields) return jsonError(404, "not_found", "no binding with this id");
    return jsonResponse(200, adminView(*fields, SystemClock::instance().now()));
  });
}

void RegistrarApi::adminDeleteBinding(Call& call) {
  if (!bindingKeyOf(call)) return;
  log::info("operator deletes a binding",
            {{"binding", call.params[0] + "/" + call.params[1]}, {"operator", call.principal}});
  deleteBinding(call.params[0], call.params[1], std::move(call.respond));
}

void RegistrarApi::adminInstances(Call& call) {
  struct State {
    Ownership ownership;
    PushQueueInfo queue;
    std::map<std::string, std::size_t> bindings;
    std::string cursor = "0";
    bool started = false;
  };
  auto state = std::make_shared<State>();
  std::string self = options_.owner;
  inBatches(
      std::move(call.respond),
      [state](BindingStore& store) {
        if (!state->started) {
          state->started = true;
          state->ownership = readOwnership(store.connection());
          state->queue = readPushQueue(store.connection());
        }
        state->cursor = countBindingOwners(store.connection(), state->cursor, kBatch, state->bindings);
        return state->cursor == "0";
      },
      [state, self] {
        Millis now = SystemClock::instance().now();
        json instances = json::array();
        for (const auto& i : state->ownership.instances) {
          json j = {{"name", i.name},
                    {"alive", i.deadline > now},
                    {"deadline", isoTime(i.deadline)},
                    {"leases", i.leases},
                    {"bindings", state->bindings.count(i.name) ? state->bindings[i.name] : 0}};
          for (const char* f : {"sip", "api", "state"}) {
            auto it = i.attributes.find(f);
            j[f] = it == i.attributes.end() ? json(nullptr) : json(it->second);
          }
          auto started = i.attributes.find("started_at");
          j["started_at"] = started == i.attributes.end()
                                ? json(nullptr)
                                : json(isoTime(std::atoll(started->second.c_str())));
          instances.push_back(std::move(j));
        }
        const auto& q = state->queue;
        return jsonResponse(
            200, {{"this_instance", self},
                  {"instances", instances},
                  {"leases_by_owner", state->ownership.leases_by_owner},
                  {"bindings_by_owner", state->bindings},
                  {"push_queue",
                   {{"stream", kPushStreamKey},
                    {"group", kPushGroup},
                    {"length", q.length},
                    {"pending", q.pending},
                    {"consumers", q.consumers},
                    {"group_exists", q.group_exists}}}});
      });
}

void RegistrarApi::adminRotateKeys(Call& call) {
  if (!call.request.body.empty()) {
    auto body = json::parse(call.request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.empty()) {
      call.respond(jsonError(400, "invalid_json", "send no body, or an empty JSON object"));
      return;
    }
  }
  if (rotating_.exchange(true)) {
    call.respond(jsonError(409, "rotation_in_progress", "a key rotation is already running here"));
    return;
  }
  std::vector<std::string> retired;
  if (admin_.reload_credential_keys) {
    try {
      retired = admin_.reload_credential_keys();
    } catch (const std::exception& e) {
      rotating_ = false;
      log::error("key rotation refused: the credential keys cannot be re-read", {{"error", e.what()}});
      call.respond(jsonError(500, "credential_keys_invalid",
                             std::string("the credential keys cannot be re-read: ") + e.what()));
      return;
    }
  }
  std::string key_id = sealer_.currentKeyId();
  log::info("credential re-sealing started", {{"key_id", key_id}, {"operator", call.principal}});
  struct State {
    ResealCounts counts;
    std::string cursor = "0";
    Millis started = SystemClock::instance().now();
  };
  auto state = std::make_shared<State>();
  inBatches(
      std::move(call.respond),
      [this, state](BindingStore& store) {
        std::vector<Resealed> resealed;
        state->cursor =
            resealBatch(store.connection(), sealer_, state->cursor, kBatch, state->counts, resealed);
        if (!resealed.empty()) engine_.resealed(std::move(resealed));
        return state->cursor == "0";
      },
      [state, key_id, retired] {
        const auto& c = state->counts;
        Millis took = SystemClock::instance().now() - state->started;
        log::info("credential re-sealing finished",
                  {{"key_id", key_id},
                   {"resealed", std::to_string(c.resealed)},
                   {"already_current", std::to_string(c.already_current)},
                   {"failed", std::to_string(c.failed)},
                   {"ms", std::to_string(took)}});
        return jsonResponse(200, {{"key_id", key_id},
                                  {"resealed", c.resealed},
                                  {"already_current", c.already_current},
                                  {"failed", c.failed},
                                  {"retired_keys", retired},
                                  {"duration_ms", took}});
      },
      [this] { rotating_ = false; });  // before the answer: the caller may rotate again at once
}

void RegistrarApi::adminGetLogLevel(Call& call) {
  call.respond(jsonResponse(200, {{"level", log::levelName(log::level())}}));
}

void RegistrarApi::adminSetLogLevel(Call& call) {
  auto body = json::parse(call.request.body, nullptr, false);
  log::Level level;
  if (body.is_discarded() || !body.is_object() || body.size() != 1 || !body.contains("level") ||
      !body["level"].is_string() || !log::parseLevel(body["level"].get<std::string>(), level)) {
    call.respond(jsonError(400, "invalid_field", "send {\"level\": \"debug|info|warn|error\"}"));
    return;
  }
  log::Level before = log::level();
  log::setLevel(level);
  log::write(log::Level::Info, "log level changed",
             {{"from", log::levelName(before)}, {"to", log::levelName(level)}, {"operator", call.principal}});
  call.respond(jsonResponse(200, {{"level", log::levelName(level)}}));
}

}  // namespace sipwake::registrar
