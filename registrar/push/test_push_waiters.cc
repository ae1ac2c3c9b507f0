#include "registrar/push/test_push_waiters.h"

namespace sipwake::registrar {

TestPushWaiters::~TestPushWaiters() = default;

void TestPushWaiters::begin(const std::string& test_id, Millis timeout, Done done) {
  auto waiter = std::make_unique<Waiter>();
  waiter->done = std::move(done);
  waiter->timeout = timeout;
  waiter->timer = std::make_unique<LoopTimer>(loop_, [this, test_id] { complete(test_id, true); });
  waiter->timer->start(timeout);
  waiters_[test_id] = std::move(waiter);
}

void TestPushWaiters::devices(const std::string& test_id, std::vector<Device> devices) {
  auto it = waiters_.find(test_id);
  if (it == waiters_.end()) return;
  it->second->devices = std::move(devices);
  complete(test_id, false);
}

void TestPushWaiters::cancel(const std::string& test_id) {
  auto it = waiters_.find(test_id);
  if (it == waiters_.end()) return;
  it->second->timer->cancel();
  auto waiter = std::move(it->second);
  waiters_.erase(it);
  // The timer may be the caller's own frame: release it later.
  loop_.post([waiter = std::shared_ptr<Waiter>(std::move(waiter))] {});
}

void TestPushWaiters::onResult(const nlohmann::json& message) {
  loop_.post([this, message] {
    std::string test_id = message.value("test_id", "");
    auto it = waiters_.find(test_id);
    if (it == waiters_.end()) return;  // answered after its timeout
    nlohmann::json result = {{"device", message.value("device", "")},
                             {"provider", message.value("provider", "")},
                             {"status", message.contains("status") ? message["status"] : nullptr},
                             {"result", message.value("result", "failed")},
                             {"reason", message.value("reason", "")}};
    it->second->results[message.value("device", "")] = std::move(result);
    complete(test_id, false);
  });
}

void TestPushWaiters::complete(const std::string& test_id, bool timed_out) {
  auto it = waiters_.find(test_id);
  if (it == waiters_.end()) return;
  Waiter& w = *it->second;
  if (!timed_out) {
    if (!w.devices) return;
    for (const auto& [device, provider] : *w.devices) {
      if (!w.results.count(device)) return;
    }
  }
  Done done = std::move(w.done);
  if (!w.devices) {
    cancel(test_id);
    done(nullptr);
    return;
  }
  nlohmann::json results = nlohmann::json::array();
  for (const auto& [device, provider] : *w.devices) {
    auto r = w.results.find(device);
    if (r != w.results.end()) {
      results.push_back(r->second);
    } else {
      results.push_back({{"device", device},
                         {"provider", provider},
                         {"status", nullptr},
                         {"result", "timeout"},
                         {"reason", "no answer from the push gateway within " +
                                        std::to_string(w.timeout) + " ms"}});
    }
  }
  cancel(test_id);
  done(nlohmann::json{{"results", std::move(results)}});
}

}  // namespace sipwake::registrar
