#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

const char* toString(PushOutcome outcome) {
  switch (outcome) {
    case PushOutcome::Delivered: return "delivered";
    case PushOutcome::InvalidToken: return "invalid_token";
    case PushOutcome::RetryLater: return "retry_later";
    case PushOutcome::RefreshCredentials: return "refresh_credentials";
    case PushOutcome::PermanentError: return "permanent_error";
  }
  return "permanent_error";
}

}  // namespace sipwake::pushgw
