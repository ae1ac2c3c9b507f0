#include "common/http/request_parser.h"

#include <algorithm>
#include <limits>

namespace sipwake::http {
namespace {

// RFC 9110 §5.6.2 token characters.
bool isTchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return isTchar(c); });
}

// Visible ASCII only: no spaces, controls or raw non-ASCII in the target.
bool isTarget(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F;
  });
}

// RFC 9110 §5.5: HTAB, visible ASCII, space and obs-text; never CR, LF or NUL.
bool isFieldValue(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7F);
  });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

// Calls fn on each trimmed, non-empty element of a comma-separated list.
template <typename Fn>
void forEachListElement(std::string_view list, Fn fn) {
  while (true) {
    auto comma = list.find(',');
    auto element = trimOws(list.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

bool hasToken(const Request& request, std::string_view name, std::string_view token) {
  bool found = false;
  for (const auto& [key, value] : request.headers) {
    if (key != name) continue;
    forEachListElement(value,
                       [&](std::string_view e) { found = found || equalsIgnoreCase(e, token); });
  }
  return found;
}

// Digits only; saturates instead of overflowing, so a huge length is "too
// large" (413) rather than "invalid" (400).
bool parseLength(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  constexpr std::uint64_t kCap = std::numeric_limits<std::uint64_t>::max() / 10 - 10;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value >= kCap ? kCap : value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = value;
  return true;
}

}  // namespace

RequestParser::RequestParser(ParserLimits limits) : limits_(limits) {}

ParseResult RequestParser::feed(std::string_view bytes) {
  if (phase_ == Phase::Failed) return fail(error_.status, error_.code, error_.message);
  buffer_.append(bytes);
  if (phase_ == Phase::Headers) return scanHeaders();
  return finishBody();
}

bool RequestParser::takeContinueRequest() {
  bool requested = continue_requested_;
  continue_requested_ = false;
  return requested;
}

// Looks for the empty line ending the header block, one line at a time from
// where the previous feed stopped, so tiny feeds stay linear.
ParseResult RequestParser::scanHeaders() {
  while (true) {
    auto newline = buffer_.find('\n', line_start_);
    if (newline == std::string::npos) {
      if (buffer_.size() >= limits_.max_header_bytes) {
        return fail(431, "headers_too_large", "request line and headers exceed the size limit");
      }
      return ParseResult{};
    }
    if (newline + 1 > limits_.max_header_bytes) {
      return fail(431, "headers_too_large", "request line and headers exceed the size limit");
    }
    std::size_t length = newline - line_start_;
    bool empty = length == 0 || (length == 1 && buffer_[line_start_] == '\r');
    std::size_t line_start = line_start_;
    line_start_ = newline + 1;
    if (!empty) continue;
    // RFC 9112 §2.2: ignore empty lines before the request line (a client may
    // send a stray CRLF after a body).
    if (line_start == request_start_) {
      request_start_ = line_start_;
      continue;
    }
    body_start_ = line_start_;
    auto block = std::string_view(buffer_).substr(request_start_, line_start - request_start_);
    ParseResult parsed = parseHeaderBlock(block);
    if (parsed.kind == ParseResult::Kind::Error) return parsed;
    phase_ = Phase::Body;
    return finishBody();
  }
}

ParseResult RequestParser::parseHeaderBlock(std::string_view block) {
  pending_ = Request{};
  auto next_line = [&block]() {
    auto newline = block.find('\n');
    auto line = block.substr(0, newline);
    block.remove_prefix(newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };

  // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
  std::string_view request_line = next_line();
  auto first_space = request_line.find(' ');
  auto second_space =
      request_line.find(' ', first_space == std::string_view::npos ? 0 : first_space + 1);
  if (first_space == std::string_view::npos || second_space == std::string_view::npos ||
      request_line.find(' ', second_space + 1) != std::string_view::npos) {
    return fail(400, "bad_request", "malformed request line");
  }
  auto method = request_line.substr(0, first_space);
  auto target = request_line.substr(first_space + 1, second_space - first_space - 1);
  auto version = request_line.substr(second_space + 1);
  if (!isToken(method)) return fail(400, "bad_request", "malformed method");
  bool http11 = version == "HTTP/1.1";
  if (!http11 && version != "HTTP/1.0") {
    auto number = version.substr(std::min<std::size_t>(5, version.size()));
    bool looks_like_version = version.starts_with("HTTP/") && !number.empty() &&
                              std::all_of(number.begin(), number.end(), [](char c) {
                                return (c >= '0' && c <= '9') || c == '.';
                              });
    if (looks_like_version)
      return fail(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
    return fail(400, "bad_request", "malformed HTTP version");
  }
  // Origin form only (RFC 9112 §3.2.1): no absolute URIs, no "*".
  if (target.empty() || target.front() != '/' || !isTarget(target)) {
    return fail(400, "bad_request", "request target must be a path starting with '/'");
  }
  pending_.method = method;
  pending_.target = target;
  auto question = target.find('?');
  pending_.path = target.substr(0, question);
  if (question != std::string_view::npos) pending_.query = target.substr(question + 1);

  while (!block.empty()) {
    std::string_view line = next_line();
    // Obsolete line folding is a request-smuggling vector; RFC 9112 §5.2 allows rejecting it.
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "bad_request", "folded header line");
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "bad_request", "malformed header line");
    // No whitespace allowed before the colon (RFC 9112 §5.1): isToken rejects it.
    auto name = line.substr(0, colon);
    auto value = trimOws(line.substr(colon + 1));
    if (!isToken(name)) return fail(400, "bad_request", "malformed header name");
    if (!isFieldValue(value)) return fail(400, "bad_request", "invalid character in header value");
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), asciiLower);
    pending_.headers.emplace_back(std::move(lower), std::string(value));
  }

  if (pending_.header("transfer-encoding") != nullptr) {
    return fail(411, "length_required",
                "request bodies need Content-Length; Transfer-Encoding is not supported");
  }
  // Several Content-Length values (repeated or as a list) are fine only if
  // they agree (RFC 9112 §6.3 item 5).
  bool have_length = false;
  bool valid = true;
  content_length_ = 0;
  for (const auto& [name, value] : pending_.headers) {
    if (name != "content-length") continue;
    int elements = 0;
    forEachListElement(value, [&](std::string_view element) {
      std::uint64_t length = 0;
      if (!parseLength(element, length) || (have_length && length != content_length_))
        valid = false;
      content_length_ = length;
      have_length = true;
      ++elements;
    });
    if (elements == 0) valid = false;
  }
  if (!valid) return fail(400, "bad_request", "invalid Content-Length");
  // Decided before reading any of the body, so a client is not made to upload it.
  if (content_length_ > limits_.max_body_bytes) {
    return fail(413, "body_too_large",
                "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes");
  }

  minor_version_ = http11 ? 1 : 0;
  keep_alive_ = http11 ? !hasToken(pending_, "connection", "close")
                       : hasToken(pending_, "connection", "keep-alive");
  continue_requested_ =
      http11 && content_length_ > 0 && hasToken(pending_, "expect", "100-continue");
  return ParseResult{};
}

ParseResult RequestParser::finishBody() {
  if (buffer_.size() - body_start_ < content_length_) return ParseResult{};
  ParseResult result;
  result.kind = ParseResult::Kind::Complete;
  result.keep_alive = keep_alive_;
  result.minor_version = minor_version_;
  result.request = std::move(pending_);
  result.request.body = buffer_.substr(body_start_, content_length_);
  // Whatever follows is the next pipelined request.
  buffer_.erase(0, body_start_ + content_length_);
  reset();
  return result;
}

ParseResult RequestParser::fail(int status, std::string_view code, std::string_view message) {
  phase_ = Phase::Failed;
  error_ = ParseError{status, std::string(code), std::string(message)};
  buffer_.clear();
  buffer_.shrink_to_fit();
  continue_requested_ = false;
  ParseResult result;
  result.kind = ParseResult::Kind::Error;
  result.error = error_;
  return result;
}

void RequestParser::reset() {
  phase_ = Phase::Headers;
  line_start_ = 0;
  request_start_ = 0;
  body_start_ = 0;
  content_length_ = 0;
  keep_alive_ = false;
  minor_version_ = 1;
  continue_requested_ = false;
  pending_ = Request{};
}

}  // namespace sipwake::http
