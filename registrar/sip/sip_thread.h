#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/event/clock.h"

namespace sipwake::registrar {

struct SofiaRoot;

// The thread that owns sofia-sip: its su_root and every sofia object run
// here and nowhere else. Other threads reach it only through post().
class SipThread {
 public:
  SipThread();
  ~SipThread();
  SipThread(const SipThread&) = delete;
  SipThread& operator=(const SipThread&) = delete;

  // Starts the thread and runs `init` on it before anything posted; returns
  // after init ran and rethrows what it threw.
  void start(std::function<void()> init);
  // Runs `teardown` on the thread, then stops and joins it.
  void stop(std::function<void()> teardown);
  // Thread-safe; runs fn on the SIP thread in posting order.
  void post(std::function<void()> fn);
  bool inThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // For code running on the SIP thread: the su_root (as an opaque pointer so
  // this header stays free of sofia includes).
  void* root() const;

  // A single re-armable timer on the SIP thread (the registration engine's
  // wake-up); set it from the SIP thread only.
  void setTimer(Millis when, std::function<void()> fn);

 private:
  void run(std::function<void()> init);
  void drain();
  static int onWake(void* self, void* wait, void* arg);
  static void onTimer(void* magic, void* timer, void* arg);

  std::unique_ptr<SofiaRoot> sofia_;
  std::thread thread_;
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  int wake_fd_ = -1;
  std::function<void()> timer_fn_;
  Millis timer_at_ = 0;
  bool timer_armed_ = false;
};

}  // namespace sipwake::registrar
