#include "pushgw/provider/log_provider.h"

#include "common/log/logger.h"
#include "common/util/redact.h"

namespace sipwake::pushgw {

void LogProvider::send(const PushMessage& message, Done done) {
  std::string token = shortenToken(message.token);
  log::info("push (log provider)", {{"provider", message.provider},
                                    {"app", message.app},
                                    {"token", token},
                                    {"payload", message.payload.dump()}});
  loop_.post([done = std::move(done)] {
    done(ClassifiedResponse{PushOutcome::Delivered, std::nullopt, "logged"}, 0.0);
  });
}

}  // namespace sipwake::pushgw
