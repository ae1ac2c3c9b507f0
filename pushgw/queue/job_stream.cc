#include "pushgw/queue/job_stream.h"

#include <pthread.h>

#include <chrono>

#include "common/log/logger.h"

namespace sipwake::pushgw {

JobStream::JobStream(Options options, Sink sink)
    : options_(std::move(options)),
      sink_(std::move(sink)),
      redis_(options_.url, 1000, options_.block + 2000) {}

JobStream::~JobStream() { stop(); }

void JobStream::start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "job-stream");
    run();
  });
}

bool JobStream::drain() {
  draining_ = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.shutdown_drain);
  while (outstanding_ > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return outstanding_ == 0;
}

void JobStream::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  thread_.join();
  try {
    flushAcks();  // what finished before the stop is not handed out again
  } catch (const std::exception&) {
  }
}

void JobStream::ack(const std::string& entry_id) {
  std::lock_guard lock(mutex_);
  acks_.push_back(entry_id);
}

void JobStream::deadLetter(const PushJob& job, const std::string& reason) {
  nlohmann::json summary = {{"type", job.type},       {"tenant", job.tenant},
                            {"binding", job.binding}, {"device", job.device_id},
                            {"provider", job.provider}, {"call_id", job.call_id}};
  ++undeliverable_;
  std::lock_guard lock(mutex_);
  dead_.push_back({job.entry_id, summary.dump(), reason, true});
}

void JobStream::run() {
  while (!stopping_) {
    try {
      if (!group_ready_) ensureGroup();
      flushAcks();
      if (draining_) {  // acknowledge what finishes, take nothing new
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      Millis now = SystemClock::instance().now();
      if (now >= next_claim_) {
        reclaim();
        next_claim_ = now + options_.claim_interval;
      }
      if (now >= next_depth_) {
        measureDepth();
        next_depth_ = now + 1000;
      }
      if (outstanding_ < options_.max_outstanding) {
        readNew();
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      healthy_ = true;
    } catch (const std::exception& e) {
      if (healthy_.exchange(false)) log::error("push job stream unavailable", {{"error", e.what()}});
      group_ready_ = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

void JobStream::ensureGroup() {
  redis::Reply r = redis_.command(
      {"XGROUP", "CREATE", kJobStreamKey, options_.group, "0", "MKSTREAM"});
  if (r.isError() && r.str().find("BUSYGROUP") == std::string_view::npos) {
    throw redis::RedisUnavailable("XGROUP CREATE: " + std::string(r.str()));
  }
  group_ready_ = true;
}

std::vector<PushJob> JobStream::parseEntries(const redis::Reply& entries, int deliveries) {
  std::vector<PushJob> jobs;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    redis::Reply entry = entries.element(i);
    std::string id(entry.element(0).str());
    redis::Reply fields = entry.element(1);
    std::string raw;
    for (std::size_t f = 0; f + 1 < fields.size(); f += 2) {
      if (fields.element(f).str() == "job") raw = std::string(fields.element(f + 1).str());
    }
    if (id.empty()) continue;
    std::string error;
    auto job = parsePushJob(raw, error);
    if (!job) {
      log::warn("malformed push job moved to the dead-letter stream", {{"entry", id}, {"error", error}});
      ++malformed_;
      std::lock_guard lock(mutex_);
      dead_.push_back({id, raw.substr(0, 2048), "malformed: " + error, false});
      continue;
    }
    job->entry_id = id;
    job->deliveries = deliveries;
    jobs.push_back(std::move(*job));
  }
  return jobs;
}

void JobStream::readNew() {
  redis::Reply reply = redis_.command(
      {"XREADGROUP", "GROUP", options_.group, options_.consumer, "COUNT",
       std::to_string(options_.batch), "BLOCK", std::to_string(options_.block), "STREAMS",
       kJobStreamKey, ">"});
  if (reply.isError()) {
    if (reply.str().find("NOGROUP") != std::string_view::npos) group_ready_ = false;
    throw redis::RedisUnavailable("XREADGROUP: " + std::string(reply.str()));
  }
  if (!reply.isArray() || reply.size() == 0) return;
  auto jobs = parseEntries(reply.element(0).element(1), 1);
  if (jobs.empty()) return;
  outstanding_ += jobs.size();
  sink_(std::move(jobs));
}

void JobStream::reclaim() {
  // Entries another (dead) consumer left pending for longer than claim_idle.
  redis::Reply pending = redis_.command(
      {"XPENDING", kJobStreamKey, options_.group, "IDLE", std::to_string(options_.claim_idle),
       "-", "+", "200"});
  if (!pending.isArray() || pending.size() == 0) return;
  std::vector<std::string> claim;
  std::vector<int> counts;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    redis::Reply p = pending.element(i);
    std::string id(p.element(0).str());
    int deliveries = static_cast<int>(p.element(3).integer());
    if (deliveries >= options_.max_deliveries) {
      redis::Reply entry = redis_.command({"XRANGE", kJobStreamKey, id, id});
      std::string raw;
      if (entry.size() == 1) {
        redis::Reply fields = entry.element(0).element(1);
        for (std::size_t f = 0; f + 1 < fields.size(); f += 2) {
          if (fields.element(f).str() == "job") raw = std::string(fields.element(f + 1).str());
        }
      }
      log::warn("push job handed out too often; dead letter", {{"entry", id}});
      ++redelivered_;
      std::lock_guard lock(mutex_);
      dead_.push_back(
          {id, raw.substr(0, 2048), "delivered " + std::to_string(deliveries) + " times", false});
      continue;
    }
    claim.push_back(id);
    counts.push_back(deliveries + 1);
  }
  if (claim.empty()) return;
  std::vector<std::string_view> argv = {"XCLAIM", kJobStreamKey, options_.group, options_.consumer};
  std::string idle = std::to_string(options_.claim_idle);
  argv.push_back(idle);
  for (const auto& id : claim) argv.push_back(id);
  redis::Reply claimed = redis_.command(argv);
  auto jobs = parseEntries(claimed, 2);
  for (auto& job : jobs) {
    for (std::size_t i = 0; i < claim.size(); ++i) {
      if (claim[i] == job.entry_id) job.deliveries = counts[i];
    }
  }
  if (jobs.empty()) return;
  log::info("claimed push jobs left pending by another consumer",
            {{"count", std::to_string(jobs.size())}});
  outstanding_ += jobs.size();
  sink_(std::move(jobs));
}

void JobStream::flushAcks() {
  std::vector<std::string> acks;
  std::vector<Dead> dead;
  {
    std::lock_guard lock(mutex_);
    acks.swap(acks_);
    dead.swap(dead_);
  }
  if (acks.empty() && dead.empty()) return;
  std::size_t done = acks.size();
  const std::vector<std::string> plain_acks = acks;
  std::vector<std::vector<std::string>> commands;
  for (const auto& d : dead) {
    if (d.handed_out) ++done;
    commands.push_back({"XADD", kDeadLetterStreamKey, "MAXLEN", "~", "100000", "*", "entry",
                        d.entry_id, "job", d.job, "reason", d.reason, "consumer", options_.consumer});
    acks.push_back(d.entry_id);
  }
  std::vector<std::string> xack = {"XACK", kJobStreamKey, options_.group};
  xack.insert(xack.end(), acks.begin(), acks.end());
  commands.push_back(std::move(xack));
  try {
    redis_.pipeline(commands);
  } catch (...) {
    std::lock_guard lock(mutex_);  // keep them for the next attempt
    acks_.insert(acks_.end(), plain_acks.begin(), plain_acks.end());
    dead_.insert(dead_.end(), dead.begin(), dead.end());
    throw;
  }
  outstanding_ -= std::min(outstanding_.load(), done);
}

void JobStream::measureDepth() {
  // Redis 7: XINFO GROUPS gives the group's lag (never delivered) and pending.
  redis::Reply groups = redis_.command({"XINFO", "GROUPS", kJobStreamKey});
  long long depth = 0;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    redis::Reply g = groups.element(i);
    bool ours = false;
    long long pending = 0, lag = 0;
    for (std::size_t f = 0; f + 1 < g.size(); f += 2) {
      auto name = g.element(f).str();
      if (name == "name") ours = g.element(f + 1).str() == options_.group;
      if (name == "pending") pending = g.element(f + 1).integer();
      if (name == "lag") lag = g.element(f + 1).integer();
    }
    if (ours) depth = pending + lag;
  }
  depth_ = depth;
}

}  // namespace sipwake::pushgw
