#pragma once

#include <string>

namespace sipwake::registrar {

// What a woken app must prove it knows: the binding's SIP credentials, as
// H(username:realm:password) (MD5) for the device listener's realm.
struct DeviceSecret {
  std::string binding_key;
  std::string username;
  std::string ha1;
};

}  // namespace sipwake::registrar
