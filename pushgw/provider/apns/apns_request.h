#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/http2/http2_message.h"
#include "pushgw/provider/push_message.h"

namespace sipwake::pushgw {

// APNs payload limits (bytes of the request body).
constexpr std::size_t kApnsVoipPayloadLimit = 5120;
constexpr std::size_t kApnsPayloadLimit = 4096;
// apns-collapse-id may not exceed 64 bytes; longer ids are replaced by the
// hex SHA-256 of the id (64 characters, the same for every push of a call).
constexpr std::size_t kApnsCollapseIdLimit = 64;

// The HTTP/2 request for one push (path relative to the APNs URL; a
// configured path prefix is the transport's to prepend):
//   POST /3/device/<token>
//   authorization: bearer <provider_token>, apns-topic, apns-push-type,
//   apns-priority, apns-expiration, [apns-collapse-id], content-type
//   {"aps": {...}, <payload fields>}
// A message body too large for the limit is shortened (UTF-8 safely, with an
// ellipsis). nullopt, with the reason in *error, when the push cannot be
// sent: unknown push type, a device token that is not hex, no app, or a
// payload still too large.
std::optional<http2::Request> buildApnsRequest(const PushMessage& m,
                                               const std::string& provider_token,
                                               std::string* error = nullptr);

}  // namespace sipwake::pushgw
