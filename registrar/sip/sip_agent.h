#pragma once

#include <memory>
#include <string>

#include "common/event/clock.h"

namespace sipwake::registrar {

class SipThread;
struct SipAgentState;

// Where we listen and what we advertise toward PBXs.
struct SipAgentConfig {
  std::string listen_host = "127.0.0.1";  // UDP and TCP
  int listen_port = 5060;
  std::string advertise_host;  // Contact and Via host (defaults to listen_host)
  int advertise_port = 0;      // Contact port (defaults to listen_port)
  std::string tls_listen_host;  // empty: no TLS
  int tls_listen_port = 0;
  std::string tls_cert_file;  // our certificate (chain) for TLS, PEM
  std::string tls_key_file;   // its private key, PEM
  std::string tls_ca_file;    // CAs to verify PBXs; empty: the system CAs
  bool tls_verify = true;     // verify PBX certificates and host names
  unsigned udp_receive_buffer = 4 * 1024 * 1024;  // PITFALLS: default 212 KB drops bursts
  unsigned tcp_queue_size = 1000;                 // PITFALLS: default 64 overflows
  Millis transaction_timeout = 32 * kSecond;      // timer F (64 * T1)
};

// The nta agent: our transports toward PBXs and the entry of SIP requests
// sent to our Contacts. Created, used and destroyed on the SIP thread.
class SipAgent {
 public:
  // Throws std::runtime_error when a transport cannot be bound.
  SipAgent(SipThread& thread, const SipAgentConfig& config);
  ~SipAgent();
  SipAgent(const SipAgent&) = delete;
  SipAgent& operator=(const SipAgent&) = delete;

  // The nta_agent_t*, for the other sofia wrappers in registrar/sip.
  void* raw() const;
  // host:port written in Contacts, per transport family.
  std::string advertisedUdpTcp() const;
  std::string advertisedTls() const;  // empty when TLS is off
  bool tlsEnabled() const;

 private:
  std::unique_ptr<SipAgentState> state_;
};

}  // namespace sipwake::registrar
