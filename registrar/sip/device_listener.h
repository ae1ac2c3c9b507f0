#pragma once

#include <functional>
#include <memory>
#include <string>

#include "registrar/call/incoming_request.h"
#include "registrar/device/device_sign_in.h"

namespace sipwake::registrar {

class SipThread;
struct DeviceListenerState;

struct DeviceListenerConfig {
  std::string listen_host = "127.0.0.1";  // TCP
  int listen_port = 0;
  std::string advertise_host;  // in relay URIs; defaults to listen_host
  int advertise_port = 0;      // defaults to listen_port
  std::string tls_listen_host;  // empty: no TLS
  int tls_listen_port = 0;      // also the advertised TLS port
  std::string tls_cert_file;    // the SIP TLS certificate and key
  std::string tls_key_file;
};

// The SIP listener for woken apps, separate from the PBX side: its own nta
// agent on TCP and, when configured, TLS. An app's REGISTER becomes a DeviceRegister holding its
// connection; OPTIONS gets 200; anything else 403 until the app signed in
// (the call relay, issue 4, builds on this). SIP thread only.
class DeviceListener {
 public:
  using RegisterHandler = std::function<void(const DeviceRegister&, ServerTransaction&)>;
  // Throws std::runtime_error when the port cannot be bound.
  DeviceListener(SipThread& thread, const DeviceListenerConfig& config, RegisterHandler on_register);
  ~DeviceListener();
  DeviceListener(const DeviceListener&) = delete;
  DeviceListener& operator=(const DeviceListener&) = delete;

  // The URI a push tells the app to sign in at:
  // sip:<contact token>@host:port;transport=tls (or tcp without TLS).
  std::string relayUri(const std::string& contact_token) const;
  // Our Contact toward an app, on the transport it connected with.
  std::string contactUriFor(const DeviceConnection& connection) const;
  // The nta_agent_t*, for the relay in registrar/sip.
  void* raw() const;
  // The sofia transport (tport_t*) behind an app's connection; nullptr for
  // one that did not come from a DeviceListener.
  static void* transportOf(const DeviceConnection& connection);

 private:
  std::unique_ptr<DeviceListenerState> state_;
};

}  // namespace sipwake::registrar
