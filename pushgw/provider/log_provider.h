#pragma once

#include "common/event/event_loop.h"
#include "pushgw/provider/push_provider.h"

namespace sipwake::pushgw {

// For local runs without push credentials: logs each push (token shortened)
// and reports it delivered.
class LogProvider final : public PushProvider {
 public:
  explicit LogProvider(EventLoop& loop) : loop_(loop) {}
  const char* name() const override { return "log"; }
  void send(const PushMessage& message, Done done) override;
  void refreshCredentials() override {}

 private:
  EventLoop& loop_;
};

}  // namespace sipwake::pushgw
