#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/http/http_message.h"

namespace sipwake::registrar {

// Small pieces shared by the API's tenant and admin handlers.
// Every answer's body: invalid UTF-8 (a PBX's reason phrase) is replaced,
// never a 500.
using http::jsonResponse;
// 503 with Retry-After: Redis is unreachable.
http::Response storageUnavailable();
http::Response methodNotAllowed(std::string_view allow);
// The token of "Authorization: Bearer <token>" (scheme case-insensitive).
std::optional<std::string> bearerToken(const http::Request& request);
// "a=1&b=x%20y" -> {a:1, b:"x y"}; nullopt on bad percent-encoding or a
// repeated name.
std::optional<std::map<std::string, std::string>> parseQuery(std::string_view query);

}  // namespace sipwake::registrar
