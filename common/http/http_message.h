#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sipwake::http {

// One parsed HTTP/1.x request, as handed to a server Handler.
struct Request {
  std::string method;
  std::string target;  // as sent: path plus optional "?query"
  std::string path;
  std::string query;                                         // without the '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote_addr;  // "ip:port", IPv6 as "[ip]:port"
  bool tls = false;

  // First header with that (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

// What a Handler answers. The server writes Content-Length, Content-Type
// (from content_type) and Connection itself and drops those names from
// `headers`, except that "Connection: close" there makes it close after this
// response. Headers with CR, LF or NUL are dropped. 204 and 304 go out
// without body, Content-Length or Content-Type.
struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
};

// A JSON answer of `status`. Text that is not valid UTF-8 (a PBX's reason
// phrase kept in a binding, say) becomes U+FFFD instead of throwing.
Response jsonResponse(int status, const nlohmann::json& body);

// A JSON error: body {"error":{"code":...,"message":...}}. Every error the
// server itself produces goes through here so clients see one shape.
Response jsonError(int status, std::string_view code, std::string_view message);

// "OK", "Not Found", ...; "Unknown" for codes we do not name.
std::string_view reasonPhrase(int status);

}  // namespace sipwake::http
