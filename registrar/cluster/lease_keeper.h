#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/event/clock.h"
#include "common/redis/redis_connection.h"
#include "registrar/cluster/cluster_keys.h"

namespace prometheus {
class Gauge;
class Registry;
}  // namespace prometheus

namespace sipwake::registrar {

// The instance holding a live lease on `shard` now; empty when none.
std::string leaseOwner(redis::Connection& redis, std::uint32_t shard);
// True while `instance` announces itself: its liveness deadline in the
// instances zset is ahead of Redis's clock (it leaves the zset on SIGTERM,
// its deadline lapses a lease TTL after it died).
bool instanceAlive(redis::Connection& redis, const std::string& instance);

// Keeps this instance's share of the shards: announces the instance, renews
// its leases, claims free or lapsed ones up to a fair share, and gives up
// the excess when another instance joins. All decisions of one round happen
// in one Lua script on Redis's clock, so instances never disagree about who
// owns a shard and clock skew between hosts does not matter.
// Runs its own thread with its own Redis connection.
class LeaseKeeper {
 public:
  struct Options {
    redis::RedisUrl url;
    std::string instance;
    std::uint32_t shards = 64;
    Millis ttl = 10 * kSecond;
    std::string sip_advertise;
    std::string api_listen;
    prometheus::Registry* registry = nullptr;  // registrar_shard_leases, registrar_live_instances
  };
  // Called on the lease thread, in order, after each round that changed
  // this instance's shards.
  using ShardsChanged = std::function<void(const std::vector<std::uint32_t>& gained,
                                           const std::vector<std::uint32_t>& lost)>;

  LeaseKeeper(Options options, ShardsChanged on_change);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void start();
  // Hands every shard over when another instance is alive and returns true;
  // false when this is the last instance (its leases then simply run out, and
  // a restart takes them back). Either way no further rounds run. Blocks for
  // a round trip or two (a few seconds while Redis is unreachable).
  bool leave();
  void stop();

  bool owns(std::uint32_t shard) const;
  std::uint32_t shards() const { return options_.shards; }
  bool settled() const { return settled_.load(); }  // at least one round done
  std::size_t ownedCount() const;
  int liveInstances() const { return live_.load(); }
  const std::string& instance() const { return options_.instance; }

 private:
  struct Round {
    std::set<std::uint32_t> mine;
    int live = 0;
  };
  void run();
  Round tick(bool leaving);
  void apply(const Round& round);

  Options options_;
  ShardsChanged on_change_;
  redis::Connection redis_;
  redis::Script script_;
  std::thread thread_;
  std::mutex round_mutex_;  // one round at a time (leave() runs its own)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool leaving_ = false;
  std::set<std::uint32_t> mine_;  // guarded by mutex_
  std::atomic<bool> settled_{false};
  std::atomic<int> live_{0};
  prometheus::Gauge* leases_gauge_ = nullptr;
  prometheus::Gauge* live_gauge_ = nullptr;
};

}  // namespace sipwake::registrar
