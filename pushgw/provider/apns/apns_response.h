#pragma once

#include "common/http2/http2_message.h"
#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// Maps an APNs answer to what the dispatcher does with it. The reason comes
// from the JSON body {"reason": "..."} (absent on 200s), else "http_<status>";
// "no_response" / "not_processed" when no HTTP answer came.
//   200                                        Delivered
//   410 (Unregistered, ExpiredToken, ...)      InvalidToken
//   400 BadDeviceToken, DeviceTokenNotForTopic InvalidToken
//   403 ExpiredProviderToken, InvalidProviderToken  RefreshCredentials
//   429, 5xx, no response                      RetryLater (+ Retry-After)
//   other 400, 403, 404, 405, 413, ...         PermanentError
ClassifiedResponse classifyApnsResponse(const http2::Response& r);

}  // namespace sipwake::pushgw
