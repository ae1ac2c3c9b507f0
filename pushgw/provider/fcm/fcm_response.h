#pragma once

#include "common/http2/http2_message.h"
#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// Maps an FCM HTTP v1 answer to what the dispatcher does with it. Errors are
// google.rpc.Status bodies:
//   {"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
//              "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
//                           "errorCode": "UNREGISTERED"},
//                          {"@type": "type.googleapis.com/google.rpc.BadRequest",
//                           "fieldViolations": [{"field": "message.token", ...}]}]}}
// The reason is the FcmError errorCode, else the status, else "http_<code>".
//   200                                              Delivered
//   404 (or 400) with UNREGISTERED                   InvalidToken
//   400 INVALID_ARGUMENT naming message.token or the registration token
//                                                    InvalidToken
//   other 400, 404 without UNREGISTERED              PermanentError: our bug, keep the token
//   401 (our OAuth2 token)                           RefreshCredentials
//   401 THIRD_PARTY_AUTH_ERROR (FCM's APNs/web push credentials, not ours)
//                                                    PermanentError
//   403 with SENDER_ID_MISMATCH (token of another project)  InvalidToken
//   other 403                                        PermanentError
//   429, 5xx, no response                            RetryLater (+ Retry-After)
ClassifiedResponse classifyFcmResponse(const http2::Response& r);

}  // namespace sipwake::pushgw
