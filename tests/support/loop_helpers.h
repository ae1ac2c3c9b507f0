// Helpers for unit tests that drive an EventLoop from the test's thread.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "common/event/event_loop.h"

namespace sipwake::testing {

// Runs fn on the loop thread and waits for its result (or exception).
template <typename Fn>
auto onLoop(EventLoop& loop, Fn fn) -> decltype(fn()) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto result = task.get_future();
  loop.post([&task] { task(); });
  return result.get();
}

// Polls `done` every 2 ms until it holds (-> true) or `timeout` passes.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

}  // namespace sipwake::testing
