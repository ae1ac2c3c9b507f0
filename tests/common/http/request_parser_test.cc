#include "common/http/request_parser.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using sipwake::http::ParseResult;
using sipwake::http::ParserLimits;
using sipwake::http::RequestParser;
using Kind = ParseResult::Kind;

namespace {

// Feeds text one byte at a time and returns the first result that is not NeedMore.
ParseResult feedBytewise(RequestParser& parser, const std::string& text) {
  ParseResult last;
  for (char c : text) {
    last = parser.feed(std::string_view(&c, 1));
    if (last.kind != Kind::NeedMore) return last;
  }
  return last;
}

ParseResult parseOne(const std::string& text, ParserLimits limits = {}) {
  RequestParser parser(limits);
  return parser.feed(text);
}

void requireError(const ParseResult& result, int status, const std::string& code) {
  REQUIRE(result.kind == Kind::Error);
  CHECK(result.error.status == status);
  CHECK(result.error.code == code);
  CHECK_FALSE(result.error.message.empty());
}

}  // namespace

TEST_CASE("RequestParser parses a simple GET", "[http]") {
  auto result = parseOne(
      "GET /v1/things?a=1&b=2 HTTP/1.1\r\nHost: example\r\nX-Mixed-Case:  padded value \t\r\n\r\n");
  REQUIRE(result.kind == Kind::Complete);
  const auto& request = result.request;
  CHECK(request.method == "GET");
  CHECK(request.target == "/v1/things?a=1&b=2");
  CHECK(request.path == "/v1/things");
  CHECK(request.query == "a=1&b=2");
  REQUIRE(request.header("x-mixed-case") != nullptr);
  CHECK(*request.header("x-mixed-case") == "padded value");
  CHECK(*request.header("host") == "example");
  CHECK(request.header("X-Mixed-Case") == nullptr);  // lookups take lower-case names
  CHECK(request.body.empty());
  CHECK(result.keep_alive);
  CHECK(result.minor_version == 1);
}

TEST_CASE("RequestParser reads a Content-Length body", "[http]") {
  auto result = parseOne("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  REQUIRE(result.kind == Kind::Complete);
  CHECK(result.request.body == "hello");
  CHECK(result.request.query.empty());
}

TEST_CASE("RequestParser handles a request split across many tiny feeds", "[http]") {
  RequestParser parser;
  std::string text = "PUT /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    REQUIRE(parser.feed(text.substr(i, 1)).kind == Kind::NeedMore);
  }
  auto result = parser.feed(text.substr(text.size() - 1));
  REQUIRE(result.kind == Kind::Complete);
  CHECK(result.request.method == "PUT");
  CHECK(result.request.path == "/x");
  CHECK(result.request.query == "y");
  CHECK(result.request.body == "hello world");
  CHECK(parser.bufferedBytes() == 0);
}

TEST_CASE("RequestParser keeps pipelined requests for later", "[http]") {
  RequestParser parser;
  std::string two =
      "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
      "GET /b HTTP/1.1\r\n\r\n"
      "GET /c HTTP/1.1\r\nConn";
  auto first = parser.feed(two);
  REQUIRE(first.kind == Kind::Complete);
  CHECK(first.request.path == "/a");
  CHECK(first.request.body == "abc");
  auto second = parser.next();
  REQUIRE(second.kind == Kind::Complete);
  CHECK(second.request.path == "/b");
  CHECK(second.request.body.empty());
  CHECK(parser.next().kind == Kind::NeedMore);
  CHECK(parser.requestStarted());
  auto third = parser.feed("ection: close\r\n\r\n");
  REQUIRE(third.kind == Kind::Complete);
  CHECK(third.request.path == "/c");
  CHECK_FALSE(third.keep_alive);
  CHECK(parser.bufferedBytes() == 0);
}

TEST_CASE("RequestParser pipelining survives byte-by-byte feeding", "[http]") {
  RequestParser parser;
  std::string text =
      "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET /3 "
      "HTTP/1.0\r\n\r\n";
  std::vector<std::string> paths;
  for (char c : text) {
    auto result = parser.feed(std::string_view(&c, 1));
    REQUIRE(result.kind != Kind::Error);
    if (result.kind == Kind::Complete) paths.push_back(result.request.path + result.request.body);
  }
  CHECK(paths == std::vector<std::string>{"/1", "/2ok", "/3"});
}

TEST_CASE("RequestParser ignores empty lines before a request and accepts bare LF", "[http]") {
  RequestParser parser;
  auto result = parser.feed("\r\n\r\nGET /x HTTP/1.1\nHost: a\n\n");
  REQUIRE(result.kind == Kind::Complete);
  CHECK(result.request.path == "/x");
  CHECK(*result.request.header("host") == "a");
  CHECK_FALSE(parser.requestStarted());
  parser.feed("\r\n");
  CHECK_FALSE(parser.requestStarted());  // a stray CRLF is not a request yet
}

TEST_CASE("RequestParser applies keep-alive rules per version", "[http]") {
  CHECK(parseOne("GET / HTTP/1.1\r\n\r\n").keep_alive);
  CHECK_FALSE(parseOne("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
  CHECK_FALSE(parseOne("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
  auto http10 = parseOne("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(http10.kind == Kind::Complete);
  CHECK(http10.minor_version == 0);
  CHECK_FALSE(http10.keep_alive);
  CHECK(parseOne("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

TEST_CASE("RequestParser limits the header block to max_header_bytes", "[http]") {
  ParserLimits limits;
  limits.max_header_bytes = 64;
  std::string head = "GET / HTTP/1.1\r\nX: ";
  std::string exact = head + std::string(64 - head.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(exact.size() == 64);
  CHECK(parseOne(exact, limits).kind == Kind::Complete);

  std::string over = head + std::string(64 - head.size() - 3, 'a') + "\r\n\r\n";
  requireError(parseOne(over, limits), 431, "headers_too_large");

  SECTION("decided without waiting for the end of the headers") {
    RequestParser parser(limits);
    requireError(parser.feed("GET / HTTP/1.1\r\nX: " + std::string(100, 'a')), 431,
                 "headers_too_large");
  }
  SECTION("also when the bytes trickle in") {
    RequestParser parser(limits);
    requireError(feedBytewise(parser, "GET / HTTP/1.1\r\nX: " + std::string(100, 'a')), 431,
                 "headers_too_large");
  }
  SECTION("stray empty lines count too") {
    requireError(parseOne(std::string(80, '\n'), limits), 431, "headers_too_large");
  }
  SECTION("the default is 16 KiB") {
    std::string big = "GET / HTTP/1.1\r\nX: " + std::string(16384, 'a') + "\r\n\r\n";
    requireError(parseOne(big), 431, "headers_too_large");
  }
}

TEST_CASE("RequestParser refuses a body over max_body_bytes from Content-Length alone", "[http]") {
  ParserLimits limits;
  limits.max_body_bytes = 10;
  CHECK(parseOne("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits).kind ==
        Kind::Complete);
  // No body bytes sent: the decision comes from the header.
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits), 413,
               "body_too_large");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 413,
               "body_too_large");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n"), 413, "body_too_large");
}

TEST_CASE("RequestParser requires Content-Length instead of Transfer-Encoding", "[http]") {
  requireError(
      parseOne("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 411,
      "length_required");
  requireError(
      parseOne("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 411,
      "length_required");
}

TEST_CASE("RequestParser validates Content-Length", "[http]") {
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: ,\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
               400, "bad_request");
  requireError(parseOne("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd"), 400, "bad_request");

  SECTION("identical duplicates are one length") {
    auto result = parseOne("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc");
    REQUIRE(result.kind == Kind::Complete);
    CHECK(result.request.body == "abc");
    auto listed = parseOne("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc");
    REQUIRE(listed.kind == Kind::Complete);
    CHECK(listed.request.body == "abc");
  }
}

TEST_CASE("RequestParser rejects malformed request lines", "[http]") {
  for (const char* bad :
       {"GET\r\n\r\n", "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n",
        "GET / extra HTTP/1.1\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", " GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\rX\r\n\r\n", "GET / http/1.1\r\n\r\n", "GET / HTTP/x\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n"}) {
    INFO(bad);
    requireError(parseOne(bad), 400, "bad_request");
  }
}

TEST_CASE("RequestParser rejects targets that are not origin-form paths", "[http]") {
  requireError(parseOne("GET http://example.com/ HTTP/1.1\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("OPTIONS * HTTP/1.1\r\n\r\n"), 400, "bad_request");
  requireError(parseOne("GET ?a=b HTTP/1.1\r\n\r\n"), 400, "bad_request");
}

TEST_CASE("RequestParser answers 505 to other HTTP versions", "[http]") {
  requireError(parseOne("GET / HTTP/2.0\r\n\r\n"), 505, "http_version_not_supported");
  requireError(parseOne("GET / HTTP/0.9\r\n\r\n"), 505, "http_version_not_supported");
  requireError(parseOne("GET / HTTP/1.2\r\n\r\n"), 505, "http_version_not_supported");
  requireError(parseOne("GET / HTTP/3\r\n\r\n"), 505, "http_version_not_supported");
}

TEST_CASE("RequestParser rejects malformed header lines", "[http]") {
  for (const char* bad :
       {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\nName : v\r\n\r\n",
        "GET / HTTP/1.1\r\n: v\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n"}) {
    INFO(bad);
    requireError(parseOne(std::string(bad)), 400, "bad_request");
  }
  std::string with_nul =
      std::string("GET / HTTP/1.1\r\nA: b", 20) + std::string(1, '\0') + "\r\n\r\n";
  requireError(parseOne(with_nul), 400, "bad_request");
}

TEST_CASE("RequestParser stays failed after an error", "[http]") {
  RequestParser parser;
  requireError(parser.feed("BAD\r\n\r\n"), 400, "bad_request");
  CHECK(parser.failed());
  requireError(parser.feed("GET / HTTP/1.1\r\n\r\n"), 400, "bad_request");
  CHECK(parser.bufferedBytes() == 0);
}

TEST_CASE("RequestParser asks for 100 Continue once, only before the body", "[http]") {
  RequestParser parser;
  auto head = parser.feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  CHECK(head.kind == Kind::NeedMore);
  CHECK(parser.takeContinueRequest());
  CHECK_FALSE(parser.takeContinueRequest());
  REQUIRE(parser.feed("ok").kind == Kind::Complete);

  RequestParser whole;
  REQUIRE(
      whole.feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok").kind ==
      Kind::Complete);
  CHECK_FALSE(whole.takeContinueRequest());
}

TEST_CASE("RequestParser gives the same requests however the stream is cut", "[http]") {
  const std::string stream =
      "POST /a?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
      "\r\nGET /b HTTP/1.1\r\nX: y\r\n\r\n"
      "PUT /c HTTP/1.0\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
  std::minstd_rand random(42);
  for (int round = 0; round < 200; ++round) {
    RequestParser parser;
    std::vector<std::string> seen;
    std::size_t at = 0;
    while (at < stream.size()) {
      std::size_t size = std::min<std::size_t>(1 + random() % 24, stream.size() - at);
      auto result = parser.feed(std::string_view(stream).substr(at, size));
      at += size;
      while (result.kind == Kind::Complete) {
        seen.push_back(result.request.method + " " + result.request.target + " " +
                       result.request.body);
        result = parser.next();
      }
      REQUIRE(result.kind == Kind::NeedMore);
    }
    REQUIRE(seen == std::vector<std::string>{"POST /a?q=1 body", "GET /b ", "PUT /c "});
  }
}

TEST_CASE("RequestParser survives random bytes within its memory bound", "[http]") {
  ParserLimits limits;
  limits.max_header_bytes = 256;
  limits.max_body_bytes = 256;
  std::minstd_rand random(7);
  const std::string alphabet = "GET /HTTP1.0\r\n:Content-Length 9xa\t";
  for (int round = 0; round < 500; ++round) {
    RequestParser parser(limits);
    for (int feed = 0; feed < 40 && !parser.failed(); ++feed) {
      std::string chunk;
      for (std::size_t n = random() % 32; n > 0; --n) {
        chunk += random() % 4 == 0 ? static_cast<char>(random() % 256)
                                   : alphabet[random() % alphabet.size()];
      }
      auto result = parser.feed(chunk);
      while (result.kind == Kind::Complete) result = parser.next();
      REQUIRE(parser.bufferedBytes() <=
              limits.max_header_bytes + limits.max_body_bytes + chunk.size());
    }
  }
}
