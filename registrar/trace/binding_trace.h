#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/event/clock.h"

namespace sipwake::registrar {

// What GET /v1/bindings/{id}/trace shows: the last SIP messages of a binding
// and its push attempts, newest last. Redacted where they are made: digest
// secrets (redactDigest) and push tokens (shortenToken) never reach Redis.
struct TraceOptions {
  bool enabled = true;
  int max_entries = 50;       // per binding: a capped Redis list
  Millis ttl = 7 * kDay;      // the list goes this long after its last entry
};

// One SIP message to or from a binding's PBX. Built on the SIP thread from
// strings it already has; serialized (toJson) on the store thread.
struct SipTraceEntry {
  Millis at = 0;
  bool sent = false;       // we sent it (REGISTER, our answers) or received it
  std::string method;      // requests: REGISTER, INVITE, CANCEL, MESSAGE...
  std::string uri;         // requests: the Request-URI
  int status = 0;          // responses
  std::string reason;      // responses
  bool local = false;      // a response our own stack made up (timeout, unreachable)
  std::string call_id;
  std::uint32_t cseq = 0;  // 0: not shown
  std::vector<std::pair<std::string, std::string>> headers;  // a few, already redacted
};

// Takes trace entries off the SIP thread; must not block.
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void trace(const std::string& binding_key, SipTraceEntry entry) = 0;
};

// The entry as the JSON text stored in the binding's trace list.
std::string toJson(const SipTraceEntry& entry);

}  // namespace sipwake::registrar
