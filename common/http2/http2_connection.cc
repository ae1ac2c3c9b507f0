#include "common/http2/http2_connection.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "common/http2/tls_client_context.h"
#include "common/log/logger.h"

namespace sipwake::http2 {
namespace {

// Response bodies beyond this are refused (APNs and FCM answer with a few
// hundred bytes of JSON at most).
constexpr std::size_t kMaxResponseBody = 64 * 1024;
// Response header fields kept per response; more are dropped.
constexpr std::size_t kMaxResponseHeaders = 64;
// Frames serialised before a write: a few TLS records, one syscall.
constexpr std::size_t kWriteBatch = 64 * 1024;
// Flow-control windows we grant the server: responses never wait for a
// WINDOW_UPDATE round trip.
constexpr std::int32_t kStreamWindow = 1 << 20;
constexpr std::int32_t kConnectionWindow = 16 << 20;

std::string_view view(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace

Millis steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// C trampolines: each one finds its Connection and returns nghttp2's failure
// code instead of letting an exception cross into C.
struct SessionCallbacks {
  static Connection& self(void* user) { return *static_cast<Connection*>(user); }

  static int beginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    return self(user).onBeginHeaders(frame->hd.stream_id);
  }

  static int header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                    std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                    std::uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    try {
      return self(user).onHeader(frame->hd.stream_id, name, namelen, value, valuelen);
    } catch (...) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }

  static int dataChunk(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                       const std::uint8_t* data, std::size_t len, void* user) {
    try {
      return self(user).onDataChunk(stream_id, data, len);
    } catch (...) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }

  static int frameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    bool goaway = frame->hd.type == NGHTTP2_GOAWAY;
    try {
      return self(user).onFrameRecv(frame->hd.type, frame->hd.flags, frame->hd.stream_id,
                                    goaway ? frame->goaway.last_stream_id : 0,
                                    goaway ? frame->goaway.error_code : 0);
    } catch (...) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }

  static int frameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    return self(user).onFrameSend(frame->hd.type, frame->hd.stream_id);
  }

  static int streamClose(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code,
                         void* user) {
    try {
      return self(user).onStreamClose(stream_id, error_code);
    } catch (...) {
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }

  static int error(nghttp2_session*, int, const char* msg, std::size_t len, void* user) {
    try {
      self(user).onSessionError(msg, len);
    } catch (...) {
    }
    return 0;
  }

  static ssize_t readBody(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                          std::size_t length, std::uint32_t* data_flags, nghttp2_data_source*,
                          void* user) {
    return self(user).readBody(stream_id, buf, length, data_flags);
  }

  // Built once; nghttp2 copies nothing from it per session but reads it.
  static const nghttp2_session_callbacks* get() {
    struct Holder {
      nghttp2_session_callbacks* cbs = nullptr;
      Holder() {
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &beginHeaders);
        nghttp2_session_callbacks_set_on_header_callback(cbs, &header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &dataChunk);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &frameRecv);
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &frameSend);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &streamClose);
        nghttp2_session_callbacks_set_error_callback2(cbs, &error);
      }
      ~Holder() { nghttp2_session_callbacks_del(cbs); }
    };
    static const Holder holder;
    return holder.cbs;
  }
};

Connection::Connection(EventLoop& loop, const ClientOptions& options, const std::string& authority,
                       const TlsClientContext& tls, Listener& listener, std::uint64_t id)
    : loop_(loop),
      options_(options),
      authority_(authority),
      tls_(tls),
      listener_(listener),
      id_(id),
      resolver_(loop),
      timer_(loop, [this] { onTimer(); }) {}

Connection::~Connection() {
  // close() normally handed everything back; never leave dangling links.
  while (Exchange* ex = streams_.popFront()) ex->connection = nullptr;
  if (session_ != nullptr) nghttp2_session_del(session_);
}

std::string Connection::describe() const {
  return options_.host + ":" + std::to_string(options_.port);
}

void Connection::start() {
  state_ = State::Resolving;
  timer_phase_ = TimerPhase::Connect;
  timer_.start(options_.connect_timeout);
  resolver_.resolve(options_.host, options_.port,
                    [this](std::vector<ResolvedAddress> addresses, std::string error) {
                      onResolved(std::move(addresses), std::move(error));
                    });
}

void Connection::onResolved(std::vector<ResolvedAddress> addresses, std::string error) {
  if (state_ != State::Resolving) return;
  if (!error.empty()) {
    close(error, CloseKind::Failure);
    return;
  }
  addresses_ = std::move(addresses);
  next_address_ = 0;
  state_ = State::Connecting;
  connectNext();
}

// Tries the resolved addresses in order until one accepts TCP; TLS failures
// are not retried on another address (same server, same certificate).
void Connection::connectNext() {
  while (next_address_ < addresses_.size()) {
    const ResolvedAddress& a = addresses_[next_address_++];
    int fd = ::socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_connect_error_ = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 &&
        errno != EINPROGRESS) {
      last_connect_error_ = std::string("TCP connect: ") + std::strerror(errno);
      ::close(fd);
      continue;
    }
    std::string error;
    SSL* ssl = tls_.newSsl(options_.host, error);
    if (ssl == nullptr) {
      ::close(fd);
      close(error, CloseKind::Failure);
      return;
    }
    if (socket_) failed_socket_ = std::move(socket_);
    TlsSocket::Handler& handler = *this;
    socket_ = std::make_unique<TlsSocket>(loop_, fd, ssl, handler, true);
    socket_->start();
    return;
  }
  close(last_connect_error_.empty() ? "no address to connect to" : last_connect_error_,
        CloseKind::Failure);
}

void Connection::onTlsConnected() {
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(socket_->ssl(), &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    close("the server did not negotiate HTTP/2 (no ALPN \"h2\")", CloseKind::Failure);
    return;
  }
  int rv = nghttp2_session_client_new(&session_, SessionCallbacks::get(), this);
  if (rv != 0) {
    close(std::string("nghttp2: ") + nghttp2_strerror(rv), CloseKind::Failure);
    return;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  // No stream before the server's SETTINGS: until then its concurrency limit
  // is unknown, and APNs starts at 1.
  state_ = State::AwaitingSettings;
  listener_.onConnectionChanged();
}

void Connection::onTlsData(const std::uint8_t* data, std::size_t size) {
  if (session_ == nullptr || state_ == State::Closed) return;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, size);
  if (rv < 0) {
    close(std::string("HTTP/2: ") +
              (session_error_.empty() ? nghttp2_strerror(static_cast<int>(rv)) : session_error_),
          CloseKind::Failure);
  }
}

void Connection::onTlsReadDone() {
  if (state_ == State::Closed || session_ == nullptr) return;
  last_read_ms_ = steadyNowMs();
  // SETTINGS ACK, PING ACK, WINDOW_UPDATE: the Client's turn flushes them.
  if (nghttp2_session_want_write(session_) != 0) listener_.onConnectionChanged();
  finishIfDrained();
}

void Connection::onTlsWritable() {
  flush();
}

void Connection::onTlsClosed(const std::string& reason) {
  if (state_ == State::Connecting && !socket_->tcpConnected() &&
      next_address_ < addresses_.size()) {
    last_connect_error_ = reason;
    connectNext();
    return;
  }
  if (state_ == State::Draining && open_streams_ == 0) {
    close("closed by the server after GOAWAY", CloseKind::Drained);
  } else {
    close(reason, CloseKind::Failure);
  }
}

void Connection::flush() {
  if (state_ == State::Closed || session_ == nullptr || socket_->writeBlocked()) return;
  std::string& out = socket_->output();
  for (;;) {
    while (out.size() < kWriteBatch) {
      const std::uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)), CloseKind::Failure);
        return;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out.empty()) break;
    // Blocked: onTlsWritable() resumes. Closed: onTlsClosed() has run.
    if (!socket_->flush()) return;
  }
  finishIfDrained();
}

void Connection::finishIfDrained() {
  if (state_ == State::Closed || session_ == nullptr || socket_->pendingOutput() > 0) return;
  bool want_read = nghttp2_session_want_read(session_) != 0;
  bool want_write = nghttp2_session_want_write(session_) != 0;
  if (want_write) return;
  if (state_ == State::Draining && open_streams_ == 0) {
    close(goaway_received_ ? "drained after GOAWAY" : "drained (stream ids used up)",
          CloseKind::Drained);
  } else if (!want_read) {
    // nghttp2 sent a GOAWAY for a protocol error and is done.
    close("HTTP/2 session ended" + (session_error_.empty() ? "" : ": " + session_error_),
          CloseKind::Failure);
  }
}

Connection::OpenResult Connection::open(Exchange& ex) {
  const Request& req = ex.request;
  // Reused for every request on this thread: no allocation per request.
  static thread_local std::vector<nghttp2_nv> nva;
  nva.clear();
  auto add = [](std::string_view name, std::string_view value) {
    nva.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                             reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())),
                             name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
  };
  add(":method", req.method);
  add(":scheme", "https");
  add(":authority", authority_);
  add(":path", req.path);
  for (const auto& [name, value] : req.headers) add(name, value);
  char length[24];
  if (!req.body.empty()) {
    auto end = std::to_chars(length, length + sizeof length, req.body.size()).ptr;
    add("content-length", std::string_view(length, static_cast<std::size_t>(end - length)));
  }
  nghttp2_data_provider provider{};
  provider.read_callback = &SessionCallbacks::readBody;
  // nghttp2 copies the header block here, so nva and `length` may go.
  std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                           req.body.empty() ? nullptr : &provider, &ex);
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
      log::info("http2 stream ids used up, draining", {{"connection", std::to_string(id_)}});
      state_ = State::Draining;
      listener_.onConnectionChanged();
      return OpenResult::NoCapacity;
    }
    ex.response.error = std::string("cannot submit request: ") + nghttp2_strerror(id);
    ex.response.retry_safe = true;
    return OpenResult::Failed;
  }
  ex.connection = this;
  ex.stream_id = id;
  ex.body_offset = 0;
  ex.headers_sent = false;
  ex.response_complete = false;
  streams_.pushBack(&ex);
  ++open_streams_;
  return OpenResult::Opened;
}

void Connection::cancel(Exchange& ex) {
  streams_.remove(&ex);
  ex.connection = nullptr;
  if (session_ == nullptr || state_ == State::Closed) return;
  nghttp2_session_set_stream_user_data(session_, ex.stream_id, nullptr);
  // A request whose HEADERS have not left yet is simply dropped by nghttp2.
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, ex.stream_id, NGHTTP2_CANCEL);
  listener_.onConnectionChanged();
}

void Connection::close(const std::string& reason, CloseKind kind) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  close_reason_ = reason;
  timer_.cancel();
  timer_phase_ = TimerPhase::None;

  std::string conn = std::to_string(id_);
  switch (kind) {
    case CloseKind::Failure:
      if (!was_ready_) {
        log::warn("http2 connect failed",
                  {{"connection", conn}, {"peer", describe()}, {"error", reason}});
      } else {
        log::warn("http2 connection lost", {{"connection", conn},
                                            {"peer", describe()},
                                            {"error", reason},
                                            {"in_flight", std::to_string(streams_.size())}});
      }
      break;
    case CloseKind::Drained:
      log::info("http2 connection closed",
                {{"connection", conn}, {"peer", describe()}, {"reason", reason}});
      break;
    case CloseKind::Shutdown:
      log::debug("http2 connection closed", {{"connection", conn}, {"reason", reason}});
      break;
  }

  std::string exchange_error = kind == CloseKind::Shutdown ? reason : "connection lost: " + reason;
  while (Exchange* ex = streams_.popFront()) {
    if (session_ != nullptr) nghttp2_session_set_stream_user_data(session_, ex->stream_id, nullptr);
    ex->connection = nullptr;
    ex->response.error = exchange_error;
    // A request whose HEADERS never left was certainly not processed.
    ex->response.retry_safe = !ex->headers_sent;
    listener_.onExchangeDone(*ex);
  }

  if (socket_ && socket_->state() == TlsSocket::State::Open) {
    if (session_ != nullptr) {
      // Best effort: tell the server we are gone (GOAWAY NO_ERROR), no waiting.
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      std::string& out = socket_->output();
      for (;;) {
        const std::uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n <= 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
    }
    socket_->close(true);
  } else if (socket_) {
    socket_->close(false);
  }
  listener_.onConnectionChanged();
}

void Connection::onTimer() {
  TimerPhase phase = timer_phase_;
  timer_phase_ = TimerPhase::None;
  switch (phase) {
    case TimerPhase::Connect:
      close("connect timeout (" + std::to_string(options_.connect_timeout) + " ms)" +
                (last_connect_error_.empty() ? "" : ", last error: " + last_connect_error_),
            CloseKind::Failure);
      return;
    case TimerPhase::PingIdle: {
      Millis idle = steadyNowMs() - last_read_ms_;
      if (idle < options_.ping_interval) {
        timer_phase_ = TimerPhase::PingIdle;
        timer_.start(options_.ping_interval - idle);
        return;
      }
      nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
      timer_phase_ = TimerPhase::PingAck;
      timer_.start(options_.connect_timeout);
      listener_.onConnectionChanged();
      return;
    }
    case TimerPhase::PingAck:
      close("no PING ACK within " + std::to_string(options_.connect_timeout) + " ms",
            CloseKind::Failure);
      return;
    case TimerPhase::None:
      return;
  }
}

void Connection::startPingTimer() {
  timer_.cancel();
  timer_phase_ = TimerPhase::None;
  if (options_.ping_interval <= 0) return;
  timer_phase_ = TimerPhase::PingIdle;
  timer_.start(options_.ping_interval);
}

Exchange* Connection::exchangeFor(std::int32_t stream_id) const {
  return static_cast<Exchange*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

int Connection::onBeginHeaders(std::int32_t stream_id) {
  Exchange* ex = exchangeFor(stream_id);
  // A final response after an interim 1xx one replaces it.
  if (ex != nullptr && ex->response.status >= 100 && ex->response.status < 200) {
    ex->response.status = 0;
    ex->response.headers.clear();
  }
  return 0;
}

int Connection::onHeader(std::int32_t stream_id, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen) {
  Exchange* ex = exchangeFor(stream_id);
  if (ex == nullptr) return 0;
  std::string_view n = view(name, namelen);
  if (!n.empty() && n[0] == ':') {
    if (n == ":status") {
      int status = 0;
      std::string_view v = view(value, valuelen);
      std::from_chars(v.data(), v.data() + v.size(), status);
      ex->response.status = status;
    }
    return 0;
  }
  // HTTP/2 header names arrive in lower case (nghttp2 checks it).
  if (ex->response.headers.size() < kMaxResponseHeaders) {
    ex->response.headers.emplace_back(std::string(n), std::string(view(value, valuelen)));
  }
  return 0;
}

int Connection::onDataChunk(std::int32_t stream_id, const std::uint8_t* data, std::size_t len) {
  Exchange* ex = exchangeFor(stream_id);
  if (ex == nullptr || !ex->response.error.empty()) return 0;
  std::string& body = ex->response.body;
  if (body.size() + len > kMaxResponseBody) {
    ex->response.error = "response body larger than " + std::to_string(kMaxResponseBody) + " bytes";
    std::string().swap(body);
    // Not a normal response: resetting it is the right signal.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    return 0;
  }
  body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int Connection::onFrameRecv(std::uint8_t type, std::uint8_t flags, std::int32_t stream_id,
                            std::int32_t goaway_last_stream_id, std::uint32_t goaway_error) {
  switch (type) {
    case NGHTTP2_SETTINGS: {
      if (flags & NGHTTP2_FLAG_ACK) return 0;
      peer_max_streams_ =
          nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
      if (state_ == State::AwaitingSettings) {
        state_ = State::Ready;
        was_ready_ = true;
        last_read_ms_ = steadyNowMs();
        timer_.cancel();
        startPingTimer();
        log::info("http2 connected",
                  {{"connection", std::to_string(id_)},
                   {"peer", describe()},
                   {"max_concurrent_streams", std::to_string(peer_max_streams_)}});
      }
      listener_.onConnectionChanged();
      return 0;
    }
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if (flags & NGHTTP2_FLAG_END_STREAM) {
        if (Exchange* ex = exchangeFor(stream_id)) ex->response_complete = true;
      }
      return 0;
    case NGHTTP2_GOAWAY:
      // nghttp2 closes our streams above last_stream_id with REFUSED_STREAM
      // right after this callback; the ones below it still complete.
      goaway_received_ = true;
      goaway_last_stream_id_ = goaway_last_stream_id;
      log::info("http2 GOAWAY received", {{"connection", std::to_string(id_)},
                                          {"last_stream_id", std::to_string(goaway_last_stream_id)},
                                          {"error_code", nghttp2_http2_strerror(goaway_error)},
                                          {"in_flight", std::to_string(open_streams_)}});
      if (state_ != State::Closed) state_ = State::Draining;
      listener_.onConnectionChanged();
      return 0;
    case NGHTTP2_PING:
      if ((flags & NGHTTP2_FLAG_ACK) && timer_phase_ == TimerPhase::PingAck) startPingTimer();
      return 0;
    default:
      return 0;
  }
}

int Connection::onFrameSend(std::uint8_t type, std::int32_t stream_id) {
  if (type == NGHTTP2_HEADERS) {
    if (Exchange* ex = exchangeFor(stream_id)) ex->headers_sent = true;
  }
  return 0;
}

int Connection::onStreamClose(std::int32_t stream_id, std::uint32_t error_code) {
  if (open_streams_ > 0) --open_streams_;
  listener_.onConnectionChanged();  // a slot is free
  Exchange* ex = exchangeFor(stream_id);
  if (ex == nullptr) return 0;  // cancelled, or handed back by close()
  streams_.remove(ex);
  ex->connection = nullptr;
  Response& r = ex->response;
  if (!r.error.empty()) {
    r.retry_safe = false;  // e.g. body too large: the server did process it
  } else if (ex->response_complete) {
    had_response_ = true;
  } else if (error_code == NGHTTP2_REFUSED_STREAM) {
    // RFC 9113 8.7: refused or beyond GOAWAY's last stream: not processed.
    r.retry_safe = true;
    r.error = goaway_received_ && stream_id > goaway_last_stream_id_
                  ? "not processed: the server sent GOAWAY"
                  : "stream refused by the server (REFUSED_STREAM)";
  } else {
    r.retry_safe = !ex->headers_sent;
    r.error = std::string("stream reset before the response completed (") +
              nghttp2_http2_strerror(error_code) + ")";
  }
  listener_.onExchangeDone(*ex);
  return 0;
}

void Connection::onSessionError(const char* msg, std::size_t len) {
  session_error_.assign(msg, len);
  log::debug("http2 session error",
             {{"connection", std::to_string(id_)}, {"error", session_error_}});
}

long Connection::readBody(std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                          std::uint32_t* data_flags) {
  Exchange* ex = exchangeFor(stream_id);
  if (ex == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  const std::string& body = ex->request.body;
  std::size_t n = std::min(length, body.size() - ex->body_offset);
  std::memcpy(buf, body.data() + ex->body_offset, n);
  ex->body_offset += n;
  if (ex->body_offset == body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<long>(n);
}

}  // namespace sipwake::http2
