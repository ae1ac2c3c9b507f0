#include "registrar/api/binding_view.h"

#include "common/util/redact.h"
#include "common/util/time_format.h"

namespace sipwake::registrar {
namespace {

using nlohmann::json;

std::string get(const BindingFields& f, const char* name) {
  auto it = f.find(name);
  return it == f.end() ? std::string() : it->second;
}

long long getInt(const BindingFields& f, const char* name) {
  try {
    return std::stoll(get(f, name));
  } catch (const std::logic_error&) {
    return 0;
  }
}

json timeOrNull(long long ms) { return ms > 0 ? json(isoTime(ms)) : json(nullptr); }

std::string lastResponseText(int code, const std::string& reason, bool local) {
  if (code == 0) return "no answer yet";
  if (local && reason.rfind("target forbidden", 0) == 0) return "no REGISTER sent: " + reason;
  if (local) return "no usable answer from the PBX (" + reason + ")";
  return "the PBX answered " + std::to_string(code) + " " + reason;
}

// How many times, in words that fit after a count.
std::string times(long long n) { return n == 1 ? "1 time" : std::to_string(n) + " times"; }

std::string explain(const BindingFields& f) {
  std::string state = get(f, "state");
  int code = static_cast<int>(getInt(f, "last_code"));
  bool local = get(f, "last_local") == "1";
  std::string last = lastResponseText(code, get(f, "last_reason"), local);
  long long next = getInt(f, "next_attempt_at");
  std::string next_text = next > 0 ? "; next attempt at " + isoTime(next) : "";
  if (state == "registered") {
    return "registered at the PBX until " + isoTime(getInt(f, "expires_at"));
  }
  if (state == "registering") return "registering with the PBX";
  if (state == "retrying") {
    std::string answer = std::to_string(code) + " " + get(f, "last_reason");
    long long rejections = getInt(f, "auth_rejections");
    long long temporary = getInt(f, "temporary_failures");
    if (!local && (code == 401 || code == 407 || code == 403)) {
      return "not registered: the PBX rejected our credentials (" + answer + ") " +
             times(rejections) + next_text;
    }
    if (local) {
      return "not registered: the PBX could not be reached (" + answer + ") " + times(temporary) +
             next_text;
    }
    if (code >= 200 && code < 300) {  // 200 without our contact
      return "not registered: the PBX answered " + answer + " but did not keep our contact " +
             times(temporary) + next_text;
    }
    long long failures = code >= 400 && code < 500 && code != 408 && code != 423 ? rejections : temporary;
    return "not registered: the PBX refused the registration (" + answer + ") " + times(failures) +
           next_text;
  }
  if (state == "failed") {
    std::string why = get(f, "failure_reason");
    std::string because = why == "auth_rejected"
                              ? "the PBX rejected the credentials repeatedly"
                          : why == "rejected" ? "the PBX refused the registration repeatedly"
                                              : "the PBX could not be reached for too long";
    return "gave up: " + because + " (" + last +
           "); credentials deleted, re-provision the app to try again";
  }
  if (state == "unregistered") return "not registered: the binding was removed from the PBX";
  return state;
}

}  // namespace

json bindingView(const BindingFields& f, Millis now) {
  json view;
  view["id"] = get(f, "id");
  view["aor"] = get(f, "aor");
  std::string registrar = get(f, "registrar");
  view["registrar"] = registrar.empty() ? json(nullptr) : json(registrar);
  view["transport"] = get(f, "transport");
  view["state"] = get(f, "state");
  view["reason"] = explain(f);
  (void)now;
  view["contact"] = get(f, "contact");
  view["expires"] = getInt(f, "expires");
  long long granted = getInt(f, "granted_expires");
  view["granted_expires"] = granted > 0 ? json(granted) : json(nullptr);
  view["expires_at"] = get(f, "state") == "registered" ? timeOrNull(getInt(f, "expires_at"))
                                                       : json(nullptr);
  view["failures"] = getInt(f, "failures");
  int code = static_cast<int>(getInt(f, "last_code"));
  if (code == 0) {
    view["last_response"] = nullptr;
  } else if (get(f, "last_local") == "1") {
    view["last_response"] = {{"code", code},
                             {"reason", get(f, "last_reason")},
                             {"error", code == 408 ? "timeout"
                                       : get(f, "last_reason").rfind("target forbidden", 0) == 0
                                           ? "target_forbidden"
                                           : "transport"}};
  } else {
    view["last_response"] = {{"code", code}, {"reason", get(f, "last_reason")}};
  }
  view["next_attempt_at"] = timeOrNull(getInt(f, "next_attempt_at"));
  std::string failure = get(f, "failure_reason");
  view["failure_reason"] = failure.empty() ? json(nullptr) : json(failure);
  json devices = json::array();
  auto parsed = json::parse(get(f, "devices"), nullptr, false);
  if (parsed.is_array()) {
    for (auto& d : parsed) {
      if (d.contains("token") && d["token"].is_string()) {
        d["token"] = shortenToken(d["token"].get<std::string>());
      }
      devices.push_back(d);
    }
  }
  view["devices"] = devices;
  view["owner"] = get(f, "owner");
  view["created_at"] = timeOrNull(getInt(f, "created_at"));
  view["refreshed_at"] = timeOrNull(getInt(f, "put_at"));
  view["updated_at"] = timeOrNull(getInt(f, "updated_at"));
  return view;
}

}  // namespace sipwake::registrar
