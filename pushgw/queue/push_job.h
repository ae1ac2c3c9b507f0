#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/event/clock.h"
#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// One push to one device, as the registrar queued it on the stream.
struct PushJob {
  std::string entry_id;  // the stream entry, acknowledged after the final outcome
  std::string type;      // call | call_cancelled | message | binding_failed | binding_expiring | test
  std::string tenant;
  std::string binding;  // the binding id the app knows
  std::string device_id;
  std::string provider;  // apns | fcm
  std::string token;
  std::string app;
  std::string environment;
  std::string push_type;
  std::string call_id;
  std::string from;
  std::string from_name;
  std::string to;
  std::string body;
  std::string relay;  // calls: the SIP URI where the woken app signs in
  std::string reason;  // binding_failed
  bool answered_elsewhere = false;
  Millis sent_at = 0;
  Millis received_at = 0;  // when the SIP request reached the registrar
  Millis expires_at = 0;   // 0: no deadline
  std::string instance;    // the registrar that owns the call / binding
  std::string test_id;     // test pushes: the registrar waits for this id's outcomes
  int trace_max = 0;       // > 0: attempts go to the binding's trace, capped at this
  Millis trace_ttl = 0;    // and kept this long (seconds on the wire)
  int deliveries = 1;      // how often the stream handed it out (reclaims count)

  std::string bindingKey() const { return tenant + "/" + binding; }
  bool isCall() const { return type == "call"; }
};

// Parses a stream entry's "job" field; nullopt with `error` set when a field
// is missing or wrong (such jobs go to the dead-letter stream).
std::optional<PushJob> parsePushJob(std::string_view json, std::string& error);

// The provider-independent message: the contract's payload plus delivery hints.
PushMessage toPushMessage(const PushJob& job, Millis now);

}  // namespace sipwake::pushgw
