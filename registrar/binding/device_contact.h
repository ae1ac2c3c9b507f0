#pragma once

#include <string_view>

namespace sipwake::registrar {

// A URI an app names as where it takes calls (API ack, device REGISTER), to
// be sent on in a Contact or a Request-URI: at most 512 visible ASCII
// characters, none that could end a header or a name-addr, and a SIP URI we
// parse.
bool isDeviceContactUri(std::string_view uri);

}  // namespace sipwake::registrar
