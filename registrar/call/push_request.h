#pragma once

#include <string>

#include "common/event/clock.h"

namespace sipwake::registrar {

// What call handling asks to be pushed to every device of a binding.
struct PushRequest {
  std::string type;         // call | call_cancelled | message
  std::string binding_key;  // tenant/id
  std::string call_id;
  std::string from_uri;
  std::string from_name;
  std::string to_uri;
  std::string body;  // messages: already trimmed
  bool answered_elsewhere = false;
  Millis received_at = 0;  // when the SIP request arrived (INVITE -> push latency)
  Millis expires_at = 0;   // after this the push is useless
  std::string relay;       // calls: where the woken app signs in ("" without a device listener)
};

// Takes push requests off the SIP thread (to Redis, then pushgw).
// Called on the SIP thread; must not block.
class PushSink {
 public:
  virtual ~PushSink() = default;
  virtual void enqueue(PushRequest request) = 0;
  // The call is over: pushes still queued or retried for it are dropped.
  virtual void callEnded(const std::string& binding_key, const std::string& call_id) = 0;
};

}  // namespace sipwake::registrar
