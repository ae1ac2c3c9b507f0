#include "registrar/sip/incoming_request_reader.h"

#include "registrar/sip/sip_text.h"

namespace sipwake::registrar {
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

}  // namespace

std::optional<IncomingRequest> readIncomingRequest(sip_t const* sip) {
  if (!sip || !sip->sip_request) return std::nullopt;
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
  return request;
}

}  // namespace sipwake::registrar
