#pragma once

#include <string>

#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

// Small readers and writers of SIP text around sofia's parsed messages,
// shared by the nta wrappers in registrar/sip.
std::string sofiaText(const char* s);    // "" for null
std::string sofiaUrl(const url_t* url);  // "" when it does not fit 512 bytes
std::string unquote(std::string s);      // a display name without its quotes
std::string sourceIp(msg_t* msg);        // where a received message came from
std::string bracketed(const std::string& host);  // [v6] for URIs and host:port

}  // namespace sipwake::registrar
