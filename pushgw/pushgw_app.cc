#include "pushgw/pushgw_app.h"

#include <event2/event.h>

#include <csignal>
#include <future>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "common/event/event_loop.h"
#include "common/http/http_server.h"
#include "common/log/level_signals.h"
#include "common/log/logger.h"
#include "common/metrics/redis_metrics.h"
#include "common/redis/redis_worker.h"
#include "pushgw/dispatch/push_dispatcher.h"
#include "pushgw/feedback/binding_feedback.h"
#include "pushgw/provider/provider_set.h"
#include "pushgw/pushgw_metrics.h"
#include "pushgw/queue/job_stream.h"

namespace sipwake::pushgw {

int runPushgw(const PushgwConfig& config) {
  log::setInstance(config.instance);
  log::setLevel(config.log_level);

  // Credentials are loaded and checked before anything connects.
  std::optional<AppRegistry> apps;
  if (!config.apps_file.empty()) {
    apps = AppRegistry::loadFile(config.apps_file);
  } else {
    log::warn("no PUSHGW_APPS_FILE: pushes are logged, not sent");
  }

  auto registry = std::make_shared<prometheus::Registry>();
  PushgwMetrics metrics(*registry);
  metrics::RedisMetrics redis_metrics(*registry, "pushgw");

  redis::RedisWorker feedback_worker(config.redis, "feedback");
  feedback_worker.start();
  BindingFeedback feedback(feedback_worker);

  LoopThread dispatch_thread("dispatch");
  EventLoop& dispatch_loop = dispatch_thread.loop();
  std::unique_ptr<ProviderSet> providers;
  std::unique_ptr<PushDispatcher> dispatcher;
  std::unique_ptr<JobStream> stream;
  stream = std::make_unique<JobStream>(config.queue, [&](std::vector<PushJob>&& jobs) {
    dispatcher->submit(std::move(jobs));
  });
  {
    std::promise<void> ready;
    dispatch_loop.post([&] {
      providers = std::make_unique<ProviderSet>(dispatch_loop, std::move(apps), SystemClock::instance(),
                                                &metrics);
      dispatcher = std::make_unique<PushDispatcher>(dispatch_loop, config.retry, *providers, *stream,
                                                    feedback, metrics, SystemClock::instance());
      ready.set_value();
    });
    ready.get_future().get();
  }
  stream->start();

  EventLoop loop;
  LoopTimer depth_timer(loop, [&] {
    metrics.queueDepth(static_cast<double>(stream->depth()));
    JobStream::DeadLetterCounts dead = stream->deadLetters();
    metrics.deadLetters("malformed", static_cast<double>(dead.malformed));
    metrics.deadLetters("redelivered", static_cast<double>(dead.redelivered));
    metrics.deadLetters("undeliverable", static_cast<double>(dead.undeliverable));
    JobStream::TrimCounts trims = stream->trims();
    metrics.streamTrims("acknowledged", static_cast<double>(trims.acknowledged));
    metrics.streamTrims("lost_pending", static_cast<double>(trims.lost_pending));
    depth_timer.start(1000);
  });
  depth_timer.start(1000);
  http::HttpServer metrics_server(loop, http::ServerLimits{}, [&](http::Request&& r, http::Responder respond) {
    if (r.path == "/healthz") {
      http::Response ok;
      ok.body = R"({"status":"ok"})";
      respond(std::move(ok));
      return;
    }
    if (r.path == "/readyz") {
      if (stream->healthy()) {
        http::Response ok;
        ok.body = R"({"status":"ready"})";
        respond(std::move(ok));
      } else {
        respond(http::jsonError(503, "not_ready", "the push job stream (Redis) is unreachable"));
      }
      return;
    }
    if (r.path != "/metrics") {
      respond(http::jsonError(404, "not_found", "/metrics, /healthz and /readyz are served here"));
      return;
    }
    http::Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    redis_metrics.refresh();
    response.body = prometheus::TextSerializer().Serialize(registry->Collect());
    respond(std::move(response));
  });
  metrics_server.listen(config.metrics_listen, nullptr);

  auto on_signal = [](evutil_socket_t, short, void* arg) { static_cast<EventLoop*>(arg)->stop(); };
  event* sigterm = evsignal_new(loop.base(), SIGTERM, on_signal, &loop);
  event* sigint = evsignal_new(loop.base(), SIGINT, on_signal, &loop);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  log::LevelSignals level_signals(loop, config.log_level);  // SIGUSR1: debug, SIGUSR2: back
  log::info("pushgw started", {{"metrics", config.metrics_listen},
                               {"redis", config.redis.redacted()},
                               {"consumer", config.queue.consumer},
                               {"providers", config.apps_file.empty() ? "log" : config.apps_file}});
  loop.run();

  event_free(sigterm);
  event_free(sigint);
  // Finish the pushes under way (a call's push must not wait claim_idle for
  // another instance); what still waits for a retry stays pending.
  log::info("pushgw stopping: finishing pushes under way",
            {{"in_progress", std::to_string(stream->outstanding())}});
  if (!stream->drain()) {
    log::warn("pushgw stopping: jobs left pending for another instance",
              {{"in_progress", std::to_string(stream->outstanding())}});
  }
  stream->stop();
  {
    std::promise<void> done;
    dispatch_loop.post([&] {
      dispatcher.reset();
      providers.reset();
      done.set_value();
    });
    done.get_future().get();
  }
  dispatch_thread.stop();
  feedback_worker.stop();
  log::info("pushgw stopped");
  return 0;
}

}  // namespace sipwake::pushgw
