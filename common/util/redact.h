#pragma once

#include <string>
#include <string_view>

namespace sipwake {

// Digest header values (Authorization, WWW-Authenticate, Authentication-Info)
// with the values of response, nonce, cnonce, nextnonce and rspauth replaced
// by "…": what a trace may show (scheme, username, realm, uri, algorithm,
// qop, nc) stays, what could be replayed or attacked offline goes.
std::string redactDigest(std::string_view header_value);

// "a1b2c3d4…": enough for support staff to match a device, not to push to it.
std::string shortenToken(std::string_view token);

}  // namespace sipwake
