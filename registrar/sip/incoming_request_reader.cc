#include "registrar/sip/incoming_request_reader.h"

#include <cstdlib>

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

int expiresOf(sip_t const* sip) {
  if (sip->sip_contact && sip->sip_contact->m_expires) return std::atoi(sip->sip_contact->m_expires);
  if (sip->sip_expires) return static_cast<int>(sip->sip_expires->ex_delta);
  return -1;
}

std::string authorizationOf(sip_t const* sip) {
  if (!sip->sip_authorization) return "";
  char buffer[2048];
  issize_t n = sip_header_e(buffer, sizeof buffer,
                            reinterpret_cast<sip_header_t const*>(sip->sip_authorization), 0);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buffer) return "";
  std::string line(buffer, static_cast<size_t>(n));
  // sip_header_e writes "Authorization: Digest ..."; we want the value.
  auto colon = line.find(':');
  std::string value = colon == std::string::npos ? line : line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  return value;
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

DeviceRegister readDeviceRegister(sip_t const* sip) {
  DeviceRegister request;
  request.target_user = sip->sip_to ? sofiaText(sip->sip_to->a_url->url_user) : "";
  request.contact = sip->sip_contact ? sofiaUrl(sip->sip_contact->m_url) : "";
  request.expires = expiresOf(sip);
  request.authorization = authorizationOf(sip);
  return request;
}

}  // namespace sipwake::registrar
