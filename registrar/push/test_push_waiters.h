#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "common/event/event_loop.h"

namespace sipwake::registrar {

// POST /v1/bindings/{id}/test-push waits here for pushgw's per-device
// outcomes (kind "test_push_result" on this instance's outcome channel).
// A wait is registered before its jobs are queued, so an answer that comes
// before the device list is kept. Runs on the API loop; onResult() may be
// called from any thread.
class TestPushWaiters {
 public:
  using Device = std::pair<std::string, std::string>;  // id, provider
  // {"results": [{"device", "provider", "status", "result", "reason"}]}, or
  // null when the store did not even say which devices it pushed in time.
  using Done = std::function<void(nlohmann::json results)>;

  explicit TestPushWaiters(EventLoop& loop) : loop_(loop) {}
  ~TestPushWaiters();

  // Starts a wait for `test_id`; `done` runs once, when every device has
  // answered or after `timeout` (missing ones: result "timeout").
  void begin(const std::string& test_id, Millis timeout, Done done);
  // The devices pushed (from the store), in the binding's order.
  void devices(const std::string& test_id, std::vector<Device> devices);
  // Ends a wait without answers (the jobs could not be queued); `done` does not run.
  void cancel(const std::string& test_id);
  void onResult(const nlohmann::json& message);

 private:
  struct Waiter {
    Done done;
    std::optional<std::vector<Device>> devices;
    std::unordered_map<std::string, nlohmann::json> results;  // device id -> result
    std::unique_ptr<LoopTimer> timer;
    Millis timeout = 0;
  };
  void complete(const std::string& test_id, bool timed_out);

  EventLoop& loop_;
  std::unordered_map<std::string, std::unique_ptr<Waiter>> waiters_;
};

}  // namespace sipwake::registrar
