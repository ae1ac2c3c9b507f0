#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sipwake::http2 {

// One HTTP/2 request. Pseudo-headers (:method, :path, :scheme, :authority)
// come from the fields; `headers` are regular, lower-case names.
struct Request {
  std::string method = "POST";
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The answer to one request, or why there is none.
struct Response {
  int status = 0;  // 0: no HTTP response, see `error`
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  std::string body;
  std::string error;        // connection failed, stream reset, timeout, ...
  bool retry_safe = false;  // the server did not process it (REFUSED_STREAM, beyond GOAWAY, never sent)

  const std::string* header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) return &v;
    }
    return nullptr;
  }
};

}  // namespace sipwake::http2
