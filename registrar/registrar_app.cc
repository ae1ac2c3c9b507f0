#include "registrar/registrar_app.h"

#include <event2/event.h>

#include <atomic>
#include <csignal>
#include <future>
#include <set>
#include <thread>
#include <memory>
#include <random>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "common/crypto/credential_sealer.h"
#include "common/event/event_loop.h"
#include "common/http/http_server.h"
#include "common/http/tls_server_context.h"
#include "common/log/level_signals.h"
#include "common/log/logger.h"
#include "common/metrics/redis_metrics.h"
#include "registrar/api/api_keys.h"
#include "registrar/api/registrar_api.h"
#include "registrar/binding/store_worker.h"
#include "registrar/cluster/binding_router.h"
#include "registrar/cluster/lease_keeper.h"
#include "registrar/cluster/shard.h"
#include "registrar/call/call_manager.h"
#include "registrar/device/device_registry.h"
#include "registrar/device/device_sign_in.h"
#include "registrar/push/push_job_writer.h"
#include "registrar/push/push_outcome_listener.h"
#include "registrar/push/test_push_waiters.h"
#include "registrar/sip/device_listener.h"
#include "registrar/sip/nta_call_relay.h"
#include "registrar/sip/nta_incoming.h"
#include "registrar/registration/registration_engine.h"
#include "registrar/sip/nta_register_transport.h"
#include "registrar/sip/sip_target_resolver.h"
#include "registrar/registration/target_checking_transport.h"
#include "registrar/binding/target_policy.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sip_thread.h"

namespace sipwake::registrar {
namespace {

bool isLoopback(const std::string& host_port) {
  return host_port.rfind("127.", 0) == 0 || host_port.rfind("[::1]", 0) == 0 ||
         host_port.rfind("localhost:", 0) == 0;
}

// Adapts a SipThread::Timer to the WakeupScheduler a state machine wants.
struct TimerWakeup final : WakeupScheduler {
  TimerWakeup(SipThread& thread, std::function<void()> fn) : timer(thread, std::move(fn)) {}
  void wakeAt(Millis when) override { timer.wakeAt(when); }
  SipThread::Timer timer;
};

// The engine answers who owns a Contact.
struct EngineDirectory final : ContactDirectory {
  explicit EngineDirectory(const RegistrationEngine& engine) : engine(engine) {}
  std::optional<Owner> findByContact(std::string_view contact_user) const override {
    auto owner = engine.findByContact(contact_user);
    if (!owner) return std::nullopt;
    return Owner{owner->key, owner->state, owner->pbx_ip};
  }
  const RegistrationEngine& engine;
};

// The SIP-thread side: everything sofia, the registration engine and call
// handling. Created, used and destroyed on the SIP thread.
// Woken apps sign in with their binding's credentials: the engine holds them.
class EngineDeviceSecrets final : public DeviceSecrets {
 public:
  explicit EngineDeviceSecrets(RegistrationEngine& engine) : engine_(engine) {}
  std::optional<DeviceSecret> deviceSecret(std::string_view contact_user, std::string_view realm) override {
    return engine_.deviceSecret(contact_user, realm);
  }

 private:
  RegistrationEngine& engine_;
};

// The device listener and what it needs, when device.listen is set.
struct DeviceSide {
  DeviceSide(SipThread& thread, const RegistrarConfig& config, RegistrationEngine& engine,
             prometheus::Registry& registry)
      : secrets(engine),
        devices(SystemClock::instance()),
        sign_in(config.device_sign_in, SystemClock::instance(), secrets, devices, &registry),
        listener(thread, config.device,
                 [this](const DeviceRegister& r, ServerTransaction& t) { sign_in.onRegister(r, t); }),
        sweeper(thread, [this] { sweep(); }) {
    sweeper.wakeAt(SystemClock::instance().now() + kSweepInterval);
  }
  void sweep() {
    sign_in.sweep();
    sweeper.wakeAt(SystemClock::instance().now() + kSweepInterval);
  }

  static constexpr Millis kSweepInterval = 2 * kSecond;  // closed connections leave the gauge
  EngineDeviceSecrets secrets;
  DeviceRegistry devices;
  DeviceSignIn sign_in;
  DeviceListener listener;
  SipThread::Timer sweeper;
};

struct SipSide {
  SipSide(SipThread& thread, const RegistrarConfig& config, const crypto::CredentialSealer& sealer,
          RegistrationObserver& observer, RegistrationMetrics& metrics, PushSink& pushes,
          CallMetrics& call_metrics, prometheus::Registry& registry, TraceSink* trace,
          const TargetPolicy& targets)
      : thread(thread),
        agent(thread, config.sip),
        transport(thread, agent, "sipwake/0.1"),
        resolver(thread),
        checked_transport(targets, resolver, transport),
        random(std::random_device{}()),
        engine_wakeup(thread, [this] { engine.runDue(); }),
        engine(config.policy, {agent.advertisedUdpTcp(), agent.advertisedTls()},
               SystemClock::instance(), checked_transport, sealer, observer, &metrics, engine_wakeup,
               [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(random); }),
        directory(engine),
        call_wakeup(thread, [this] { calls.runDue(); }),
        calls(config.call, SystemClock::instance(), directory, pushes, &call_metrics, call_wakeup),
        incoming(agent, [this](IncomingRequest request,
                               std::unique_ptr<ServerTransaction> transaction) {
          calls.onRequest(std::move(request), std::move(transaction));
        }) {
    engine.setTrace(trace);
    calls.setTrace(trace);
    if (!config.device_listen.empty()) {
      devices = std::make_unique<DeviceSide>(thread, config, engine, registry);
      calls.setRelayUri([this](const std::string& token) { return devices->listener.relayUri(token); });
      if (!config.call.redirect) {
        relay = std::make_unique<NtaCallRelay>(thread, agent, devices->listener, devices->devices,
                                               calls.relayEvents(), &registry);
        calls.setRelay(relay.get());
        devices->sign_in.setOnSignedIn([this](const std::string& key) { calls.onDeviceSignedIn(key); });
      }
    }
  }

  ~SipSide() {
    calls.endAll();
    calls.setRelay(nullptr);
  }

  SipThread& thread;
  SipAgent agent;
  NtaRegisterTransport transport;
  SipTargetResolver resolver;
  TargetCheckingTransport checked_transport;  // the target policy before any packet
  std::mt19937_64 random;
  TimerWakeup engine_wakeup;
  RegistrationEngine engine;
  EngineDirectory directory;
  TimerWakeup call_wakeup;
  CallManager calls;
  NtaIncoming incoming;
  std::unique_ptr<DeviceSide> devices;
  std::unique_ptr<NtaCallRelay> relay;  // relay mode with a device listener
};

// This instance's engine and calls, for the router: each posts onto the
// SIP thread.
BindingRouter::Local localControl(SipThread& thread, std::unique_ptr<SipSide>& side) {
  BindingRouter::Local local;
  local.upsert = [&thread, &side](RegistrationSpec spec) {
    thread.post([&side, spec = std::move(spec)]() mutable {
      if (side) side->engine.upsert(std::move(spec));
    });
  };
  local.load = [&thread, &side](std::vector<LoadedBinding> batch) {
    thread.post([&side, batch = std::move(batch)]() mutable {
      if (!side) return;
      for (auto& b : batch) side->engine.upsert(std::move(b.spec), b.resume);
    });
  };
  local.remove = [&thread, &side](std::string key, std::function<void(bool)> done) {
    thread.post([&side, key = std::move(key), done = std::move(done)]() mutable {
      if (side) {
        side->engine.remove(key, std::move(done));
      } else {
        done(false);
      }
    });
  };
  local.ack = [&thread, &side](std::string key, std::string device, std::string call_id,
                               std::string contact, std::function<void(bool)> done) {
    thread.post([&side, key = std::move(key), device = std::move(device),
                 call_id = std::move(call_id), contact = std::move(contact),
                 done = std::move(done)] {
      done(side && side->calls.onDeviceAck(key, device, call_id, contact) ==
                       CallManager::AckResult::Accepted);
    });
  };
  local.resealed = [&thread, &side](std::vector<Resealed> batch) {
    thread.post([&side, batch = std::move(batch)]() mutable {
      if (!side) return;
      for (auto& r : batch) side->engine.replaceSealedCredential(r.key, r.generation, std::move(r.sealed));
    });
  };
  return local;
}

// Waits (bounded) until peers registered their own Contact for every
// binding this instance held: the handover of a SIGTERM'd instance.
void awaitHandover(StoreWorker& store, std::vector<std::string> keys,
                   std::vector<std::string> our_hostports, Millis timeout) {
  const Millis deadline = SystemClock::instance().now() + timeout;
  std::size_t left = keys.size();
  while (left > 0 && SystemClock::instance().now() < deadline) {
    auto counted = std::make_shared<std::promise<std::size_t>>();
    std::future<std::size_t> result = counted->get_future();
    store.submit([counted, &keys, &our_hostports](BindingStore& bindings) {
      try {
        counted->set_value(bindings.countRegisteredVia(keys, our_hostports));
      } catch (const std::exception&) {
        counted->set_value(keys.size());
      }
    });
    left = result.get();
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (left == 0) {
    log::info("every binding is registered by another instance now", {{"bindings", std::to_string(keys.size())}});
  } else {
    log::warn("handover timed out: some bindings still carry this instance's Contact",
              {{"bindings", std::to_string(left)}});
  }
}

std::vector<crypto::SealingKey> readSealingKeys(const RegistrarConfig& config) {
  return config.credential_keys_file.empty()
             ? crypto::parseSealingKeys(config.credential_keys_inline)
             : crypto::loadSealingKeysFile(config.credential_keys_file);
}

// Key rotation: the keys file is read again (SIGHUP, or POST
// /v1/admin/rotate-keys); its first key seals from now on.
std::vector<std::string> reloadSealingKeys(const RegistrarConfig& config,
                                           crypto::CredentialSealer& sealer) {
  if (config.credential_keys_file.empty()) {
    // REGISTRAR_CREDENTIAL_KEYS: the environment cannot change under a
    // running process; a restart brings new keys, rotate-keys then re-seals.
    log::info("credential keys come from the environment: not re-read",
              {{"sealing_key", sealer.currentKeyId()}});
    return {};
  }
  auto retired = sealer.replaceKeys(readSealingKeys(config));
  std::string ids;
  for (const auto& id : sealer.keyIds()) ids += (ids.empty() ? "" : ",") + id;
  std::string gone;
  for (const auto& id : retired) gone += (gone.empty() ? "" : ",") + id;
  log::info("credential keys re-read", {{"sealing_key", sealer.currentKeyId()}, {"keys", ids},
                                        {"retired_until_restart", gone}});
  return retired;
}

}  // namespace

int runRegistrar(const RegistrarConfig& config) {
  log::setInstance(config.instance);
  log::setLevel(config.log_level);

  // Everything that can be refused is checked before a socket opens.
  crypto::CredentialSealer sealer(readSealingKeys(config));
  ApiKeyRing api_keys =
      config.api_keys_file.empty() ? ApiKeyRing() : ApiKeyRing::loadFile(config.api_keys_file);
  if (api_keys.size() == 0) log::warn("no API keys configured: the API refuses every request");
  ApiKeyRing admin_keys =
      config.admin_keys_file.empty() ? ApiKeyRing() : ApiKeyRing::loadFile(config.admin_keys_file);
  std::unique_ptr<http::TlsServerContext> api_tls;
  if (!config.api_tls_cert.empty()) {
    api_tls = std::make_unique<http::TlsServerContext>(config.api_tls_cert, config.api_tls_key);
  } else if (!isLoopback(config.api_listen) && !config.api_allow_plain) {
    throw std::runtime_error(
        "the API carries SIP passwords: set REGISTRAR_API_TLS_CERT and REGISTRAR_API_TLS_KEY, "
        "or REGISTRAR_API_ALLOW_PLAIN=1 behind a TLS-terminating proxy");
  }
  if (!config.device_listen.empty()) {  // the relay itself is issue 4
    log::info("device listener on: woken apps sign in there and calls are relayed to them",
              {{"listen", config.device_listen}, {"mode", config.call.redirect ? "redirect" : "relay"}});
  }

  auto registry = std::make_shared<prometheus::Registry>();
  RegistrationMetrics metrics(*registry);

  CallMetrics call_metrics(*registry);
  metrics::RedisMetrics redis_metrics(*registry, "registrar");

  StoreWorker store({config.redis, config.instance, 50, config.policy.failed_retention, 1000, config.trace});
  store.start();
  PushJobWriter push_writer(config.redis, config.instance, registry.get());
  push_writer.setTrace(config.trace);
  push_writer.start();
  // A previous run that died left its ringing calls behind: their callers
  // got no answer from us (the PBX timed them out). Count them, end them.
  push_writer.sweepLostCalls(SystemClock::instance().now(), [&call_metrics](int lost) {
    call_metrics.lost(lost);
    if (lost > 0) log::warn("calls were ringing here when this instance last died", {{"calls", std::to_string(lost)}});
  });

  TargetPolicy target_policy(config.target);
  if (!config.target.allow.empty()) {
    std::string allowed;
    for (const auto& c : config.target.allow) allowed += (allowed.empty() ? "" : ",") + c.toString();
    log::info("registrar targets allowed beyond the default policy", {{"allow", allowed}});
  }
  SipThread sip_thread;
  std::unique_ptr<SipSide> sip_side;
  sip_thread.start([&] {
    sip_side = std::make_unique<SipSide>(sip_thread, config, sealer, store, metrics, push_writer,
                                         call_metrics, *registry,
                                         config.trace.enabled ? &store : nullptr, target_policy);
  });

  ContactAddresses contacts{sip_side->agent.advertisedUdpTcp(), sip_side->agent.advertisedTls()};

  // Ownership: this instance keeps the bindings of the shards it leases.
  // Gained shards are loaded from Redis (the previous owner's Contact is
  // removed by our first REGISTER); lost ones are parked, not un-registered.
  std::atomic<int> loads_pending{0};
  EventLoop loop;
  std::function<void(std::set<std::uint32_t>)> load_shards;
  load_shards = [&](std::set<std::uint32_t> shards) {
    ++loads_pending;
    store.submit([&, shards](BindingStore& bindings) {
      std::size_t total = 0;
      try {
        bindings.loadAll(
            [&](std::vector<LoadedBinding>&& batch) {
              total += batch.size();
              sip_thread.post([&sip_side, batch = std::move(batch)]() mutable {
                if (!sip_side) return;  // shutting down: the SIP side is gone
                for (auto& b : batch) sip_side->engine.upsert(std::move(b.spec), b.resume);
              });
            },
            500, [&](const std::string& key) { return shards.count(shardOf(key, config.shards)) != 0; });
        log::info("bindings loaded from redis",
                  {{"count", std::to_string(total)}, {"shards", std::to_string(shards.size())}});
        --loads_pending;
      } catch (const std::exception& e) {
        log::error("cannot load bindings yet; retrying", {{"error", e.what()}});
        std::thread([&, shards] {  // a short-lived retry; the store thread must not sleep
          std::this_thread::sleep_for(std::chrono::seconds(2));
          --loads_pending;
          load_shards(shards);
        }).detach();
      }
    });
  };
  LeaseKeeper leases(
      {config.redis, config.instance, config.shards, config.lease_ttl, contacts.udp_tcp,
       config.api_listen, registry.get()},
      [&](const std::vector<std::uint32_t>& gained, const std::vector<std::uint32_t>& lost) {
        if (!lost.empty()) {
          std::set<std::uint32_t> gone(lost.begin(), lost.end());
          sip_thread.post([&sip_side, &config, gone] {
            if (!sip_side) return;
            for (const auto& key : sip_side->engine.keys()) {
              if (gone.count(shardOf(key, config.shards))) sip_side->engine.park(key);
            }
          });
        }
        if (!gained.empty()) load_shards(std::set<std::uint32_t>(gained.begin(), gained.end()));
      });
  BindingRouter router(config.instance, leases, store, localControl(sip_thread, sip_side));

  // What pushgw reports back: provider accepted a call's push (the caller
  // hears a second 180), a binding lost its last device (it goes), or a
  // test push's outcome (an API request waits for it). Peers forward API
  // requests for bindings this instance owns on the same channel.
  std::atomic<TestPushWaiters*> test_pushes{nullptr};
  PushOutcomeListener outcomes(config.redis, config.instance, [&](const nlohmann::json& m) {
    if (router.onMessage(m)) return;
    std::string kind = m.value("kind", ""), key = m.value("tenant", "") + "/" + m.value("binding", "");
    if (kind == "test_push_result") {
      if (TestPushWaiters* waiters = test_pushes.load()) waiters->onResult(m);
    } else if (kind == "push_delivered") {
      std::string call_id = m.value("call_id", "");
      sip_thread.post([&sip_side, key, call_id] {
        if (sip_side) sip_side->calls.onPushDelivered(key, call_id);
      });
    } else if (kind == "binding_orphaned") {
      log::info("binding lost its last device; un-registering", {{"binding", key}});
      sip_thread.post([&sip_side, &store, key] {
        if (!sip_side) return;
        sip_side->engine.remove(key, [&store, key](bool) {
          store.submit([key](BindingStore& bindings) {
            try {
              bindings.erase(key);
            } catch (const std::exception& e) {
              log::error("cannot erase a binding without devices", {{"binding", key}, {"error", e.what()}});
            }
          });
        });
      });
    }
  });
  outcomes.start();
  leases.start();

  // Forwarded requests whose peer died answer "not found" in time.
  LoopTimer reply_sweep(loop, [&] {
    router.expireReplies(SystemClock::instance().now());
    reply_sweep.start(500);
  });
  reply_sweep.start(500);
  std::atomic<bool> leaving{false};

  auto metrics_text = [registry, &redis_metrics] {
    redis_metrics.refresh();
    return prometheus::TextSerializer().Serialize(registry->Collect());
  };
  auto readiness = [&]() -> std::optional<std::string> {
    if (!store.redisHealthy()) return "redis is unreachable";
    if (leaving) return "this instance is handing its bindings over";
    if (!leases.settled() || loads_pending > 0) return "bindings are still loading";
    return std::nullopt;
  };
  AdminOptions admin{&admin_keys, [&config, &sealer] { return reloadSealingKeys(config, sealer); }};
  RegistrarApi api(loop,
                   {config.expires, contacts, config.instance, config.unregister_wait, config.trace,
                    config.test_push_timeout, &target_policy, config.api_rate, registry.get()},
                   api_keys, sealer, store, router, readiness, metrics_text, admin);
  TestPushWaiters test_push_waiters(loop);
  api.setTestPushes(&test_push_waiters);
  test_pushes = &test_push_waiters;

  http::ServerLimits limits;
  limits.max_body_bytes = config.api_max_body_bytes;
  limits.max_connections = config.api_max_connections;
  limits.max_header_bytes = config.api_max_header_bytes;
  limits.header_timeout = config.api_request_timeout;
  auto api_server = std::make_unique<http::HttpServer>(
      loop, limits, [&api](http::Request&& r, http::Responder respond) {
        api.handle(std::move(r), std::move(respond));
      });
  api_server->listen(config.api_listen, api_tls.get());
  std::unique_ptr<http::HttpServer> metrics_server;
  if (config.metrics_listen != config.api_listen) {
    metrics_server = std::make_unique<http::HttpServer>(
        loop, http::ServerLimits{}, [&api](http::Request&& r, http::Responder respond) {
          api.handleMetrics(std::move(r), std::move(respond));
        });
    metrics_server->listen(config.metrics_listen, nullptr);
  }

  auto on_signal = [](evutil_socket_t, short, void* arg) {
    static_cast<EventLoop*>(arg)->stop();
  };
  event* sigterm = evsignal_new(loop.base(), SIGTERM, on_signal, &loop);
  event* sigint = evsignal_new(loop.base(), SIGINT, on_signal, &loop);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  struct HupContext {
    const RegistrarConfig& config;
    crypto::CredentialSealer& sealer;
  } hup_context{config, sealer};
  auto on_hup = [](evutil_socket_t, short, void* arg) {
    auto* c = static_cast<HupContext*>(arg);
    try {
      reloadSealingKeys(c->config, c->sealer);
    } catch (const std::exception& e) {
      log::error("SIGHUP: credential keys not re-read; the old ones stay", {{"error", e.what()}});
    }
  };
  event* sighup = evsignal_new(loop.base(), SIGHUP, on_hup, &hup_context);
  event_add(sighup, nullptr);
  log::LevelSignals level_signals(loop, config.log_level);

  log::info("registrar started",
            {{"api", config.api_listen + (api_tls ? " (tls)" : " (plain)")},
             {"metrics", config.metrics_listen},
             {"sip", contacts.udp_tcp},
             {"sip_tls", contacts.tls.empty() ? "off" : contacts.tls},
             {"redis", config.redis.redacted()},
             {"admin_api", admin_keys.size() > 0 ? "on" : "off"},
             {"sealing_key", sealer.currentKeyId()}});
  loop.run();

  log::info("registrar stopping; contacts stay registered at the PBXs");
  leaving = true;
  event_free(sigterm);
  event_free(sigint);
  event_free(sighup);
  metrics_server.reset();
  api_server.reset();
  reply_sweep.cancel();
  // With a live peer, hand every binding over: the peer registers its own
  // Contact and removes ours in one REGISTER, so the PBX always holds one.
  // Until then calls to our Contact keep ringing here.
  std::promise<std::vector<std::string>> held_keys;
  sip_thread.post([&] { held_keys.set_value(sip_side ? sip_side->engine.keys() : std::vector<std::string>{}); });
  std::vector<std::string> keys = held_keys.get_future().get();
  if (leases.leave()) {
    awaitHandover(store, std::move(keys), {contacts.udp_tcp, contacts.tls}, config.handover_timeout);
  } else if (!keys.empty()) {
    log::info("no live peer to hand over to; a restart takes the bindings back");
  }
  leases.stop();
  outcomes.stop();
  test_pushes = nullptr;
  // The engine goes without a packet: stopping is not un-registering.
  // Ringing calls get a clean 480 rather than a timeout.
  sip_thread.stop([&] { sip_side.reset(); });
  push_writer.stop();
  store.stop();
  log::info("registrar stopped");
  return 0;
}

}  // namespace sipwake::registrar
