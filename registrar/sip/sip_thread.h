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

  // A re-armable wake-up on the SIP thread; create, set and destroy it there.
  // Setting a later time than one already pending keeps the earlier one (the
  // callee re-arms after running).
  class Timer {
   public:
    Timer(SipThread& thread, std::function<void()> fn);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    void wakeAt(Millis when);

   private:
    static void onFire(void* magic, void* timer, void* arg);
    void* timer_;  // su_timer_t*
    std::function<void()> fn_;
    Millis at_ = 0;
    bool armed_ = false;
  };

 private:
  void run(std::function<void()> init);
  void drain();
  static int onWake(void* self, void* wait, void* arg);

  std::unique_ptr<SofiaRoot> sofia_;
  std::thread thread_;
  std::mutex mutex_;
  std::deque<std::function<void()>> queue_;
  int wake_fd_ = -1;
};

}  // namespace sipwake::registrar
