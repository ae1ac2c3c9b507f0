#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sipwake::registrar {

// One REGISTER to send. The SIP layer adds Via, Max-Forwards, tags.
struct RegisterRequest {
  std::string request_uri;  // sip:<AOR domain>
  std::string destination;  // where to send: sip:host[:port];transport=x
  std::string tenant;       // whose binding: the target policy may differ per tenant
  std::string aor;          // From and To
  std::string contact;      // our Contact URI
  // Another instance's Contact for this binding, removed (expires=0) in the
  // same REGISTER that adds ours: taking a binding over leaves no gap and
  // no second contact at the PBX. Empty: none.
  std::string removed_contact;
  std::string call_id;
  std::uint32_t cseq = 0;
  std::uint32_t expires = 0;
  std::string authorization;  // header value; empty: none
  bool proxy_authorization = false;
};

// The final answer to a REGISTER, reduced to what the engine acts on.
struct RegisterResponse {
  int status = 0;
  std::string reason;
  // Our own stack made this answer up: no usable response came from the PBX
  // (status 408: timeout; 503 and others: connection/DNS/TLS failure).
  bool local = false;
  // Not sent at all: the target policy forbids where it would go (local too;
  // reason says why).
  bool target_forbidden = false;
  bool contact_listed = false;                  // our Contact is among the 2xx contacts
  std::optional<std::uint32_t> contact_expires;  // its expires parameter
  std::optional<std::uint32_t> expires_header;
  std::optional<std::uint32_t> min_expires;
  std::optional<std::uint32_t> retry_after;  // seconds
  std::vector<std::string> www_authenticate;    // raw header values
  std::vector<std::string> proxy_authenticate;  // raw header values
  std::optional<std::string> next_nonce;        // Authentication-Info nextnonce
  std::string source_ip;  // where the answer came from (the PBX as we reach it)
};

// Sends REGISTER transactions. Implemented on sofia nta in registrar/sip;
// scripted in unit tests. Runs on the SIP thread.
class RegisterTransport {
 public:
  using ResponseHandler = std::function<void(const RegisterResponse&)>;
  virtual ~RegisterTransport() = default;
  // The handler runs exactly once, later (never from inside send), with the
  // final response. `contact_user` identifies our Contact among the 2xx's.
  virtual void send(const RegisterRequest& request, std::string_view contact_user,
                    ResponseHandler handler) = 0;
};

}  // namespace sipwake::registrar
