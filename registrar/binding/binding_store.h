#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "common/redis/redis_connection.h"
#include "registrar/binding/binding_request.h"
#include "registrar/registration/registration_observer.h"
#include "registrar/registration/registration_spec.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

// Redis layout (every key of one binding shares the hash tag {tenant/id}):
//   sipwake:binding:{<tenant>/<id>}  hash: the binding, its sealed credential, its state
//   sipwake:bindings                 zset: binding key -> last PUT time (ms)
//   sipwake:push:jobs                stream: push jobs for pushgw
//   sipwake:trace:{<tenant>/<id>}    list: the binding's trace, newest first, capped
std::string bindingRedisKey(const std::string& key);
std::string traceRedisKey(const std::string& key);
inline constexpr const char* kBindingIndexKey = "sipwake:bindings";
inline constexpr const char* kPushStreamKey = "sipwake:push:jobs";

// What a PUT writes.
struct NewBinding {
  std::string tenant;
  std::string id;
  std::string key;  // tenant/id
  std::string aor;
  std::string registrar;  // as given; empty when derived from the AOR
  std::string destination;
  std::string request_uri;
  std::string transport;
  std::uint32_t expires = 600;
  std::string username;
  std::string sealed_password;
  std::string devices_json;
  std::string owner;
  std::string contact_suffix;  // "@host:port;transport=x": our Contact is sip:<token><suffix>
  std::string candidate_token;    // used when the binding is new
  std::string candidate_call_id;  // used when new or moved to another PBX/AOR
};

struct PutResult {
  bool created = false;
  std::uint64_t generation = 0;
  std::string contact_token;
  std::string call_id;
  std::uint32_t cseq = 0;
};

// A stored binding the engine should carry on with (start-up load).
struct LoadedBinding {
  RegistrationSpec spec;
  ResumeState resume;
};

using BindingFields = std::map<std::string, std::string>;

// Blocking Redis operations on bindings. Runs on the store thread; throws
// redis::RedisUnavailable when Redis cannot be reached.
class BindingStore {
 public:
  BindingStore(redis::Connection& connection, Millis failed_retention);

  PutResult put(const NewBinding& binding, Millis now);
  std::optional<BindingFields> get(const std::string& key);
  bool erase(const std::string& key);
  // Erases only if no PUT came since (the binding expired for lack of PUTs).
  bool eraseIfGeneration(const std::string& key, std::uint64_t generation);
  // Pipelined, generation-guarded status writes.
  void writeStatuses(const std::vector<RegistrationStatus>& statuses, const std::string& owner);
  // Marks failed, deletes the credential, keeps the record for the retention
  // period and queues a binding_failed push per device.
  void markFailed(const RegistrationStatus& status, FailureReason reason, const std::string& owner);
  // Every binding to keep registered whose key passes `wanted` (all when
  // unset), in batches.
  void loadAll(const std::function<void(std::vector<LoadedBinding>&&)>& sink,
               std::size_t batch_size = 500,
               const std::function<bool(const std::string& key)>& wanted = {});
  std::optional<LoadedBinding> loadOne(const std::string& key);
  // How many of `keys` the PBX last accepted with a Contact at one of
  // `hostports` (ours): not yet replaced by another instance's Contact.
  std::size_t countRegisteredVia(const std::vector<std::string>& keys,
                                 const std::vector<std::string>& hostports);
  bool ping();
  // For the cluster's own keys (leases, peer messages) and the operators'
  // queries (binding_admin.h), on the same thread.
  redis::Connection& connection() { return redis_; }

  // Pipelined LPUSH + LTRIM + PEXPIRE per binding of (binding key, JSON entry).
  void appendTraces(const std::vector<std::pair<std::string, std::string>>& entries,
                    const TraceOptions& options);
  // The newest `limit` entries, oldest first.
  std::vector<std::string> readTrace(const std::string& key, int limit);
  // Queues a binding_expiring push per device, unless this warning (offset)
  // was already sent for this generation (a restart re-arms its timers).
  // Returns the number of pushes queued.
  int warnExpiring(const std::string& key, std::uint64_t generation, Millis offset,
                   Millis expires_at, Millis now);
  // Queues a `test` push per device; the devices pushed (id, provider), in
  // the binding's order; nullopt when there is no such binding.
  struct TestPush {
    std::string test_id;
    std::string instance;  // where pushgw reports each device's outcome
    Millis expires_at = 0;
  };
  std::optional<std::vector<std::pair<std::string, std::string>>> queueTestPushes(
      const std::string& key, const TestPush& test, Millis now);

  static std::optional<LoadedBinding> toLoaded(const BindingFields& fields);

  // Push jobs queued here carry the trace settings so pushgw adds its attempts.
  void setTrace(const TraceOptions& trace) { trace_ = trace; }

 private:
  // XADDs each job (and, when tracing, a "queued" entry to its binding's trace).
  void queuePushes(const std::string& key, std::vector<nlohmann::json> jobs, Millis now);

  redis::Connection& redis_;
  Millis failed_retention_;
  redis::Script put_script_;
  redis::Script status_script_;
  redis::Script failed_script_;
  redis::Script erase_if_script_;
  redis::Script expiring_script_;
  TraceOptions trace_;
};

}  // namespace sipwake::registrar
