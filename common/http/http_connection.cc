#include "common/http/http_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/log/logger.h"

namespace sipwake::http {
namespace {

// Bounds flushing a final response plus the lingering close after it: long
// enough for the client to read the response, short enough that refused or
// failed connections do not pile up.
constexpr Millis kClosingTimeout = 2000;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string lowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  return out;
}

// A handler-supplied header must not be able to split the response.
bool isSafeHeader(std::string_view name, std::string_view value) {
  auto bad = [](char c) { return c == '\r' || c == '\n' || c == '\0'; };
  return !name.empty() && name.find_first_of(" \t:") == std::string_view::npos &&
         std::none_of(name.begin(), name.end(), bad) &&
         std::none_of(value.begin(), value.end(), bad);
}

std::string describeError(bufferevent* bev, bool tls) {
  std::string out;
  if (tls) {
    while (unsigned long code = bufferevent_get_openssl_error(bev)) {
      const char* reason = ERR_reason_error_string(code);
      if (!out.empty()) out += "; ";
      out += reason != nullptr ? reason : "TLS error";
    }
  }
  if (out.empty()) out = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  return out;
}

}  // namespace

HttpConnection::HttpConnection(Context context, bufferevent* bev, std::string remote_addr, bool tls)
    : context_(std::move(context)),
      bev_(bev),
      remote_addr_(std::move(remote_addr)),
      tls_(tls),
      parser_(ParserLimits{context_.limits.max_header_bytes, context_.limits.max_body_bytes}),
      timer_(context_.loop, [this] { onTimer(); }) {
  bufferevent_setcb(bev_, &onReadCb, &onWriteCb, &onEventCb, this);
  // While a request is being handled, pipelined bytes wait in the input
  // buffer; the high watermark stops reading once this much is waiting.
  bufferevent_setwatermark(bev_, EV_READ, 0, context_.limits.max_header_bytes);
  // Many clients close TLS without close_notify; that is an EOF, not an attack.
  if (tls_) bufferevent_openssl_set_allow_dirty_shutdown(bev_, 1);
}

HttpConnection::~HttpConnection() {
  if (bev_ != nullptr) bufferevent_free(bev_);
}

void HttpConnection::start() {
  // The first request's clock starts at accept (and covers the TLS handshake).
  startTimer(TimerKind::Header);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void HttpConnection::refuse(Response response) {
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  writeResponse(std::move(response), true);
}

void HttpConnection::abandon() {
  state_ = State::Closed;
  stopTimer();
  if (bev_ != nullptr) bufferevent_free(bev_);
  bev_ = nullptr;
}

void HttpConnection::onReadCb(bufferevent*, void* arg) {
  static_cast<HttpConnection*>(arg)->onRead();
}

void HttpConnection::onWriteCb(bufferevent*, void* arg) {
  static_cast<HttpConnection*>(arg)->onWritten();
}

void HttpConnection::onEventCb(bufferevent*, short events, void* arg) {
  static_cast<HttpConnection*>(arg)->onEvent(events);
}

void HttpConnection::onRead() noexcept {
  if (state_ == State::Reading) {
    processBuffered(takeInput());
  } else if (state_ == State::Lingering) {
    evbuffer* input = bufferevent_get_input(bev_);
    evbuffer_drain(input, evbuffer_get_length(input));
  }
  // Handling or Writing: leave pipelined bytes in the input buffer for later.
}

// Runs when the output buffer has been flushed to the socket.
void HttpConnection::onWritten() noexcept {
  if (state_ != State::Writing) return;
  if (close_after_write_) {
    startLingering();
  } else {
    resumeReading();
  }
}

void HttpConnection::onEvent(short events) noexcept {
  if (events & BEV_EVENT_CONNECTED) return;  // TLS handshake done
  bool eof_only = (events & BEV_EVENT_EOF) && !(events & BEV_EVENT_ERROR);
  if (eof_only && (state_ == State::Handling || state_ == State::Writing)) {
    // The client may have half-closed after its requests (shutdown(SHUT_WR)):
    // still answer what it sent, then close. If it is fully gone a write fails.
    peer_eof_ = true;
    return;
  }
  if (events & BEV_EVENT_ERROR) {
    if (log::enabled(log::Level::Debug)) {
      log::debug("http connection error",
                 {{"remote", remote_addr_}, {"error", describeError(bev_, tls_)}});
    }
  }
  close();
}

void HttpConnection::onTimer() noexcept {
  TimerKind kind = timer_kind_;
  timer_kind_ = TimerKind::None;
  switch (kind) {
    case TimerKind::Header:
      log::debug("http request timed out", {{"remote", remote_addr_}});
      writeResponse(jsonError(408, "request_timeout", "the request did not arrive in time"), true);
      return;
    case TimerKind::Idle:     // idle keep-alive connection, or a client not reading our response
    case TimerKind::Closing:  // final response not flushed, or the client never closed
      close();
      return;
    case TimerKind::None:
      return;
  }
}

void HttpConnection::resumeReading() {
  state_ = State::Reading;
  head_ = false;
  http10_ = false;
  startTimer(TimerKind::Idle);
  processBuffered(takeInput());
}

void HttpConnection::processBuffered(std::string_view fresh) {
  ParseResult parsed = parser_.feed(fresh);
  switch (parsed.kind) {
    case ParseResult::Kind::NeedMore:
      if (peer_eof_) {  // every complete request is answered; no more can come
        close();
        return;
      }
      if (parser_.takeContinueRequest())
        bufferevent_write(bev_, kContinue.data(), kContinue.size());
      // A keep-alive connection stops being idle with the first byte of a request.
      if (timer_kind_ == TimerKind::Idle && parser_.requestStarted()) startTimer(TimerKind::Header);
      return;
    case ParseResult::Kind::Error:
      log::debug("http request refused", {{"remote", remote_addr_},
                                          {"status", std::to_string(parsed.error.status)},
                                          {"code", parsed.error.code}});
      writeResponse(jsonError(parsed.error.status, parsed.error.code, parsed.error.message), true);
      return;
    case ParseResult::Kind::Complete:
      dispatch(std::move(parsed));
      return;
  }
}

void HttpConnection::dispatch(ParseResult&& parsed) {
  stopTimer();
  state_ = State::Handling;
  keep_alive_ = parsed.keep_alive;
  http10_ = parsed.minor_version == 0;
  head_ = parsed.request.method == "HEAD";
  Request request = std::move(parsed.request);
  request.remote_addr = remote_addr_;
  request.tls = tls_;
  std::uint64_t id = ++request_id_;
  // The id makes a second call, or a call meant for an earlier request, a no-op.
  Responder responder = [weak = weak_from_this(), id](Response response) {
    if (auto self = weak.lock()) self->respond(id, std::move(response));
  };
  try {
    context_.handler(std::move(request), std::move(responder));
  } catch (const std::exception& e) {
    log::error("http handler threw", {{"error", e.what()}});
    respond(id, jsonError(500, "internal_error", "internal server error"));
  } catch (...) {
    log::error("http handler threw", {{"error", "unknown exception"}});
    respond(id, jsonError(500, "internal_error", "internal server error"));
  }
}

void HttpConnection::respond(std::uint64_t request_id, Response response) {
  if (state_ != State::Handling || request_id != request_id_) {
    log::debug("http response dropped: already answered or connection closed",
               {{"remote", remote_addr_}});
    return;
  }
  writeResponse(std::move(response), !keep_alive_);
}

void HttpConnection::writeResponse(Response response, bool close) {
  if (response.status < 200 || response.status > 599) {
    log::error("http handler returned an invalid status",
               {{"status", std::to_string(response.status)}});
    response = jsonError(500, "internal_error", "internal server error");
  }
  // RFC 9110 §8.6: 204 and 304 carry neither a body nor Content-Length.
  bool bodyless = response.status == 204 || response.status == 304;
  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " ";
  head += reasonPhrase(response.status);
  head += "\r\n";
  for (const auto& [name, value] : response.headers) {
    std::string lower = lowerCase(name);
    if (lower == "connection") {
      if (lowerCase(value).find("close") != std::string::npos) close = true;
      continue;
    }
    if (lower == "content-length" || lower == "content-type" || lower == "transfer-encoding")
      continue;
    if (!isSafeHeader(name, value)) {
      log::warn("http response header dropped: invalid characters", {{"name", lowerCase(name)}});
      continue;
    }
    head += name + ": " + value + "\r\n";
  }
  if (!bodyless) {
    if (!response.content_type.empty()) head += "Content-Type: " + response.content_type + "\r\n";
    head += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  }
  if (close) {
    head += "Connection: close\r\n";
  } else if (http10_) {
    head += "Connection: keep-alive\r\n";  // HTTP/1.0 clients close unless told otherwise
  }
  head += "\r\n";
  bufferevent_write(bev_, head.data(), head.size());
  if (!bodyless && !head_) bufferevent_write(bev_, response.body.data(), response.body.size());
  state_ = State::Writing;
  close_after_write_ = close;
  startTimer(close ? TimerKind::Closing : TimerKind::Idle);
}

// Closing a socket with unread input makes the kernel send RST, which can
// destroy the response we just sent before the client reads it. So: send
// FIN, discard what the client still sends, close on its EOF or the timer.
void HttpConnection::startLingering() {
  if (peer_eof_) {
    close();
    return;
  }
  state_ = State::Lingering;
  if (tls_) {
    if (SSL* ssl = bufferevent_openssl_get_ssl(bev_)) {
      SSL_shutdown(ssl);  // close_notify; a failure here changes nothing
      ERR_clear_error();  // so it is not blamed on another connection
    }
  }
  evutil_socket_t fd = bufferevent_getfd(bev_);
  if (fd >= 0) ::shutdown(fd, SHUT_WR);
  evbuffer* input = bufferevent_get_input(bev_);
  evbuffer_drain(input, evbuffer_get_length(input));
}

void HttpConnection::close() {
  if (state_ == State::Closed) return;
  abandon();
  context_.on_closed(*this);
}

void HttpConnection::startTimer(TimerKind kind) {
  timer_kind_ = kind;
  Millis delay = kClosingTimeout;
  if (kind == TimerKind::Header) delay = context_.limits.header_timeout;
  if (kind == TimerKind::Idle) delay = context_.limits.idle_timeout;
  timer_.start(delay);
}

void HttpConnection::stopTimer() {
  timer_kind_ = TimerKind::None;
  timer_.cancel();
}

std::string HttpConnection::takeInput() {
  evbuffer* input = bufferevent_get_input(bev_);
  std::string bytes(evbuffer_get_length(input), '\0');
  evbuffer_remove(input, bytes.data(), bytes.size());
  return bytes;
}

}  // namespace sipwake::http
