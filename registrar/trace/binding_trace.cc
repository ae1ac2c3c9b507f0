#include "registrar/trace/binding_trace.h"

#include <nlohmann/json.hpp>

#include "common/util/time_format.h"

namespace sipwake::registrar {

std::string toJson(const SipTraceEntry& e) {
  nlohmann::json j;
  j["at"] = isoTime(e.at);
  j["kind"] = "sip";
  j["direction"] = e.sent ? "out" : "in";
  if (!e.method.empty()) {
    j["method"] = e.method;
    j["summary"] = e.method + " " + e.uri;
  } else {
    j["status"] = e.status;
    j["reason"] = e.reason;
    j["summary"] = std::to_string(e.status) + " " + e.reason;
    if (e.local) j["local"] = true;  // no answer from the PBX: our stack says why
  }
  if (!e.call_id.empty()) j["call_id"] = e.call_id;
  if (e.cseq != 0) j["cseq"] = e.cseq;
  if (!e.headers.empty()) {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [name, value] : e.headers) headers[name] = value;
    j["headers"] = std::move(headers);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sipwake::registrar
