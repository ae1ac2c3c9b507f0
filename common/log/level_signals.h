#pragma once

#include "common/log/logger.h"

struct event;

namespace sipwake {
class EventLoop;
}

namespace sipwake::log {

// Log levels at run time by signal, for processes without an admin API
// (pushgw) and as a fallback: SIGUSR1 switches to debug, SIGUSR2 back to the
// configured level. Handled on `loop`; stops with this object.
class LevelSignals {
 public:
  LevelSignals(EventLoop& loop, Level configured);
  ~LevelSignals();
  LevelSignals(const LevelSignals&) = delete;
  LevelSignals& operator=(const LevelSignals&) = delete;

 private:
  static void onSignal(int fd, short what, void* arg);
  Level configured_;
  event* usr1_ = nullptr;
  event* usr2_ = nullptr;
};

}  // namespace sipwake::log
