#pragma once

#include <unordered_set>

#include "registrar/registration/register_transport.h"

namespace sipwake::registrar {

class SipAgent;
class SipThread;

// REGISTER transactions on sofia nta, without legs or nua handles: the
// message is built per request and nothing sofia-side outlives the
// transaction (PITFALLS: a nua handle per binding costs 10-28 KB).
// Runs on the SIP thread.
class NtaRegisterTransport final : public RegisterTransport {
 public:
  NtaRegisterTransport(SipThread& thread, SipAgent& agent, std::string user_agent);
  // Drops transactions still waiting for an answer (shutdown): their
  // handlers never run.
  ~NtaRegisterTransport() override;
  NtaRegisterTransport(const NtaRegisterTransport&) = delete;
  NtaRegisterTransport& operator=(const NtaRegisterTransport&) = delete;
  void send(const RegisterRequest& request, std::string_view contact_user,
            ResponseHandler handler) override;

  struct Pending;  // one transaction in flight
  void forget(Pending* pending) { pending_.erase(pending); }

 private:
  void deliverLater(ResponseHandler handler, RegisterResponse response);

  SipThread& thread_;
  SipAgent& agent_;
  std::string user_agent_;
  std::unordered_set<Pending*> pending_;
};

}  // namespace sipwake::registrar
