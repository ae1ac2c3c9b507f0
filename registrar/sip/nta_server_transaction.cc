#include "registrar/sip/nta_server_transaction.h"

#include <arpa/inet.h>
#include <strings.h>

namespace sipwake::registrar {

std::string sofiaText(const char* s) { return s ? s : ""; }

std::string sofiaUrl(const url_t* url) {
  if (!url) return {};
  char buffer[512];
  if (url_e(buffer, sizeof buffer, url) < 0) return {};
  return buffer;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string sourceIp(msg_t* msg) {
  std::string ip;
  if (su_addrinfo_t* ai = msg_addrinfo(msg); ai && ai->ai_addr) {
    char buffer[INET6_ADDRSTRLEN] = {};
    auto* sa = reinterpret_cast<su_sockaddr_t*>(ai->ai_addr);
    if (su_inet_ntop(sa->su_family, SU_ADDR(sa), buffer, sizeof buffer)) ip = buffer;
  }
  return ip;
}

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
