#pragma once

#include <functional>
#include <string>
#include <vector>

#include "registrar/binding/sip_uri.h"
#include "registrar/binding/target_policy.h"
#include "registrar/registration/register_transport.h"

namespace sipwake::registrar {

// Finds the addresses a registrar target stands for (RFC 3263 without
// NAPTR: the transport is always known; SRV when no port is given, then
// A/AAAA). Implemented in registrar/sip; scripted in unit tests.
// Runs on the SIP thread.
class TargetResolver {
 public:
  struct Result {
    std::vector<IpAddress> addresses;  // empty: error says why
    int port = 0;                      // the port to use (from SRV, or the default)
    std::string error;
  };
  using Callback = std::function<void(Result)>;
  virtual ~TargetResolver() = default;
  // cb runs later, on the SIP thread, never from inside resolve(); also for a
  // literal address.
  virtual void resolve(const SipUri& target, SipTransport transport, Callback cb) = 0;
};

// Puts the target policy in front of a transport: every REGISTER's
// destination is resolved and each address checked before the inner
// transport may send a packet. A forbidden one is answered locally
// (target_forbidden). UDP and TCP are then sent to the checked address
// itself, so a second lookup cannot point elsewhere (DNS rebinding); TLS
// keeps the name, which its certificate must match.
// Runs on the SIP thread.
class TargetCheckingTransport final : public RegisterTransport {
 public:
  TargetCheckingTransport(const TargetPolicy& policy, TargetResolver& resolver,
                          RegisterTransport& inner)
      : policy_(policy), resolver_(resolver), inner_(inner) {}

  void send(const RegisterRequest& request, std::string_view contact_user,
            ResponseHandler handler) override;

 private:
  const TargetPolicy& policy_;
  TargetResolver& resolver_;
  RegisterTransport& inner_;
};

}  // namespace sipwake::registrar
