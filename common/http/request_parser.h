#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http/http_message.h"

namespace sipwake::http {

struct ParserLimits {
  std::size_t max_header_bytes = 16384;  // request line + headers + the empty line
  std::size_t max_body_bytes = 65536;
};

// Why a request was refused; status/code go to the client through jsonError().
struct ParseError {
  int status = 400;
  std::string code;
  std::string message;
};

struct ParseResult {
  enum class Kind { NeedMore, Complete, Error };
  Kind kind = Kind::NeedMore;
  Request request;          // Complete only; remote_addr and tls are the caller's to fill
  bool keep_alive = false;  // Complete only
  int minor_version = 1;    // Complete only: HTTP/1.<minor_version>
  ParseError error;         // Error only
};

// An incremental HTTP/1.0 and 1.1 request parser. It does no I/O so it can be
// unit-tested and fuzzed on its own. Bodies need Content-Length: chunked
// uploads are refused with 411, which keeps the body size known up front.
//
// Memory: a request never holds more than max_header_bytes + max_body_bytes;
// bytes fed beyond the current request (pipelining) are kept for the next
// one, so callers bound them by feeding only while the parser asks for more.
// After an Error the parser stays failed: the connection must be closed,
// because the request boundary is lost.
class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits = {});

  // Appends bytes, then tries to complete the next request.
  ParseResult feed(std::string_view bytes);
  // Tries to complete a request from bytes already buffered (the next pipelined one).
  ParseResult next() { return feed({}); }

  // Bytes held that belong to requests not yet returned.
  std::size_t bufferedBytes() const { return buffer_.size(); }
  // True once bytes of a next request (beyond stray empty lines) arrived.
  bool requestStarted() const { return buffer_.size() > request_start_; }
  bool failed() const { return phase_ == Phase::Failed; }
  // True once after the headers of a request carrying "Expect: 100-continue"
  // arrived without its body (RFC 9110 §10.1.1); the caller sends 100 Continue.
  bool takeContinueRequest();

 private:
  enum class Phase { Headers, Body, Failed };

  ParseResult scanHeaders();
  ParseResult parseHeaderBlock(std::string_view block);
  ParseResult finishBody();
  ParseResult fail(int status, std::string_view code, std::string_view message);
  void reset();

  ParserLimits limits_;
  std::string buffer_;  // starts at the current request
  Phase phase_ = Phase::Headers;
  std::size_t line_start_ = 0;     // start of the header line being scanned
  std::size_t request_start_ = 0;  // after empty lines preceding the request line
  std::size_t body_start_ = 0;
  std::uint64_t content_length_ = 0;
  bool keep_alive_ = false;
  int minor_version_ = 1;
  bool continue_requested_ = false;
  Request pending_;
  ParseError error_;
};

}  // namespace sipwake::http
