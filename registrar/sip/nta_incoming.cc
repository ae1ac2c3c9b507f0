#include "registrar/sip/nta_incoming.h"

#include <arpa/inet.h>
#include <strings.h>

#include <stdexcept>

#include "common/log/logger.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct NtaIncomingState {
  nta_leg_t* leg = nullptr;
  NtaIncoming::Handler handler;
};

namespace {

std::string text(const char* s) { return s ? s : ""; }

std::string urlText(const url_t* url) {
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

IncomingRequest::Method methodOf(sip_method_t method) {
  switch (method) {
    case sip_method_invite: return IncomingRequest::Method::Invite;
    case sip_method_message: return IncomingRequest::Method::Message;
    case sip_method_options: return IncomingRequest::Method::Options;
    case sip_method_bye: return IncomingRequest::Method::Bye;
    default: return IncomingRequest::Method::Other;
  }
}

// One nta server transaction. Its destruction releases the transaction to
// nta, which keeps it for retransmissions as long as SIP requires.
class NtaServerTransaction final : public ServerTransaction {
 public:
  explicit NtaServerTransaction(nta_incoming_t* irq) : irq_(irq) {
    // One To-tag for every answer of this transaction (180s and the final).
    nta_incoming_tag(irq_, nullptr);
  }
  ~NtaServerTransaction() override {
    if (nta_incoming_status(irq_) < 200) {
      nta_incoming_treply(irq_, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
    }
    nta_incoming_bind(irq_, nullptr, nullptr);
    nta_incoming_destroy(irq_);
  }

  void respond(int status, std::string_view reason, const SipHeaders& headers) override {
    if (nta_incoming_status(irq_) >= 200) return;  // one final answer only
    std::string extra;
    for (const auto& [name, value] : headers) extra += name + ": " + value + "\r\n";
    std::string phrase(reason);
    nta_incoming_treply(irq_, status, phrase.c_str(),
                        TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  }

  void onCancel(std::function<void(bool)> handler) override {
    cancel_handler_ = std::move(handler);
    nta_incoming_bind(irq_, &NtaServerTransaction::onAckOrCancel,
                      reinterpret_cast<nta_incoming_magic_t*>(this));
  }

 private:
  static int onAckOrCancel(nta_incoming_magic_t* magic, nta_incoming_t*, sip_t const* sip) {
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

  nta_incoming_t* irq_;
  std::function<void(bool)> cancel_handler_;
};

int onRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip) {
  auto* state = reinterpret_cast<NtaIncomingState*>(magic);
  if (!sip || !sip->sip_request) return 400;
  IncomingRequest request;
  request.method = methodOf(sip->sip_request->rq_method);
  request.method_name = text(sip->sip_request->rq_method_name);
  request.contact_user = text(sip->sip_request->rq_url->url_user);
  request.call_id = sip->sip_call_id ? text(sip->sip_call_id->i_id) : "";
  if (sip->sip_from) {
    request.from_uri = urlText(sip->sip_from->a_url);
    request.from_name = unquote(text(sip->sip_from->a_display));
  }
  if (sip->sip_to) request.to_uri = urlText(sip->sip_to->a_url);
  if (sip->sip_content_type) request.content_type = text(sip->sip_content_type->c_type);
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
