#include "pushgw/provider/log_provider.h"

#include "common/log/logger.h"

namespace sipwake::pushgw {

void LogProvider::send(const PushMessage& message, Done done) {
  std::string token = message.token.size() > 8 ? message.token.substr(0, 8) + "…" : "…";
  log::info("push (log provider)", {{"provider", message.provider},
                                    {"app", message.app},
                                    {"token", token},
                                    {"payload", message.payload.dump()}});
  loop_.post([done = std::move(done)] {
    done(ClassifiedResponse{PushOutcome::Delivered, std::nullopt, "logged"}, 0.0);
  });
}

}  // namespace sipwake::pushgw
