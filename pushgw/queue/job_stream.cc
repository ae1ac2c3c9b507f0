#include "pushgw/queue/job_stream.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include "common/log/logger.h"

namespace sipwake::pushgw {
namespace {

// What the dead-letter stream keeps of a parsed job: no token, no content.
std::string jobSummary(const PushJob& job) {
  nlohmann::json summary = {{"type", job.type},       {"tenant", job.tenant},
                            {"binding", job.binding}, {"device", job.device_id},
                            {"provider", job.provider}, {"call_id", job.call_id}};
  return summary.dump();
}

}  // namespace

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
  held_.erase(entry_id);
}

void JobStream::deadLetter(const PushJob& job, const std::string& reason) {
  ++undeliverable_;
  std::lock_guard lock(mutex_);
  dead_.push_back({job.entry_id, jobSummary(job), reason, true});
  held_.erase(job.entry_id);
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
        keepHeld();
        reclaim();
        // Often enough that what we hold never looks idle for claim_idle.
        next_claim_ = now + std::min(options_.claim_interval, options_.claim_idle / 4);
      }
      if (now >= next_trim_) {
        trimAcknowledged();
        next_trim_ = now + options_.trim_interval;
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
  handOut(std::move(jobs));
}

void JobStream::reclaim() {
  // Entries another (dead) consumer left pending for longer than claim_idle,
  // a page at a time, the cursor carried over to the next round.
  bool more = true;
  for (int page = 0; more && page < 10 && !stopping_ && !draining_; ++page) {
    auto jobs = claimPage(more);
    if (jobs.empty()) continue;
    log::info("claimed push jobs left pending by another consumer",
              {{"count", std::to_string(jobs.size())}});
    handOut(std::move(jobs));
  }
}

void JobStream::handOut(std::vector<PushJob>&& jobs) {
  Millis now = SystemClock::instance().now();
  {
    std::lock_guard lock(mutex_);
    for (const auto& job : jobs) held_[job.entry_id] = now;
  }
  outstanding_ += jobs.size();
  sink_(std::move(jobs));
}

void JobStream::keepHeld() {
  // Jobs still under way here (a push being retried may take minutes) are
  // claimed again by us with JUSTID: their idle time restarts, so the other
  // instances do not take them over, and their delivery count stays. One
  // taken over meanwhile by another instance (idle below the threshold) is
  // left to it.
  const Millis threshold = options_.claim_idle / 4;
  Millis now = SystemClock::instance().now();
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, touched] : held_) {
      if (now - touched < threshold) continue;
      ids.push_back(id);
      touched = now;
    }
  }
  for (std::size_t at = 0; at < ids.size(); at += 500) {
    std::vector<std::string> argv = {"XCLAIM", kJobStreamKey, options_.group, options_.consumer,
                                     std::to_string(threshold)};
    argv.insert(argv.end(), ids.begin() + static_cast<long>(at),
                ids.begin() + static_cast<long>(std::min(ids.size(), at + 500)));
    argv.push_back("JUSTID");
    std::vector<std::string_view> views(argv.begin(), argv.end());
    redis_.command(views);
  }
}

std::vector<PushJob> JobStream::claimPage(bool& more) {
  redis::Reply reply = redis_.command(
      {"XAUTOCLAIM", kJobStreamKey, options_.group, options_.consumer,
       std::to_string(options_.claim_idle), claim_cursor_, "COUNT", "200"});
  if (reply.isError() || !reply.isArray() || reply.size() < 2) {
    if (reply.str().find("NOGROUP") != std::string_view::npos) group_ready_ = false;
    throw redis::RedisUnavailable("XAUTOCLAIM: " + std::string(reply.str()));
  }
  claim_cursor_ = std::string(reply.element(0).str());
  more = claim_cursor_ != "0-0";
  // Pending entries whose data is gone (trimmed or deleted by someone else):
  // Redis drops them from the pending list; their jobs cannot be sent.
  redis::Reply deleted = reply.element(2);
  if (deleted.size() > 0) {
    lost_pending_ += deleted.size();
    log::error("pending push jobs were deleted from the stream before delivery",
               {{"count", std::to_string(deleted.size())},
                {"first", std::string(deleted.element(0).str())}});
  }
  redis::Reply entries = reply.element(1);
  if (entries.size() == 0) return {};
  // XAUTOCLAIM counted this delivery; read the counts to dead-letter the
  // jobs handed out too often.
  std::vector<std::vector<std::string>> counts_query;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string id(entries.element(i).element(0).str());
    counts_query.push_back({"XPENDING", kJobStreamKey, options_.group, id, id, "1"});
  }
  std::vector<redis::Reply> counts = redis_.pipeline(counts_query);
  std::vector<PushJob> jobs = parseEntries(entries, 2);
  std::vector<PushJob> keep;
  for (auto& job : jobs) {
    {
      // Ours already, still under way (it looked idle, e.g. after an outage).
      std::lock_guard lock(mutex_);
      if (held_.count(job.entry_id)) continue;
    }
    int deliveries = 2;
    for (std::size_t i = 0; i < counts_query.size(); ++i) {
      if (counts_query[i][3] == job.entry_id && counts[i].size() == 1) {
        deliveries = static_cast<int>(counts[i].element(0).element(3).integer());
      }
    }
    job.deliveries = deliveries;
    if (deliveries > options_.max_deliveries) {
      log::warn("push job handed out too often; dead letter", {{"entry", job.entry_id}});
      ++redelivered_;
      std::lock_guard lock(mutex_);
      dead_.push_back({job.entry_id, jobSummary(job),
                       "delivered " + std::to_string(deliveries - 1) + " times", false});
      continue;
    }
    keep.push_back(std::move(job));
  }
  return keep;
}

namespace {

// A stream entry id "ms-seq" as a comparable pair; {0,0} when unparseable.
std::pair<unsigned long long, unsigned long long> entryId(std::string_view id) {
  auto dash = id.find('-');
  if (dash == std::string_view::npos) return {0, 0};
  try {
    return {std::stoull(std::string(id.substr(0, dash))), std::stoull(std::string(id.substr(dash + 1)))};
  } catch (const std::logic_error&) {
    return {0, 0};
  }
}

}  // namespace

void JobStream::trimAcknowledged() {
  // Safe point over every group: an entry is removed only when every group
  // has read it and none holds it pending, i.e. below the oldest pending
  // entry and not above the last delivered one.
  redis::Reply groups = redis_.command({"XINFO", "GROUPS", kJobStreamKey});
  if (!groups.isArray() || groups.size() == 0) return;
  std::string threshold;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    redis::Reply g = groups.element(i);
    std::string name, last_delivered;
    long long pending = 0;
    for (std::size_t f = 0; f + 1 < g.size(); f += 2) {
      auto field = g.element(f).str();
      if (field == "name") name = std::string(g.element(f + 1).str());
      if (field == "pending") pending = g.element(f + 1).integer();
      if (field == "last-delivered-id") last_delivered = std::string(g.element(f + 1).str());
    }
    std::string safe = last_delivered;
    if (pending > 0) {
      redis::Reply summary = redis_.command({"XPENDING", kJobStreamKey, name});
      if (summary.size() < 2 || summary.element(1).isNil()) return;  // changed meanwhile
      safe = std::string(summary.element(1).str());
    }
    if (entryId(safe) == std::make_pair(0ULL, 0ULL)) return;
    if (threshold.empty() || entryId(safe) < entryId(threshold)) threshold = safe;
  }
  // Entries below `threshold` are acknowledged by every group; new ones only
  // come with higher ids, and an acknowledged entry never becomes pending
  // again, so the trim cannot race a delivery.
  redis::Reply trimmed = redis_.command({"XTRIM", kJobStreamKey, "MINID", threshold});
  if (trimmed.isInteger()) trimmed_ += static_cast<std::uint64_t>(trimmed.integer());
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
