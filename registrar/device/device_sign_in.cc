#include "registrar/device/device_sign_in.h"

#include <algorithm>

#include "common/crypto/hash.h"
#include "common/log/logger.h"
#include "registrar/binding/device_contact.h"
#include "registrar/registration/digest_auth.h"

namespace sipwake::registrar {

DeviceSignIn::DeviceSignIn(DeviceSignInPolicy policy, Clock& clock, DeviceSecrets& secrets,
                           DeviceRegistry& registry, prometheus::Registry* metrics)
    : policy_(std::move(policy)),
      clock_(clock),
      secrets_(secrets),
      registry_(registry),
      nonces_(clock),
      failures_(clock, policy_.max_failures, policy_.failure_window) {
  if (!metrics) return;
  results_ = &prometheus::BuildCounter()
                  .Name("registrar_device_registers_total")
                  .Help("REGISTERs of woken apps at the device listener, by result")
                  .Register(*metrics);
  for (const char* r : {"ok", "removed", "challenged", "rejected", "rate_limited", "not_found", "invalid"}) {
    result_counters_[r] = &results_->Add({{"result", r}});
  }
  connected_ = &prometheus::BuildGauge()
                    .Name("registrar_devices_signed_in")
                    .Help("App registrations alive on their connections")
                    .Register(*metrics)
                    .Add({});
}

void DeviceSignIn::count(const char* result) {
  if (auto it = result_counters_.find(result); it != result_counters_.end()) it->second->Increment();
}

void DeviceSignIn::challenge(ServerTransaction& transaction, bool stale) {
  std::string value = "Digest realm=\"" + policy_.realm + "\", nonce=\"" + nonces_.issue() +
                      "\", qop=\"auth\", algorithm=MD5";
  if (stale) value += ", stale=true";
  transaction.respond(401, "Unauthorized", {{"WWW-Authenticate", value}});
  count("challenged");
}

void DeviceSignIn::onRegister(const DeviceRegister& request, ServerTransaction& transaction) {
  if (failures_.blocked(request.source_ip)) {
    transaction.respond(403, "Too Many Failed Sign-Ins");
    count("rate_limited");
    return;
  }
  auto secret = secrets_.deviceSecret(request.target_user, policy_.realm);
  if (!secret) {
    // Guessing Contact tokens costs a failure too.
    failures_.failed(request.source_ip);
    transaction.respond(404, "Not Found");
    count("not_found");
    return;
  }
  auto auth = request.authorization.empty() ? std::nullopt
                                            : parseDigestAuthorization(request.authorization);
  if (!auth || auth->realm != policy_.realm) {
    challenge(transaction, false);
    return;
  }
  if (!nonces_.valid(auth->nonce)) {
    challenge(transaction, true);  // ours but too old, or never ours: ask again
    return;
  }
  if (!crypto::constantTimeEqual(auth->username, secret->username) ||
      !verifyDigestResponse(*auth, "REGISTER", secret->ha1)) {
    failures_.failed(request.source_ip);
    log::warn("device sign-in refused: wrong credentials",
              {{"binding", secret->binding_key}, {"source", request.source_ip}});
    transaction.respond(403, "Forbidden");
    count("rejected");
    return;
  }
  if (request.contact.empty()) {
    transaction.respond(400, "Contact Required");
    count("invalid");
    return;
  }
  // The contact is answered back in our Contact header and becomes the
  // Request-URI of relayed calls: sofia lets folded lines and raw bytes into
  // a URI, which must not travel on.
  if (!isDeviceContactUri(request.contact)) {
    transaction.respond(400, "Invalid Contact");
    count("invalid");
    return;
  }
  int expires = request.expires < 0 ? policy_.default_expires : std::min(request.expires, policy_.max_expires);
  if (expires == 0) {
    registry_.remove(secret->binding_key, request.contact);
    transaction.respond(200, "OK");
    count("removed");
    if (connected_) connected_->Set(static_cast<double>(registry_.size()));
    return;
  }
  registry_.add({secret->binding_key, request.contact, request.connection,
                 clock_.now() + static_cast<Millis>(expires) * kSecond});
  transaction.respond(200, "OK", {{"Contact", "<" + request.contact + ">;expires=" + std::to_string(expires)}});
  count("ok");
  log::info("device signed in", {{"binding", secret->binding_key},
                                 {"peer", request.connection ? request.connection->peer() : ""}});
  // The gauge follows at once; closed connections leave it at the next sweep.
  if (connected_) connected_->Set(static_cast<double>(registry_.size()));
  if (on_signed_in_) on_signed_in_(secret->binding_key);
}

void DeviceSignIn::sweep() {
  std::size_t left = registry_.sweep();
  if (connected_) connected_->Set(static_cast<double>(left));
}

}  // namespace sipwake::registrar
