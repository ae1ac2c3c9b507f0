// A ServerTransaction for unit tests: records every answer, and lets the
// test fire the caller's CANCEL.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "registrar/call/incoming_request.h"

namespace sipwake::testing {

struct Answer {
  int status;
  std::string reason;
  registrar::SipHeaders headers;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

struct ScriptedTransaction : registrar::ServerTransaction {
  explicit ScriptedTransaction(std::vector<Answer>& log) : log(log) {}
  void respond(int status, std::string_view reason, const registrar::SipHeaders& headers) override {
    log.push_back({status, std::string(reason), headers});
  }
  void onCancel(std::function<void(bool)> handler) override { cancel = std::move(handler); }
  std::vector<Answer>& log;
  std::function<void(bool)> cancel;
};

}  // namespace sipwake::testing
