#include "registrar/sip/nta_register_transport.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <memory>

#include "common/crypto/random.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sip_text.h"
#include "registrar/sip/sip_thread.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct NtaRegisterTransport::Pending {
  RegisterTransport::ResponseHandler handler;
  std::string contact_user;
  std::string contact_hostport;  // ours; another instance's Contact has the same user
  NtaRegisterTransport* transport;
  bool in_send = true;
  std::optional<RegisterResponse> early;  // a final answer that came before send() returned
  nta_outgoing_t* orq = nullptr;
};

namespace {

using PendingRegister = NtaRegisterTransport::Pending;

std::optional<std::uint32_t> parseSeconds(const char* text) {
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (*end != '\0' || v > 0xffffffffUL) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::string challengeText(const msg_auth_t* au) {
  std::string text = au->au_scheme ? au->au_scheme : "";
  bool first = true;
  for (auto p = au->au_params; p && *p; ++p) {
    text += first ? " " : ", ";
    text += *p;
    first = false;
  }
  return text;
}

// Where the PBX answered from: INVITEs must come from there (strict source).
std::string sourceIpOf(nta_outgoing_t* orq) {
  msg_t* response = nta_outgoing_getresponse(orq);  // a new reference
  if (!response) return {};
  std::string ip = sourceIp(response);
  msg_destroy(response);
  return ip;
}

// "host:port" of a Contact URI we wrote: sip:user@host:port;transport=x
std::string hostPortOf(const std::string& contact) {
  auto at = contact.find('@');
  if (at == std::string::npos) return {};
  auto end = contact.find(';', at);
  return contact.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
}

bool isOurs(const sip_contact_t* m, const PendingRegister& pending) {
  if (!m->m_url->url_user || pending.contact_user != m->m_url->url_user) return false;
  std::string hostport = m->m_url->url_host ? m->m_url->url_host : "";
  if (m->m_url->url_port) hostport += std::string(":") + m->m_url->url_port;
  return pending.contact_hostport.empty() || hostport == pending.contact_hostport;
}

RegisterResponse convert(nta_outgoing_t* orq, const sip_t* sip, const PendingRegister& pending) {
  RegisterResponse r;
  if (!sip || !sip->sip_status) {
    r.status = nta_outgoing_status(orq);
    r.reason = r.status == 408 ? "Request Timeout" : "No response";
    r.local = true;
    return r;
  }
  r.status = sip->sip_status->st_status;
  r.reason = sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "";
  r.local = (sip->sip_flags & kNtaInternalMessageFlag) != 0;
  if (!r.local) r.source_ip = sourceIpOf(orq);
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    if (isOurs(m, pending)) {
      r.contact_listed = true;
      r.contact_expires = parseSeconds(m->m_expires);
      break;
    }
  }
  if (sip->sip_expires) r.expires_header = static_cast<std::uint32_t>(sip->sip_expires->ex_delta);
  if (sip->sip_min_expires) r.min_expires = static_cast<std::uint32_t>(sip->sip_min_expires->me_delta);
  if (sip->sip_retry_after) r.retry_after = static_cast<std::uint32_t>(sip->sip_retry_after->af_delta);
  for (const msg_auth_t* au = sip->sip_www_authenticate; au; au = au->au_next) {
    r.www_authenticate.push_back(challengeText(au));
  }
  for (const msg_auth_t* au = sip->sip_proxy_authenticate; au; au = au->au_next) {
    r.proxy_authenticate.push_back(challengeText(au));
  }
  if (sip->sip_authentication_info) {
    for (auto p = sip->sip_authentication_info->ai_params; p && *p; ++p) {
      std::string param = *p;
      if (param.rfind("nextnonce=", 0) == 0) {
        std::string v = param.substr(10);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        r.next_nonce = v;
      }
    }
  }
  return r;
}

int onResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) {
  auto* pending = reinterpret_cast<PendingRegister*>(magic);
  int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
  if (status < 200) return 0;
  RegisterResponse response = convert(orq, sip, *pending);
  nta_outgoing_destroy(orq);
  pending->orq = nullptr;
  if (pending->in_send) {
    pending->early = std::move(response);
    return 0;
  }
  pending->transport->forget(pending);
  std::unique_ptr<PendingRegister> owned(pending);
  owned->handler(response);
  return 0;
}

}  // namespace

NtaRegisterTransport::NtaRegisterTransport(SipThread& thread, SipAgent& agent,
                                           std::string user_agent)
    : thread_(thread), agent_(agent), user_agent_(std::move(user_agent)) {}

NtaRegisterTransport::~NtaRegisterTransport() {
  for (Pending* pending : pending_) {
    if (pending->orq) nta_outgoing_destroy(pending->orq);  // no callback after this
    delete pending;
  }
}

void NtaRegisterTransport::deliverLater(ResponseHandler handler, RegisterResponse response) {
  thread_.post([handler = std::move(handler), response = std::move(response)] {
    handler(response);
  });
}

void NtaRegisterTransport::send(const RegisterRequest& request, std::string_view contact_user,
                                ResponseHandler handler) {
  auto* agent = static_cast<nta_agent_t*>(agent_.raw());
  auto* pending = new PendingRegister{std::move(handler), std::string(contact_user),
                                     hostPortOf(request.contact), this, true, std::nullopt};

  std::string request_line = "REGISTER " + request.request_uri + " SIP/2.0";
  std::string from = "<" + request.aor + ">;tag=" + crypto::uniqueToken(64);
  std::string to = "<" + request.aor + ">";
  std::string cseq = std::to_string(request.cseq) + " REGISTER";
  std::string contact = "<" + request.contact + ">";
  if (!request.removed_contact.empty()) contact += ", <" + request.removed_contact + ">;expires=0";
  std::string expires = std::to_string(request.expires);
  const char* auth = request.authorization.empty() ? nullptr : request.authorization.c_str();

  msg_t* msg = nta_msg_create(agent, 0);
  nta_outgoing_t* orq = msg ? nta_outgoing_mcreate(
      agent, onResponse, reinterpret_cast<nta_outgoing_magic_t*>(pending),
      URL_STRING_MAKE(request.destination.c_str()), msg,
      SIPTAG_REQUEST_STR(request_line.c_str()), SIPTAG_FROM_STR(from.c_str()),
      SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(request.call_id.c_str()),
      SIPTAG_CSEQ_STR(cseq.c_str()), SIPTAG_CONTACT_STR(contact.c_str()),
      SIPTAG_EXPIRES_STR(expires.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
      SIPTAG_USER_AGENT_STR(user_agent_.c_str()),
      TAG_IF(auth && !request.proxy_authorization, SIPTAG_AUTHORIZATION_STR(auth)),
      TAG_IF(auth && request.proxy_authorization, SIPTAG_PROXY_AUTHORIZATION_STR(auth)),
      TAG_END()) : nullptr;
  pending->in_send = false;
  if (!orq) {
    if (msg) msg_destroy(msg);
    std::unique_ptr<PendingRegister> owned(pending);
    RegisterResponse failed;
    failed.status = 503;
    failed.reason = "Cannot send REGISTER to " + request.destination;
    failed.local = true;
    deliverLater(std::move(owned->handler), std::move(failed));
    return;
  }
  if (pending->early) {
    std::unique_ptr<PendingRegister> owned(pending);
    deliverLater(std::move(owned->handler), std::move(*owned->early));
    return;
  }
  pending->orq = orq;
  pending_.insert(pending);
}

}  // namespace sipwake::registrar
