#include "registrar/sip/device_listener.h"

#include <strings.h>

#include <cstdlib>
#include <stdexcept>

#include "registrar/sip/incoming_request_reader.h"
#include "registrar/sip/nta_server_transaction.h"
#include "registrar/sip/sip_text.h"
#include "registrar/sip/sip_thread.h"
#include "registrar/sip/sofia_includes.h"
#include "registrar/sip/tls_certificate_dir.h"

namespace sipwake::registrar {

struct DeviceListenerState {
  nta_agent_t* agent = nullptr;
  nta_leg_t* leg = nullptr;
  std::string advertised;      // host:port, TCP
  std::string advertised_tls;  // host:port, TLS; empty when off
  DeviceListener::RegisterHandler on_register;
};

namespace {

// An app's TCP connection, held by a reference to sofia's transport.
class TportConnection final : public DeviceConnection {
 public:
  explicit TportConnection(tport_t* tport) : tport_(tport) {}  // takes the reference
  ~TportConnection() override {
    if (tport_) tport_unref(tport_);
  }
  bool alive() const override { return tport_ && !tport_is_closed(tport_); }
  tport_t* tport() const { return tport_; }
  bool secure() const {
    tp_name_t const* name = tport_ ? tport_name(tport_) : nullptr;
    return name && name->tpn_proto && strcasecmp(name->tpn_proto, "tls") == 0;
  }
  std::string peer() const override {
    tp_name_t const* name = tport_ ? tport_name(tport_) : nullptr;
    if (!name || !name->tpn_host) return "";
    return std::string(name->tpn_host) + ":" + (name->tpn_port ? name->tpn_port : "");
  }

 private:
  tport_t* tport_;
};

int onRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip) {
  auto* state = reinterpret_cast<DeviceListenerState*>(magic);
  if (!sip || !sip->sip_request) return 400;
  switch (sip->sip_request->rq_method) {
    case sip_method_options:
      return 200;
    case sip_method_register:
      break;
    default:
      return 403;
  }
  DeviceRegister request = readDeviceRegister(sip);
  if (msg_t* msg = nta_incoming_getrequest(irq)) {
    request.source_ip = sourceIp(msg);
    tport_t* tport = nta_incoming_transport(state->agent, irq, msg);
    if (tport) request.connection = std::make_shared<TportConnection>(tport);
    msg_destroy(msg);
  }
  NtaServerTransaction transaction(irq);
  state->on_register(request, transaction);
  return 0;
}

}  // namespace

DeviceListener::DeviceListener(SipThread& thread, const DeviceListenerConfig& config,
                               RegisterHandler on_register)
    : state_(std::make_unique<DeviceListenerState>()) {
  state_->on_register = std::move(on_register);
  std::string adv_host = config.advertise_host.empty() ? config.listen_host : config.advertise_host;
  int adv_port = config.advertise_port ? config.advertise_port : config.listen_port;
  std::string url = "sip:" + bracketed(adv_host) + ":" + std::to_string(config.listen_port) +
                    ";maddr=" + config.listen_host + ";transport=tcp";
  auto* root = static_cast<su_root_t*>(thread.root());
  // No stray-message callback: the default leg below takes every request.
  state_->agent = nta_agent_create(root, URL_STRING_MAKE(url.c_str()), nullptr, nullptr,
                                   NTATAG_UA(0), NTATAG_USE_NAPTR(0), NTATAG_USE_SRV(0), TAG_END());
  if (!state_->agent) {
    throw std::runtime_error("cannot bind the device listener (TCP) on " + bracketed(config.listen_host) +
                             ":" + std::to_string(config.listen_port));
  }
  state_->leg = nta_leg_tcreate(state_->agent, onRequest, reinterpret_cast<nta_leg_magic_t*>(state_.get()),
                                NTATAG_NO_DIALOG(1), TAG_END());
  if (!state_->leg) {
    nta_agent_destroy(state_->agent);
    throw std::runtime_error("cannot create the device listener's SIP leg");
  }
  state_->advertised = bracketed(adv_host) + ":" + std::to_string(adv_port);

  if (!config.tls_listen_host.empty()) {
    TlsCertificateDir dir(config.tls_cert_file, config.tls_key_file, "");
    std::string tls_url = "sips:" + bracketed(adv_host) + ":" + std::to_string(config.tls_listen_port) +
                          ";maddr=" + config.tls_listen_host;
    // Apps present no client certificate; TPTAG_TLS_VERSION(0): see SipAgent.
    if (nta_agent_add_tport(state_->agent, URL_STRING_MAKE(tls_url.c_str()), TPTAG_CERTIFICATE(dir.path().c_str()),
                            TPTAG_TLS_VERSION(0), TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_NONE), TAG_END()) != 0) {
      nta_leg_destroy(state_->leg);
      nta_agent_destroy(state_->agent);
      throw std::runtime_error("cannot start the device listener's TLS on " + bracketed(config.tls_listen_host) +
                               ":" + std::to_string(config.tls_listen_port) + " (check the certificate and key)");
    }
    state_->advertised_tls = bracketed(adv_host) + ":" + std::to_string(config.tls_listen_port);
  }
}

DeviceListener::~DeviceListener() {
  if (state_->leg) nta_leg_destroy(state_->leg);
  if (state_->agent) nta_agent_destroy(state_->agent);
}

std::string DeviceListener::contactUriFor(const DeviceConnection& connection) const {
  auto* tport = dynamic_cast<const TportConnection*>(&connection);
  if (tport && tport->secure() && !state_->advertised_tls.empty()) {
    return "sip:relay@" + state_->advertised_tls + ";transport=tls";
  }
  return "sip:relay@" + state_->advertised + ";transport=tcp";
}

void* DeviceListener::raw() const { return state_->agent; }

void* DeviceListener::transportOf(const DeviceConnection& connection) {
  auto* tport = dynamic_cast<const TportConnection*>(&connection);
  return tport ? tport->tport() : nullptr;
}

std::string DeviceListener::relayUri(const std::string& contact_token) const {
  if (!state_->advertised_tls.empty()) {
    return "sip:" + contact_token + "@" + state_->advertised_tls + ";transport=tls";
  }
  return "sip:" + contact_token + "@" + state_->advertised + ";transport=tcp";
}

}  // namespace sipwake::registrar
