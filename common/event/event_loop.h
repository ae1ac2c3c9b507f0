#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/event/clock.h"

struct event_base;
struct event;

namespace sipwake {

// A libevent loop owned by one thread. post() is the only way other threads
// reach objects living on it.
class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until stop(); call from the owning thread.
  void run();
  // Thread-safe; the loop returns after the current callbacks.
  void stop();
  // Thread-safe: runs fn on the loop thread, in posting order.
  void post(std::function<void()> fn);
  bool inLoopThread() const;

  event_base* base() const { return base_; }

 private:
  static void onWake(int fd, short what, void* arg);
  void drain();

  event_base* base_;
  event* wake_event_ = nullptr;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  std::thread::id loop_thread_;
};

// A one-shot or repeating timer on an EventLoop. Runs on the loop thread.
class LoopTimer {
 public:
  LoopTimer(EventLoop& loop, std::function<void()> fn);
  ~LoopTimer();
  LoopTimer(const LoopTimer&) = delete;
  LoopTimer& operator=(const LoopTimer&) = delete;

  void start(Millis delay);
  void cancel();
  bool pending() const;

 private:
  static void onFire(int fd, short what, void* arg);
  event* ev_;
  std::function<void()> fn_;
};

// Starts a thread running its own EventLoop; joins on destruction.
class LoopThread {
 public:
  explicit LoopThread(const char* name);
  ~LoopThread();
  EventLoop& loop() { return *loop_; }
  void stop();

 private:
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

}  // namespace sipwake
