#include "registrar/sip/nta_incoming.h"

#include <stdexcept>

#include "common/log/logger.h"
#include "registrar/sip/incoming_request_reader.h"
#include "registrar/sip/nta_server_transaction.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sip_text.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct NtaIncomingState {
  nta_leg_t* leg = nullptr;
  NtaIncoming::Handler handler;
};

namespace {

int onRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip) {
  auto* state = reinterpret_cast<NtaIncomingState*>(magic);
  auto request = readIncomingRequest(sip);
  if (!request) return 400;
  if (msg_t* msg = nta_incoming_getrequest(irq)) {
    request->source_ip = sourceIp(msg);
    msg_destroy(msg);
  }
  state->handler(std::move(*request), std::make_unique<NtaServerTransaction>(irq));
  return 0;  // answered through the ServerTransaction
}

}  // namespace

NtaIncoming::NtaIncoming(SipAgent& agent, Handler handler)
    : state_(std::make_unique<NtaIncomingState>()) {
  state_->handler = std::move(handler);
  auto* nta = static_cast<nta_agent_t*>(agent.raw());
  state_->leg = nta_leg_tcreate(nta, onRequest, reinterpret_cast<nta_leg_magic_t*>(state_.get()),
                                NTATAG_NO_DIALOG(1), TAG_END());
  // A dialog-less leg without a URL is nta's default leg: every request that
  // matches no transaction or dialog comes here.
  if (!state_->leg) throw std::runtime_error("cannot create the default SIP leg");
}

NtaIncoming::~NtaIncoming() {
  if (state_->leg) nta_leg_destroy(state_->leg);
}

}  // namespace sipwake::registrar
