#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "registrar/api/registrar_api.h"
#include "registrar/binding/binding_store.h"
#include "registrar/binding/store_worker.h"
#include "registrar/cluster/lease_keeper.h"

namespace sipwake::registrar {

// Sends what the API asks for to the instance that owns the binding's shard:
// this one's engine, or a peer's through its Redis channel (the channel
// pushgw reports on, see push_outcome_listener.h). A peer answers removals
// and acks on ours. Any instance's API can thus serve any binding.
class BindingRouter final : public RegistrationControl {
 public:
  // This instance's engine and calls. Each posts to the SIP thread itself;
  // `done` callbacks run there.
  struct Local {
    std::function<void(RegistrationSpec spec)> upsert;
    std::function<void(std::vector<LoadedBinding> batch)> load;
    std::function<void(std::string key, std::function<void(bool)> done)> remove;
    std::function<void(std::string key, std::string device, std::string call_id,
                       std::string contact, std::function<void(bool)> done)> ack;
    std::function<void(std::vector<Resealed> batch)> resealed;
  };

  BindingRouter(std::string instance, const LeaseKeeper& leases, StoreWorker& store, Local local,
                Millis reply_timeout = 4 * kSecond);

  void upsert(RegistrationSpec spec) override;
  void remove(std::string key, std::function<void(bool unregistered)> done) override;
  void deviceAck(std::string key, std::string device, std::string call_id, std::string contact,
                 std::function<void(bool found)> done) override;
  // Key rotation: the bindings this instance owns take the new blobs. Other
  // owners keep opening their old blobs (a retired key keeps opening until
  // restart) and load the new ones when they next read the binding.
  void resealed(std::vector<Resealed> batch) override;

  // A message on this instance's channel. False when it is not a peer
  // message (the caller handles it). Called on the listener thread.
  bool onMessage(const nlohmann::json& message);
  // Fails forwarded requests whose peer did not answer in time.
  void expireReplies(Millis now);

 private:
  bool ownsKey(const std::string& key) const;
  // Publishes `message` to the shard owner; calls `no_owner` when there is
  // none or it is this instance (the lease moved meanwhile). Store thread.
  void forward(BindingStore& store, const std::string& key, nlohmann::json message,
               std::function<void(bool)> done);
  void forwardTo(BindingStore& store, const std::string& peer, nlohmann::json message,
                 std::function<void(bool)> done);
  // The peer still announces itself (cluster mode, where PUBLISH's count
  // cannot tell). Store thread.
  bool peerAnnounced(BindingStore& store, const std::string& peer);
  void reply(const nlohmann::json& request, bool ok);
  void complete(std::uint64_t id, bool ok);

  struct Pending {
    std::function<void(bool)> done;
    Millis deadline;
  };

  std::string instance_;
  const LeaseKeeper& leases_;
  StoreWorker& store_;
  Local local_;
  Millis reply_timeout_;
  std::mutex mutex_;
  std::map<std::uint64_t, Pending> pending_;
  std::atomic<std::uint64_t> next_id_{1};
};

}  // namespace sipwake::registrar
