#pragma once

#include <functional>
#include <string>

#include "registrar/call/incoming_request.h"

namespace sipwake::registrar {

// What the PBX's INVITE offers, handed to the woken apps' legs unchanged.
struct RelayOffer {
  std::string call_id;  // the PBX's Call-ID (the apps see it in a header)
  std::string from_uri;
  std::string from_name;
  std::string to_uri;
  std::string content_type;
  std::string body;  // the SDP, byte for byte
};

// Takes a ringing call to the apps signed in for its binding: one leg per
// app, answers relayed to the PBX, the dialog relayed until BYE. The SIP
// layer implements it (registrar/sip/nta_call_relay); CallManager drives it.
class CallRelay {
 public:
  struct Events {
    // An app answered: the PBX got the 200; the call no longer rings.
    std::function<void(const std::string& call_key)> answered;
    // Every leg offered so far ended without an answer (the app rejected).
    std::function<void(const std::string& call_key, int status, const std::string& reason)> declined;
  };
  virtual ~CallRelay() = default;
  // Offers a ringing call to the binding's apps not offered it yet (called
  // when it starts ringing and whenever an app signs in). `pbx_side` stays
  // valid until the call is answered or stopped.
  virtual void offer(const std::string& call_key, const std::string& binding_key,
                     ServerTransaction& pbx_side, const RelayOffer& offer) = 0;
  // The call stopped ringing (CANCEL, T1/T2, shutdown): its app legs are cancelled.
  virtual void stop(const std::string& call_key) = 0;
};

}  // namespace sipwake::registrar
