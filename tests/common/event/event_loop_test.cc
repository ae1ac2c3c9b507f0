#include "common/event/event_loop.h"

#include <atomic>
#include <future>

#include <catch2/catch.hpp>

using namespace sipwake;

TEST_CASE("EventLoop runs posted work on its own thread in order") {
  LoopThread thread("test-loop");
  std::promise<std::vector<int>> done;
  auto order = std::make_shared<std::vector<int>>();
  for (int i = 0; i < 5; ++i) thread.loop().post([order, i] { order->push_back(i); });
  thread.loop().post([&, order] { done.set_value(*order); });
  auto got = done.get_future().get();
  REQUIRE(got == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("LoopTimer fires once after its delay") {
  LoopThread thread("test-loop");
  std::promise<void> fired;
  std::unique_ptr<LoopTimer> timer;
  thread.loop().post([&] {
    timer = std::make_unique<LoopTimer>(thread.loop(), [&] { fired.set_value(); });
    timer->start(10);
  });
  REQUIRE(fired.get_future().wait_for(std::chrono::seconds(2)) == std::future_status::ready);
  thread.loop().post([&] { timer.reset(); });
  thread.stop();
}
