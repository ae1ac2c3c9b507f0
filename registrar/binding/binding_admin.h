#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/crypto/credential_sealer.h"
#include "common/redis/redis_connection.h"
#include "registrar/binding/binding_store.h"
#include "registrar/cluster/cluster_keys.h"

namespace sipwake::registrar {

// Operators' queries and maintenance over every tenant's bindings (the
// admin API). Blocking; run on the store thread, one bounded batch per call
// so API requests interleave. Throws redis::RedisUnavailable.

// Instance ownership (written by the instances themselves, see the lease
// layout): absent keys simply give empty answers.
inline constexpr const char* kPushGroup = "pushgw";

struct BindingPage {
  std::vector<BindingFields> bindings;
  std::string next_cursor;  // "0": no more
};

// One page of binding records (failed ones included: they left the index but
// their record stays for the retention period), by a keyspace SCAN (of each
// Redis Cluster primary in turn, redis/keyspace_scan.h) from `cursor` ("0"
// to begin). `tenant` and `state` filter when not empty; a
// page holds about `limit` records (SCAN steps are not exact: a few more, or
// fewer, even none, while next_cursor is not "0").
BindingPage listBindings(redis::Connection& redis, const std::string& tenant,
                         const std::string& state, std::size_t limit, const std::string& cursor);

struct InstanceInfo {
  std::string name;
  Millis deadline = 0;  // liveness deadline (ms since epoch)
  BindingFields attributes;  // sip, api, started_at, state
  std::size_t leases = 0;
};

struct Ownership {
  std::vector<InstanceInfo> instances;
  std::map<std::string, std::size_t> leases_by_owner;  // live leases per owner
};
Ownership readOwnership(redis::Connection& redis);

// Adds the owner of each binding in one batch of the index to `counts`;
// returns the next cursor ("0": done).
std::string countBindingOwners(redis::Connection& redis, const std::string& cursor,
                               std::size_t batch, std::map<std::string, std::size_t>& counts);

struct PushQueueInfo {
  long long length = 0;      // XLEN of the job stream
  long long pending = 0;     // delivered to pushgw, not yet acknowledged
  long long consumers = 0;   // pushgw consumers with pending jobs
  bool group_exists = false;
};
PushQueueInfo readPushQueue(redis::Connection& redis);

struct ResealCounts {
  std::size_t resealed = 0;
  std::size_t already_current = 0;
  std::size_t failed = 0;  // blob unreadable with every known key (logged by binding)
};

struct Resealed {
  std::string key;  // tenant/id
  std::uint64_t generation = 0;
  std::string sealed;
};

// Re-seals the credentials of one batch of the index under the sealer's
// current key, each with a compare-and-set (only while the stored blob is
// the one read, so a concurrent PUT wins); returns the next cursor.
std::string resealBatch(redis::Connection& redis, const crypto::CredentialSealer& sealer,
                        const std::string& cursor, std::size_t batch, ResealCounts& counts,
                        std::vector<Resealed>& resealed);

}  // namespace sipwake::registrar
