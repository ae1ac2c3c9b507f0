#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "registrar/call/incoming_request.h"
#include "registrar/sip/sip_text.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

// One nta server transaction. Its destruction releases the transaction to
// nta, which keeps it for retransmissions as long as SIP requires; one left
// without a final answer gets 500.
class NtaServerTransaction final : public ServerTransaction {
 public:
  explicit NtaServerTransaction(nta_incoming_t* irq);
  ~NtaServerTransaction() override;
  void respond(int status, std::string_view reason, const SipHeaders& headers) override;
  void onCancel(std::function<void(bool)> handler) override;
  nta_incoming_t* irq() const { return irq_; }  // for the relay, on the SIP thread

 private:
  static int onAckOrCancel(nta_incoming_magic_t* magic, nta_incoming_t*, sip_t const* sip);

  nta_incoming_t* irq_;
  std::function<void(bool)> cancel_handler_;
};

}  // namespace sipwake::registrar
