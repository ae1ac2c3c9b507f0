#include "registrar/binding/device_contact.h"

#include "registrar/binding/sip_uri.h"

namespace sipwake::registrar {

bool isDeviceContactUri(std::string_view uri) {
  if (uri.size() > 512) return false;
  for (char c : uri) {
    if (c <= ' ' || c >= 127 || c == '<' || c == '>' || c == '"' || c == ',') return false;
  }
  return parseSipUri(uri).has_value();
}

}  // namespace sipwake::registrar
