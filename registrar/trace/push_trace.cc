#include "registrar/trace/push_trace.h"

#include "common/util/redact.h"
#include "common/util/time_format.h"

namespace sipwake::registrar {

std::string pushQueuedTrace(const nlohmann::json& job, Millis now) {
  const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& device = job.contains("device") && job["device"].is_object() ? job["device"] : empty;
  nlohmann::json e = {{"at", isoTime(now)},
                      {"kind", "push"},
                      {"event", "queued"},
                      {"type", job.value("type", "")},
                      {"device", device.value("id", "")},
                      {"provider", device.value("provider", "")},
                      {"token", shortenToken(device.value("token", ""))}};
  std::string call_id = job.value("call_id", "");
  if (!call_id.empty()) e["call_id"] = call_id;
  return e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sipwake::registrar
