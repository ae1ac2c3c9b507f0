#include "registrar/binding/store_worker.h"

#include <pthread.h>

#include <chrono>
#include <iterator>

#include "common/log/logger.h"

namespace sipwake::registrar {
namespace {

// Trace entries held while Redis is away, up to this bound (later ones are
// dropped): a trace is a diagnostic, not state, but how an outage began is
// what support will ask about.
constexpr std::size_t kMaxPendingTraces = 20000;

}  // namespace

StoreWorker::StoreWorker(Options options)
    : options_(std::move(options)),
      connection_(options_.url),
      store_(connection_, options_.failed_retention) {
  store_.setTrace(options_.trace);
}

StoreWorker::~StoreWorker() { stop(); }

void StoreWorker::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "store");
    run();
  });
}

void StoreWorker::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StoreWorker::submit(std::function<void(BindingStore&)> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void StoreWorker::onStatus(const RegistrationStatus& status) {
  std::lock_guard lock(mutex_);
  auto& p = pending_[status.key];
  // A failure or expiry already queued for this generation stays what it is.
  if (p.kind != Pending::Kind::Status && p.status.generation == status.generation &&
      !p.status.key.empty())
    return;
  // A routine refresh over a full status not yet written updates its timing.
  if (status.routine && !p.status.key.empty() && !p.status.routine &&
      p.status.generation == status.generation) {
    p.status.expires_at = status.expires_at;
    p.status.next_attempt_at = status.next_attempt_at;
    p.status.cseq = status.cseq;
    p.status.nonce_count = status.nonce_count;
    p.status.updated_at = status.updated_at;
    return;
  }
  p.kind = Pending::Kind::Status;
  p.status = status;
}

void StoreWorker::onFailed(const RegistrationStatus& status, FailureReason reason) {
  std::lock_guard lock(mutex_);
  pending_[status.key] = Pending{Pending::Kind::Failed, status, reason};
}

void StoreWorker::onExpired(const std::string& key, std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  Pending p;
  p.kind = Pending::Kind::Expired;
  p.status.key = key;
  p.status.generation = generation;
  pending_[key] = p;
}

void StoreWorker::onExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                             Millis expires_at) {
  submit([key, generation, offset, expires_at](BindingStore& store) {
    try {
      store.warnExpiring(key, generation, offset, expires_at, SystemClock::instance().now());
    } catch (const std::exception& e) {
      log::error("expiry warning not sent: redis unavailable", {{"binding", key}, {"error", e.what()}});
    }
  });
}

void StoreWorker::trace(const std::string& binding_key, SipTraceEntry entry) {
  if (!options_.trace.enabled) return;
  std::lock_guard lock(mutex_);
  if (pending_traces_.size() >= kMaxPendingTraces) return;
  pending_traces_.emplace_back(binding_key, std::move(entry));
}

std::size_t StoreWorker::pendingWrites() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void StoreWorker::run() {
  using Clock = std::chrono::steady_clock;
  auto next_health = Clock::now();
  auto next_flush = Clock::now();
  auto stop_deadline = Clock::time_point::max();
  while (true) {
    std::deque<std::function<void(BindingStore&)>> jobs;
    bool stopping;
    {
      std::unique_lock lock(mutex_);
      bool idle = pending_.empty() && pending_traces_.empty();
      auto wake_at = std::min(next_health, idle ? Clock::time_point::max() : next_flush);
      wake_.wait_until(lock, wake_at, [&] { return stopping_ || !jobs_.empty(); });
      jobs.swap(jobs_);
      stopping = stopping_;
    }
    // Traces first: an erase job (DELETE) must not be followed by the
    // binding's last entries re-creating its trace.
    if (!jobs.empty()) flushTraces();
    for (auto& job : jobs) job(store_);
    auto now = Clock::now();
    if (now >= next_flush || stopping) {
      flush();
      next_flush = now + std::chrono::milliseconds(options_.flush_interval);
    }
    if (now >= next_health) {
      checkHealth();
      next_health = now + std::chrono::milliseconds(options_.health_interval);
    }
    if (stopping) {
      if (stop_deadline == Clock::time_point::max()) stop_deadline = now + std::chrono::seconds(3);
      std::lock_guard lock(mutex_);
      if ((pending_.empty() && jobs_.empty()) || now >= stop_deadline) {
        if (!pending_.empty()) {
          log::error("stopping with unsaved binding state",
                     {{"pending", std::to_string(pending_.size())}});
        }
        return;
      }
    }
  }
}

void StoreWorker::flushTraces() {
  std::vector<std::pair<std::string, SipTraceEntry>> traces;
  {
    std::lock_guard lock(mutex_);
    traces.swap(pending_traces_);
  }
  if (traces.empty()) return;
  std::vector<std::pair<std::string, std::string>> lines;
  lines.reserve(traces.size());
  for (const auto& [key, entry] : traces) lines.emplace_back(key, toJson(entry));
  try {
    store_.appendTraces(lines, options_.trace);
  } catch (const std::exception&) {
    // Kept for the next flush, before what came meanwhile, up to the bound.
    std::lock_guard lock(mutex_);
    traces.insert(traces.end(), std::make_move_iterator(pending_traces_.begin()),
                  std::make_move_iterator(pending_traces_.end()));
    if (traces.size() > kMaxPendingTraces) traces.erase(traces.begin() + kMaxPendingTraces, traces.end());
    pending_traces_.swap(traces);
  }
}

void StoreWorker::flush() {
  flushTraces();
  std::unordered_map<std::string, Pending> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  if (batch.empty()) return;
  std::vector<RegistrationStatus> statuses;
  std::vector<std::string> done;
  try {
    for (auto& [key, p] : batch) {
      if (p.kind == Pending::Kind::Status) {
        statuses.push_back(p.status);
      } else if (p.kind == Pending::Kind::Failed) {
        store_.markFailed(p.status, p.reason, options_.owner);
        done.push_back(key);
      } else {
        store_.eraseIfGeneration(key, p.status.generation);
        done.push_back(key);
      }
    }
    store_.writeStatuses(statuses, options_.owner);
    healthy_ = true;
    return;
  } catch (const std::exception& e) {
    if (healthy_.exchange(false)) log::error("redis unreachable; keeping state to write later", {{"error", e.what()}});
  }
  // Put back what was not written; newer entries that arrived meanwhile win.
  std::lock_guard lock(mutex_);
  for (const auto& key : done) batch.erase(key);
  for (auto& [key, p] : batch) pending_.try_emplace(key, std::move(p));
}

void StoreWorker::checkHealth() {
  bool ok = false;
  try {
    ok = store_.ping();
  } catch (const std::exception&) {
    ok = false;
  }
  if (ok && !healthy_.exchange(true)) log::info("redis reachable", {{"url", options_.url.redacted()}});
  if (!ok && healthy_.exchange(false)) log::error("redis unreachable", {{"url", options_.url.redacted()}});
}

}  // namespace sipwake::registrar
