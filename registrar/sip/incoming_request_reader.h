#pragma once

#include <optional>

#include "registrar/call/incoming_request.h"
#include "registrar/device/device_sign_in.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

// What call handling needs of a parsed SIP request to one of our Contacts.
// Pure (no agent, no transaction), so a whole message can be fuzzed through
// it; source_ip is left empty: only the transport knows it.
// nullopt when `sip` is not a request.
std::optional<IncomingRequest> readIncomingRequest(sip_t const* sip);

// What device sign-in needs of a REGISTER an app sent to the device
// listener; source_ip and connection are the transport's to fill.
DeviceRegister readDeviceRegister(sip_t const* sip);

}  // namespace sipwake::registrar
