#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/event/clock.h"
#include "registrar/call/incoming_request.h"
#include "registrar/device/device_auth.h"
#include "registrar/device/device_registry.h"
#include "registrar/device/device_secret.h"

namespace sipwake::registrar {

// The registration engine answers, from the sealed credentials.
class DeviceSecrets {
 public:
  virtual ~DeviceSecrets() = default;
  // `contact_user`: the binding's Contact token, the user part of the relay
  // URI its pushes carry. nullopt: no such (live) binding.
  virtual std::optional<DeviceSecret> deviceSecret(std::string_view contact_user,
                                                   std::string_view realm) = 0;
};

// A REGISTER an app sent to the device listener.
struct DeviceRegister {
  std::string target_user;    // To's user part: the binding's Contact token
  std::string authorization;  // the Authorization header, "" when none
  std::string contact;        // the app's Contact URI ("" when none)
  int expires = -1;           // -1: not given
  std::string source_ip;
  std::shared_ptr<DeviceConnection> connection;
};

struct DeviceSignInPolicy {
  std::string realm = "sipwake";
  int max_failures = 5;            // per source address within the window, then 403 at once
  Millis failure_window = kMinute;
  int default_expires = 600;
  int max_expires = 3600;
};

// Signs woken apps in: Digest (MD5, qop=auth) against the binding's own SIP
// username and password, checked against the sealed credentials; a wrong
// password gets 403, repeated failures from one address are refused unread.
// The registration lives on the app's connection. SIP thread only.
class DeviceSignIn {
 public:
  DeviceSignIn(DeviceSignInPolicy policy, Clock& clock, DeviceSecrets& secrets,
               DeviceRegistry& registry, prometheus::Registry* metrics);
  void onRegister(const DeviceRegister& request, ServerTransaction& transaction);
  // Called after an app signed in (the relay offers it the binding's ringing calls).
  void setOnSignedIn(std::function<void(const std::string& binding_key)> fn) { on_signed_in_ = std::move(fn); }
  // Drops closed connections and expired registrations; updates the gauge.
  void sweep();

 private:
  void challenge(ServerTransaction& transaction, bool stale);
  void count(const char* result);

  DeviceSignInPolicy policy_;
  Clock& clock_;
  DeviceSecrets& secrets_;
  DeviceRegistry& registry_;
  NonceBook nonces_;
  FailureLimiter failures_;
  prometheus::Family<prometheus::Counter>* results_ = nullptr;
  std::map<std::string, prometheus::Counter*> result_counters_;
  prometheus::Gauge* connected_ = nullptr;
  std::function<void(const std::string&)> on_signed_in_;
};

}  // namespace sipwake::registrar
