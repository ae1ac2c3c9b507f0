#include "registrar/binding/sip_uri.h"

#include <cctype>

namespace sipwake::registrar {
namespace {

constexpr std::size_t kMaxUriLength = 512;

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool isMark(char c) {
  return c == '-' || c == '_' || c == '.' || c == '!' || c == '~' || c == '*' || c == '\'' ||
         c == '(' || c == ')';
}
bool isUserChar(char c) {
  // unreserved / user-unreserved (RFC 3261 25.1); '%' handled as escape.
  return isAlnum(c) || isMark(c) || c == '&' || c == '=' || c == '+' || c == '$' || c == ',' ||
         c == ';' || c == '?' || c == '/';
}
bool isParamChar(char c) {
  return isAlnum(c) || isMark(c) || c == '[' || c == ']' || c == '/' || c == ':' || c == '&' ||
         c == '+' || c == '$';
}
bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

bool validEscapes(std::string_view s, bool (*allowed)(char)) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return false;
      if (!isHex(s[i + 1]) || !isHex(s[i + 2])) return false;
      i += 2;
    } else if (!allowed(s[i])) {
      return false;
    }
  }
  return true;
}

bool validHostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : host) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (isAlnum(c) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return prev != '-';
}

bool validIpv6(std::string_view host) {
  if (host.size() < 2 || host.size() > 45) return false;
  int colons = 0;
  for (char c : host) {
    if (c == ':') ++colons;
    else if (!isHex(c) && c != '.') return false;
  }
  return colons >= 2 && colons <= 7;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string_view toString(SipTransport t) {
  switch (t) {
    case SipTransport::Udp: return "udp";
    case SipTransport::Tcp: return "tcp";
    case SipTransport::Tls: return "tls";
  }
  return "tcp";
}

std::optional<std::string> SipUri::param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::string SipUri::hostPort() const {
  std::string out = hostIsIpv6() ? "[" + host + "]" : host;
  if (port != 0) out += ":" + std::to_string(port);
  return out;
}

std::optional<SipTransport> SipUri::transport(SipTransport fallback) const {
  auto t = param("transport");
  if (secure) {
    if (t && lower(*t) != "tcp" && lower(*t) != "tls") return std::nullopt;
    return SipTransport::Tls;
  }
  if (!t) return fallback;
  std::string v = lower(*t);
  if (v == "udp") return SipTransport::Udp;
  if (v == "tcp") return SipTransport::Tcp;
  if (v == "tls") return SipTransport::Tls;
  return std::nullopt;
}

std::string SipUri::toString() const {
  std::string out = secure ? "sips:" : "sip:";
  if (!user.empty()) out += user + "@";
  out += hostPort();
  for (const auto& [k, v] : params) {
    out += ";" + k;
    if (!v.empty()) out += "=" + v;
  }
  return out;
}

std::optional<SipUri> parseSipUri(std::string_view text, SipUriError* error) {
  auto fail = [&](const char* why) -> std::optional<SipUri> {
    if (error) error->message = why;
    return std::nullopt;
  };
  if (text.size() > kMaxUriLength) return fail("URI is longer than 512 characters");
  SipUri uri;
  std::string scheme;
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return fail("URI must start with sip: or sips:");
  scheme = lower(text.substr(0, colon));
  if (scheme == "sips") uri.secure = true;
  else if (scheme != "sip") return fail("URI must start with sip: or sips:");
  std::string_view rest = text.substr(colon + 1);
  if (rest.find('?') != std::string_view::npos) return fail("URI headers (?...) are not accepted");

  // userinfo: everything before the last '@' that precedes the parameters.
  auto at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    if (userinfo.find(':') != std::string_view::npos) {
      return fail("URI must not carry a password");
    }
    if (userinfo.empty() || userinfo.size() > 128 || !validEscapes(userinfo, isUserChar)) {
      return fail("URI user part is empty or has invalid characters");
    }
    uri.user = std::string(userinfo);
    rest = rest.substr(at + 1);
  }

  std::string_view hostport = rest;
  std::string_view params;
  if (auto semi = rest.find(';'); semi != std::string_view::npos) {
    hostport = rest.substr(0, semi);
    params = rest.substr(semi + 1);
    if (params.empty()) return fail("URI has an empty parameter");
  }
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return fail("URI has an unterminated IPv6 address");
    uri.host = std::string(hostport.substr(1, close - 1));
    if (!validIpv6(uri.host)) return fail("URI has an invalid IPv6 address");
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("URI has garbage after the host");
      port_text = after.substr(1);
      if (port_text.empty()) return fail("URI has an empty port");
    }
  } else {
    auto pc = hostport.find(':');
    uri.host = lower(hostport.substr(0, pc));
    if (pc != std::string_view::npos) {
      port_text = hostport.substr(pc + 1);
      if (port_text.empty()) return fail("URI has an empty port");
    }
    if (!validHostname(uri.host)) return fail("URI has an invalid host");
  }
  if (!port_text.empty()) {
    int port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
        return fail("URI has an invalid port");
      }
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return fail("URI has an invalid port");
    uri.port = port;
  }
  while (!params.empty()) {
    auto semi = params.find(';');
    std::string_view p = params.substr(0, semi);
    bool more = semi != std::string_view::npos;
    params = more ? params.substr(semi + 1) : std::string_view();
    if (p.empty() || (more && params.empty())) return fail("URI has an empty parameter");
    auto eq = p.find('=');
    std::string_view name = p.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
    if (name.empty() || !validEscapes(name, isParamChar) || !validEscapes(value, isParamChar) ||
        (eq != std::string_view::npos && value.empty())) {
      return fail("URI has an invalid parameter");
    }
    uri.params.emplace_back(lower(name), std::string(value));
    if (uri.params.size() > 16) return fail("URI has too many parameters");
  }
  if (!uri.transport(SipTransport::Tcp)) return fail("URI asks for a transport we do not speak");
  return uri;
}

}  // namespace sipwake::registrar
