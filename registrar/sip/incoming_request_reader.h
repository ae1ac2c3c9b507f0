#pragma once

#include <optional>

#include "registrar/call/incoming_request.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

// What call handling needs of a parsed SIP request to one of our Contacts.
// Pure (no agent, no transaction), so a whole message can be fuzzed through
// it; source_ip is left empty: only the transport knows it.
// nullopt when `sip` is not a request.
std::optional<IncomingRequest> readIncomingRequest(sip_t const* sip);

}  // namespace sipwake::registrar
