#include "registrar/sip/nta_incoming.h"

#include <stdexcept>

#include "common/log/logger.h"
#include "registrar/sip/nta_server_transaction.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct NtaIncomingState {
  nta_leg_t* leg = nullptr;
  NtaIncoming::Handler handler;
};

namespace {

IncomingRequest::Method methodOf(sip_method_t method) {
  switch (method) {
    case sip_method_invite: return IncomingRequest::Method::Invite;
    case sip_method_message: return IncomingRequest::Method::Message;
    case sip_method_options: return IncomingRequest::Method::Options;
    case sip_method_bye: return IncomingRequest::Method::Bye;
    default: return IncomingRequest::Method::Other;
  }
}

int onRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip) {
  auto* state = reinterpret_cast<NtaIncomingState*>(magic);
  if (!sip || !sip->sip_request) return 400;
  IncomingRequest request;
  request.method = methodOf(sip->sip_request->rq_method);
  request.method_name = sofiaText(sip->sip_request->rq_method_name);
  request.contact_user = sofiaText(sip->sip_request->rq_url->url_user);
  request.call_id = sip->sip_call_id ? sofiaText(sip->sip_call_id->i_id) : "";
  if (sip->sip_from) {
    request.from_uri = sofiaUrl(sip->sip_from->a_url);
    request.from_name = unquote(sofiaText(sip->sip_from->a_display));
  }
  if (sip->sip_to) request.to_uri = sofiaUrl(sip->sip_to->a_url);
  if (sip->sip_content_type) request.content_type = sofiaText(sip->sip_content_type->c_type);
  if (sip->sip_payload) request.body.assign(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  if (msg_t* msg = nta_incoming_getrequest(irq)) {
    request.source_ip = sourceIp(msg);
    msg_destroy(msg);
  }
  state->handler(std::move(request), std::make_unique<NtaServerTransaction>(irq));
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
