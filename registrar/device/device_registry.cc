#include "registrar/device/device_registry.h"

#include <algorithm>

namespace sipwake::registrar {

bool DeviceRegistry::usable(const DeviceRegistration& r, Millis now) const {
  return r.expires_at > now && r.connection && r.connection->alive();
}

void DeviceRegistry::add(DeviceRegistration registration) {
  auto& list = by_binding_[registration.binding_key];
  count_ -= std::erase_if(list, [&](const DeviceRegistration& r) { return r.contact == registration.contact; });
  list.push_back(std::move(registration));
  ++count_;
}

void DeviceRegistry::remove(const std::string& binding_key, const std::string& contact) {
  auto it = by_binding_.find(binding_key);
  if (it == by_binding_.end()) return;
  count_ -= std::erase_if(it->second, [&](const DeviceRegistration& r) { return r.contact == contact; });
  if (it->second.empty()) by_binding_.erase(it);
}

std::vector<DeviceRegistration> DeviceRegistry::live(const std::string& binding_key) {
  auto it = by_binding_.find(binding_key);
  if (it == by_binding_.end()) return {};
  Millis now = clock_.now();
  count_ -= std::erase_if(it->second, [&](const DeviceRegistration& r) { return !usable(r, now); });
  std::vector<DeviceRegistration> out = it->second;
  if (it->second.empty()) by_binding_.erase(it);
  return out;
}

std::size_t DeviceRegistry::sweep() {
  Millis now = clock_.now();
  for (auto it = by_binding_.begin(); it != by_binding_.end();) {
    count_ -= std::erase_if(it->second, [&](const DeviceRegistration& r) { return !usable(r, now); });
    it = it->second.empty() ? by_binding_.erase(it) : std::next(it);
  }
  return count_;
}

}  // namespace sipwake::registrar
