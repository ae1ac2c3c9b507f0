#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/event/clock.h"
#include "common/http2/http2_message.h"
#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// FCM counts keys and values of "data" against this limit.
constexpr std::size_t kFcmDataLimit = 4096;
// FCM refuses a ttl above 4 weeks.
constexpr Millis kFcmMaxTtl = 28 * kDay;
// FCM refuses a message whose data uses a key it reserves ("from",
// "message_type", "google*", "gcm*"): the contract's "from" is sent as this.
constexpr const char* kFcmFromKey = "from_uri";

// The HTTP/2 request for one push:
//   POST /v1/projects/<project_id>/messages:send
//   authorization: Bearer <access_token>, content-type: application/json
//   {"message": {"token": ..., "data": {<payload fields as strings>},
//                "android": {"priority": "high"|"normal", "ttl": "<seconds>s"}}}
// Numbers and booleans become strings, nested values compact JSON, nulls are
// left out. ttl counts from `now` to m.expires_at (0s when expires_at is 0 or
// past: deliver now or never, like apns-expiration 0). A message body too
// large for the data limit is shortened (UTF-8 safely, with an ellipsis).
// nullopt, with the reason in *error, when it cannot be sent: no token, a bad
// project id, a reserved data key, or data still too large.
std::optional<http2::Request> buildFcmRequest(const PushMessage& m, const std::string& project_id,
                                              const std::string& access_token, Millis now,
                                              std::string* error = nullptr);

}  // namespace sipwake::pushgw
