#include "registrar/sip/nta_server_transaction.h"

#include <strings.h>

namespace sipwake::registrar {

NtaServerTransaction::NtaServerTransaction(nta_incoming_t* irq) : irq_(irq) {
  // One To-tag for every answer of this transaction (180s and the final).
  nta_incoming_tag(irq_, nullptr);
}

NtaServerTransaction::~NtaServerTransaction() {
  if (nta_incoming_status(irq_) < 200) {
    nta_incoming_treply(irq_, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
  }
  nta_incoming_bind(irq_, nullptr, nullptr);
  nta_incoming_destroy(irq_);
}

void NtaServerTransaction::respond(int status, std::string_view reason, const SipHeaders& headers) {
  if (nta_incoming_status(irq_) >= 200) return;  // one final answer only
  std::string extra;
  for (const auto& [name, value] : headers) extra += name + ": " + value + "\r\n";
  std::string phrase(reason);
  nta_incoming_treply(irq_, status, phrase.c_str(),
                      TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
}

void NtaServerTransaction::onCancel(std::function<void(bool)> handler) {
  cancel_handler_ = std::move(handler);
  nta_incoming_bind(irq_, &NtaServerTransaction::onAckOrCancel,
                    reinterpret_cast<nta_incoming_magic_t*>(this));
}

int NtaServerTransaction::onAckOrCancel(nta_incoming_magic_t* magic, nta_incoming_t*,
                                        sip_t const* sip) {
  auto* self = reinterpret_cast<NtaServerTransaction*>(magic);
  if (!sip || !sip->sip_request || sip->sip_request->rq_method != sip_method_cancel) return 0;
  bool answered_elsewhere = false;
  for (sip_reason_t const* r = sip->sip_reason; r; r = r->re_next) {
    if (r->re_protocol && strcasecmp(r->re_protocol, "SIP") == 0 && r->re_cause &&
        std::string_view(r->re_cause) == "200") {
      answered_elsewhere = true;
    }
  }
  if (auto handler = std::move(self->cancel_handler_)) handler(answered_elsewhere);
  return 0;
}

}  // namespace sipwake::registrar
