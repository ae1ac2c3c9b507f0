#include "registrar/sip/sip_agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/log/logger.h"
#include "registrar/sip/sip_text.h"
#include "registrar/sip/sip_thread.h"
#include "registrar/sip/tls_certificate_dir.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

struct SipAgentState {
  nta_agent_t* agent = nullptr;
  std::string advertised_udp_tcp;
  std::string advertised_tls;
};

namespace {

// Requests that match no transaction: what PBXs send to our Contacts.
// Incoming calls are handled by a later layer; until then we answer
// OPTIONS (keep-alive probes) and refuse the rest cleanly.
int onStrayMessage(nta_agent_magic_t*, nta_agent_t* agent, msg_t* msg, sip_t* sip) {
  if (!sip || !sip->sip_request) {
    msg_destroy(msg);
    return 0;
  }
  switch (sip->sip_request->rq_method) {
    case sip_method_ack:
      msg_destroy(msg);
      break;
    case sip_method_options:
      nta_msg_treply(agent, msg, SIP_200_OK, TAG_END());
      break;
    default:
      nta_msg_treply(agent, msg, SIP_404_NOT_FOUND, TAG_END());
      break;
  }
  return 0;
}

void logFromSofia(void*, char const* fmt, va_list ap) {
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty()) log::debug("sofia", {{"detail", text}});
}

}  // namespace

SipAgent::SipAgent(SipThread& thread, const SipAgentConfig& config)
    : state_(std::make_unique<SipAgentState>()) {
  // Sofia's own diagnostics go to our JSON log (debug level); its per-message
  // dumps stay off unless TPORT_LOG is set by an operator.
  su_log_redirect(nullptr, logFromSofia, nullptr);
  su_log_redirect(tport_log, logFromSofia, nullptr);
  su_log_redirect(nta_log, logFromSofia, nullptr);

  std::string adv_host = config.advertise_host.empty() ? config.listen_host : config.advertise_host;
  int adv_port = config.advertise_port ? config.advertise_port : config.listen_port;
  // host = what we advertise in Via; maddr = the address we bind. One
  // transport per URL: sofia's "transport=udp,tcp" list parsing keeps a
  // pointer to a stack array past its scope, and its default adds SCTP.
  std::string base = "sip:" + bracketed(adv_host) + ":" + std::to_string(config.listen_port) +
                     ";maddr=" + config.listen_host + ";transport=";
  std::string udp_url = base + "udp", tcp_url = base + "tcp";
  auto* root = static_cast<su_root_t*>(thread.root());
  state_->agent = nta_agent_create(
      root, URL_STRING_MAKE(udp_url.c_str()), onStrayMessage, nullptr,
      TPTAG_UDP_RMEM(config.udp_receive_buffer), TPTAG_QUEUESIZE(config.tcp_queue_size),
      NTATAG_SIP_T1X64(static_cast<unsigned>(config.transaction_timeout)),
      NTATAG_CLIENT_RPORT(1), NTATAG_UA(0), NTATAG_USE_NAPTR(1), NTATAG_USE_SRV(1), TAG_END());
  if (state_->agent &&
      nta_agent_add_tport(state_->agent, URL_STRING_MAKE(tcp_url.c_str()),
                          TPTAG_QUEUESIZE(config.tcp_queue_size), TAG_END()) != 0) {
    nta_agent_destroy(state_->agent);
    state_->agent = nullptr;
  }
  if (!state_->agent) {
    throw std::runtime_error("cannot bind SIP UDP/TCP on " + bracketed(config.listen_host) + ":" +
                             std::to_string(config.listen_port));
  }
  state_->advertised_udp_tcp = bracketed(adv_host) + ":" + std::to_string(adv_port);

  if (!config.tls_listen_host.empty()) {
    TlsCertificateDir dir(config.tls_cert_file, config.tls_key_file, config.tls_ca_file);
    std::string tls_url = "sips:" + bracketed(adv_host) + ":" +
                          std::to_string(config.tls_listen_port) +
                          ";maddr=" + config.tls_listen_host;
    // TPTAG_TLS_VERSION(0): Debian's sofia otherwise pins TLS 1.0, which
    // OpenSSL 3 refuses. Subject checks make it verify the PBX's host name.
    int rc = nta_agent_add_tport(
        state_->agent, URL_STRING_MAKE(tls_url.c_str()), TPTAG_CERTIFICATE(dir.path().c_str()),
        TPTAG_TLS_VERSION(0),
        TPTAG_TLS_VERIFY_POLICY(config.tls_verify ? TPTLS_VERIFY_SUBJECTS_OUT : TPTLS_VERIFY_NONE),
        TPTAG_TLS_VERIFY_DEPTH(8), TPTAG_TLS_VERIFY_DATE(1), TPTAG_QUEUESIZE(config.tcp_queue_size),
        TAG_END());
    if (rc != 0) {
      nta_agent_destroy(state_->agent);
      state_->agent = nullptr;
      throw std::runtime_error("cannot start SIP TLS on " + bracketed(config.tls_listen_host) +
                               ":" + std::to_string(config.tls_listen_port) +
                               " (check the certificate and key files)");
    }
    state_->advertised_tls = bracketed(adv_host) + ":" + std::to_string(config.tls_listen_port);
    if (!config.tls_verify) log::warn("TLS toward PBXs does not verify their certificates");
  }
}

SipAgent::~SipAgent() {
  // Destroying the agent sends nothing: our contacts stay registered at the
  // PBXs, as a restart or hand-over wants (no nua_shutdown here).
  if (state_->agent) nta_agent_destroy(state_->agent);
}

void* SipAgent::raw() const { return state_->agent; }
std::string SipAgent::advertisedUdpTcp() const { return state_->advertised_udp_tcp; }
std::string SipAgent::advertisedTls() const { return state_->advertised_tls; }
bool SipAgent::tlsEnabled() const { return !state_->advertised_tls.empty(); }

}  // namespace sipwake::registrar
