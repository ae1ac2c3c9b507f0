#include "registrar/cluster/binding_router.h"

#include "common/log/logger.h"
#include "registrar/cluster/shard.h"
#include "registrar/push/push_job_writer.h"
#include "registrar/push/push_outcome_listener.h"

namespace sipwake::registrar {

using nlohmann::json;

BindingRouter::BindingRouter(std::string instance, const LeaseKeeper& leases, StoreWorker& store,
                             Local local, Millis reply_timeout)
    : instance_(std::move(instance)),
      leases_(leases),
      store_(store),
      local_(std::move(local)),
      reply_timeout_(reply_timeout) {}

bool BindingRouter::ownsKey(const std::string& key) const {
  return leases_.owns(shardOf(key, leases_.shards()));
}

void BindingRouter::upsert(RegistrationSpec spec) {
  if (ownsKey(spec.key)) {
    local_.upsert(std::move(spec));
    return;
  }
  // The PUT is in Redis already: the owner reads it from there. Without an
  // owner, whoever claims the shard next loads it with the rest.
  auto shared = std::make_shared<RegistrationSpec>(std::move(spec));
  store_.submit([this, shared](BindingStore& store) {
    forward(store, shared->key, {{"kind", "peer_upsert"}, {"key", shared->key}},
            [this, shared](bool) {
              if (ownsKey(shared->key)) local_.upsert(std::move(*shared));
            });
  });
}

void BindingRouter::remove(std::string key, std::function<void(bool)> done) {
  if (ownsKey(key)) {
    local_.remove(std::move(key), std::move(done));
    return;
  }
  store_.submit([this, key, done = std::move(done)](BindingStore& store) mutable {
    forward(store, key, {{"kind", "peer_remove"}, {"key", key}},
            [this, key, done = std::move(done)](bool forwarded) mutable {
              // Nobody else holds it: a binding we parked may still be here.
              if (!forwarded) local_.remove(key, std::move(done));
            });
  });
}

void BindingRouter::deviceAck(std::string key, std::string device, std::string call_id,
                              std::string contact, std::function<void(bool)> done) {
  // The call rings where the PBX sent its INVITE: usually here (we own the
  // binding), otherwise the instance named in the call's record.
  json message = {{"kind", "peer_ack"}, {"key", key},         {"device", device},
                  {"call_id", call_id}, {"contact", contact}};
  local_.ack(key, device, call_id, contact,
             [this, key, call_id, message = std::move(message),
              done = std::move(done)](bool found) mutable {
               if (found) {
                 done(true);
                 return;
               }
               store_.submit([this, key, call_id, message = std::move(message),
                              done = std::move(done)](BindingStore& store) mutable {
                 std::string peer;
                 try {
                   redis::Reply r = store.connection().command(
                       {"HGET", callStateKey(key, call_id), "instance"});
                   if (r.isString()) peer = std::string(r.str());
                 } catch (const redis::RedisUnavailable&) {
                 }
                 if (peer.empty() || peer == instance_) {
                   done(false);
                   return;
                 }
                 forwardTo(store, peer, std::move(message), std::move(done));
               });
             });
}

void BindingRouter::resealed(std::vector<Resealed> batch) {
  std::vector<Resealed> mine;
  for (auto& r : batch) {
    if (ownsKey(r.key)) mine.push_back(std::move(r));
  }
  if (!mine.empty()) local_.resealed(std::move(mine));
}

void BindingRouter::forward(BindingStore& store, const std::string& key, json message,
                            std::function<void(bool)> done) {
  std::string owner;
  try {
    owner = leaseOwner(store.connection(), shardOf(key, leases_.shards()));
  } catch (const redis::RedisUnavailable& e) {
    log::warn("cannot find the binding's owner", {{"binding", key}, {"error", e.what()}});
  }
  if (owner.empty() || owner == instance_) {
    done(false);
    return;
  }
  if (message["kind"] == "peer_upsert") {  // no answer needed
    try {
      store.connection().command({"PUBLISH", outcomeChannel(owner), message.dump()});
    } catch (const redis::RedisUnavailable&) {
    }
    return;
  }
  forwardTo(store, owner, std::move(message), std::move(done));
}

void BindingRouter::forwardTo(BindingStore& store, const std::string& peer, json message,
                              std::function<void(bool)> done) {
  std::uint64_t id = next_id_++;
  message["reply_to"] = instance_;
  message["request"] = id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_[id] = Pending{std::move(done), SystemClock::instance().now() + reply_timeout_};
  }
  long long listeners = 0;
  try {
    listeners = store.connection().command({"PUBLISH", outcomeChannel(peer), message.dump()}).integer();
  } catch (const redis::RedisUnavailable&) {
  }
  // Nobody listens: the peer is gone. On Redis Cluster PUBLISH counts only
  // the subscribers of the node that took it (the message reaches the
  // others over the cluster bus), so a live peer may count 0: there its
  // announcement decides.
  if (listeners == 0 && (!store.connection().url().viaCluster() || !peerAnnounced(store, peer))) {
    complete(id, false);
  }
}

bool BindingRouter::peerAnnounced(BindingStore& store, const std::string& peer) {
  try {
    return instanceAlive(store.connection(), peer);
  } catch (const redis::RedisUnavailable&) {
    return true;  // cannot tell: let the reply timeout decide
  }
}

bool BindingRouter::onMessage(const json& m) {
  std::string kind = m.value("kind", "");
  if (kind.rfind("peer_", 0) != 0) return false;
  std::string key = m.value("key", "");
  if (kind == "peer_reply") {
    complete(m.value("request", std::uint64_t{0}), m.value("ok", false));
  } else if (kind == "peer_upsert") {
    if (!ownsKey(key)) return true;  // it moved on; its new owner loads it
    store_.submit([this, key](BindingStore& store) {
      try {
        if (auto loaded = store.loadOne(key)) local_.load({std::move(*loaded)});
      } catch (const redis::RedisUnavailable& e) {
        log::warn("cannot load a binding a peer updated", {{"binding", key}, {"error", e.what()}});
      }
    });
  } else if (kind == "peer_remove") {
    local_.remove(key, [this, m](bool ok) { reply(m, ok); });
  } else if (kind == "peer_ack") {
    local_.ack(key, m.value("device", ""), m.value("call_id", ""), m.value("contact", ""),
               [this, m](bool ok) { reply(m, ok); });
  }
  return true;
}

void BindingRouter::reply(const json& request, bool ok) {
  std::string to = request.value("reply_to", "");
  if (to.empty()) return;
  json answer = {{"kind", "peer_reply"}, {"request", request.value("request", std::uint64_t{0})}, {"ok", ok}};
  store_.submit([to, text = answer.dump()](BindingStore& store) {
    try {
      store.connection().command({"PUBLISH", outcomeChannel(to), text});
    } catch (const redis::RedisUnavailable&) {
    }
  });
}

void BindingRouter::complete(std::uint64_t id, bool ok) {
  std::function<void(bool)> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    done = std::move(it->second.done);
    pending_.erase(it);
  }
  if (done) done(ok);
}

void BindingRouter::expireReplies(Millis now) {
  std::vector<std::function<void(bool)>> expired;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& done : expired) {
    if (done) done(false);
  }
}

}  // namespace sipwake::registrar
