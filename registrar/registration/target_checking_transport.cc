#include "registrar/registration/target_checking_transport.h"

#include <memory>

#include "common/log/logger.h"

namespace sipwake::registrar {
namespace {

RegisterResponse localFailure(int status, std::string reason, bool forbidden) {
  RegisterResponse r;
  r.status = status;
  r.reason = std::move(reason);
  r.local = true;
  r.target_forbidden = forbidden;
  return r;
}

}  // namespace

void TargetCheckingTransport::send(const RegisterRequest& request, std::string_view contact_user,
                                   ResponseHandler handler) {
  SipUriError error;
  auto uri = parseSipUri(request.destination, &error);
  auto transport = uri ? uri->transport(SipTransport::Tcp) : std::nullopt;
  if (!uri || !transport) {
    // Built by us from a validated URI: cannot happen, but never send blind.
    SipUri nowhere;
    resolver_.resolve(nowhere, SipTransport::Tcp,
                      [handler = std::move(handler)](TargetResolver::Result) {
                        handler(localFailure(503, "unusable registrar target", false));
                      });
    return;
  }
  auto shared = std::make_shared<std::pair<RegisterRequest, std::string>>(request,
                                                                          std::string(contact_user));
  resolver_.resolve(*uri, *transport, [this, shared, host = uri->host, transport = *transport,
                                       handler = std::move(handler)](TargetResolver::Result r) mutable {
    RegisterRequest& req = shared->first;
    if (r.addresses.empty()) {
      handler(localFailure(503, "DNS: " + r.error, false));
      return;
    }
    for (const auto& address : r.addresses) {
      if (auto why = policy_.checkAddress(req.tenant, host, address)) {
        log::warn("REGISTER not sent: target forbidden",
                  {{"tenant", req.tenant}, {"target", host}, {"why", *why}});
        handler(localFailure(403, "target forbidden: " + *why, true));
        return;
      }
    }
    if (transport != SipTransport::Tls) {
      const IpAddress& pinned = r.addresses.front();
      std::string ip = pinned.v6 ? "[" + pinned.toString() + "]" : pinned.toString();
      req.destination = "sip:" + ip + ":" + std::to_string(r.port) + ";transport=" +
                        std::string(toString(transport));
    }
    inner_.send(req, shared->second, std::move(handler));
  });
}

}  // namespace sipwake::registrar
