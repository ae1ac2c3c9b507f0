#include "common/log/level_signals.h"

#include <event2/event.h>

#include <csignal>

#include "common/event/event_loop.h"

namespace sipwake::log {

LevelSignals::LevelSignals(EventLoop& loop, Level configured) : configured_(configured) {
  usr1_ = evsignal_new(loop.base(), SIGUSR1, &LevelSignals::onSignal, this);
  usr2_ = evsignal_new(loop.base(), SIGUSR2, &LevelSignals::onSignal, this);
  event_add(usr1_, nullptr);
  event_add(usr2_, nullptr);
}

LevelSignals::~LevelSignals() {
  event_free(usr1_);
  event_free(usr2_);
}

void LevelSignals::onSignal(int fd, short, void* arg) {
  auto* self = static_cast<LevelSignals*>(arg);
  Level before = level();
  Level to = fd == SIGUSR1 ? Level::Debug : self->configured_;
  setLevel(to);
  write(Level::Info, "log level changed by signal",
        {{"signal", fd == SIGUSR1 ? "SIGUSR1" : "SIGUSR2"},
         {"from", levelName(before)},
         {"to", levelName(to)}});
}

}  // namespace sipwake::log
