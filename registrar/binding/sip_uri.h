#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sipwake::registrar {

enum class SipTransport { Udp, Tcp, Tls };

std::string_view toString(SipTransport t);

// The subset of RFC 3261 SIP/SIPS URIs we accept from API clients: no
// password in the userinfo, no headers, bounded length.
struct SipUri {
  bool secure = false;  // sips:
  std::string user;
  std::string host;     // without brackets for IPv6
  int port = 0;         // 0: not given
  std::vector<std::pair<std::string, std::string>> params;  // names lower-cased

  std::optional<std::string> param(std::string_view name) const;
  bool hostIsIpv6() const { return host.find(':') != std::string::npos; }
  std::string hostPort() const;  // host[:port], IPv6 bracketed
  // The transport this URI asks for: sips or transport=tls -> TLS; transport=udp/tcp;
  // otherwise `fallback`. nullopt for transports we do not speak (sctp, ws...).
  std::optional<SipTransport> transport(SipTransport fallback) const;
  std::string toString() const;
};

struct SipUriError {
  std::string message;
};

// Returns the URI, or fills `error` with why it was refused.
std::optional<SipUri> parseSipUri(std::string_view text, SipUriError* error = nullptr);

}  // namespace sipwake::registrar
