#include "registrar/sip/sip_text.h"

#include <arpa/inet.h>

namespace sipwake::registrar {

std::string sofiaText(const char* s) { return s ? s : ""; }

std::string sofiaUrl(const url_t* url) {
  if (!url) return {};
  char buffer[512];
  if (url_e(buffer, sizeof buffer, url) < 0) return {};
  return buffer;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string sourceIp(msg_t* msg) {
  std::string ip;
  if (su_addrinfo_t* ai = msg_addrinfo(msg); ai && ai->ai_addr) {
    char buffer[INET6_ADDRSTRLEN] = {};
    auto* sa = reinterpret_cast<su_sockaddr_t*>(ai->ai_addr);
    if (su_inet_ntop(sa->su_family, SU_ADDR(sa), buffer, sizeof buffer)) ip = buffer;
  }
  return ip;
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace sipwake::registrar
