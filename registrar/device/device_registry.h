#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/event/clock.h"

namespace sipwake::registrar {

// A woken app's connection to our device listener. The SIP layer holds the
// transport behind it; a registration lives exactly as long as it.
class DeviceConnection {
 public:
  virtual ~DeviceConnection() = default;
  virtual bool alive() const = 0;
  virtual std::string peer() const = 0;  // ip:port, for logs
};

struct DeviceRegistration {
  std::string binding_key;
  std::string contact;  // the app's Contact URI
  std::shared_ptr<DeviceConnection> connection;
  Millis expires_at = 0;
};

// The apps signed in for their bindings, connection-scoped (like RFC 5626
// flows): a registration whose connection closed or whose expiry passed is
// gone. SIP thread only.
class DeviceRegistry {
 public:
  explicit DeviceRegistry(Clock& clock) : clock_(clock) {}
  // Replaces a registration of the same binding and contact.
  void add(DeviceRegistration registration);
  void remove(const std::string& binding_key, const std::string& contact);
  // The live registrations of a binding (dead ones are dropped on the way).
  std::vector<DeviceRegistration> live(const std::string& binding_key);
  // Drops every dead or expired registration; returns how many are left.
  std::size_t sweep();
  // Registrations held, some possibly dead since the last sweep.
  std::size_t size() const { return count_; }

 private:
  bool usable(const DeviceRegistration& r, Millis now) const;

  Clock& clock_;
  std::map<std::string, std::vector<DeviceRegistration>> by_binding_;
  std::size_t count_ = 0;
};

}  // namespace sipwake::registrar
