#pragma once

#include <memory>
#include <string>

#include <prometheus/registry.h>

#include "registrar/call/call_relay.h"
#include "registrar/device/device_registry.h"

namespace sipwake::registrar {

class DeviceListener;
class SipAgent;
class SipThread;
struct NtaCallRelayState;

// The relay on sofia nta, a back-to-back user agent: for each app signed in
// for a ringing call's binding, an INVITE over the app's own connection
// (caller's identity, the PBX's Call-ID in X-Sipwake-Call-ID, the SDP
// unchanged). Provisional answers with their SDP go to the PBX; the first
// 200 is ACKed and answered to the PBX with the app's SDP, the other apps'
// legs are cancelled. Then BYE, re-INVITE, UPDATE and INFO are relayed
// between the two dialogs until one side hangs up. SIP thread only.
class NtaCallRelay final : public CallRelay {
 public:
  // `metrics` (may be null): registrar_relay_legs_total{result}, registrar_relayed_calls.
  NtaCallRelay(SipThread& thread, SipAgent& pbx_side, DeviceListener& app_side,
               DeviceRegistry& registry, CallRelay::Events events, prometheus::Registry* metrics);
  ~NtaCallRelay() override;
  NtaCallRelay(const NtaCallRelay&) = delete;
  NtaCallRelay& operator=(const NtaCallRelay&) = delete;

  void offer(const std::string& call_key, const std::string& binding_key, ServerTransaction& pbx_side,
             const RelayOffer& offer) override;
  void stop(const std::string& call_key) override;
  std::size_t dialogs() const;  // established calls being relayed

 private:
  std::unique_ptr<NtaCallRelayState> state_;
};

}  // namespace sipwake::registrar
