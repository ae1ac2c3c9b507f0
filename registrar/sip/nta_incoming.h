#pragma once

#include <functional>
#include <memory>

#include "registrar/call/incoming_request.h"

namespace sipwake::registrar {

class SipAgent;
struct NtaIncomingState;

// Requests sent to our Contacts: a default nta leg makes each one a server
// transaction (retransmissions, ACK and CANCEL matching stay in nta) and hands
// it over as an IncomingRequest with its ServerTransaction.
// Created, used and destroyed on the SIP thread.
class NtaIncoming {
 public:
  using Handler = std::function<void(IncomingRequest, std::unique_ptr<ServerTransaction>)>;
  NtaIncoming(SipAgent& agent, Handler handler);
  ~NtaIncoming();
  NtaIncoming(const NtaIncoming&) = delete;
  NtaIncoming& operator=(const NtaIncoming&) = delete;

 private:
  std::unique_ptr<NtaIncomingState> state_;
};

}  // namespace sipwake::registrar
