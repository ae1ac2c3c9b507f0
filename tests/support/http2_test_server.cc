#include "tests/support/http2_test_server.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>

#include "common/event/event_loop.h"
#include "common/http/tls_server_context.h"
#include "common/http2/tls_socket.h"

namespace sipwake::testing {
namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
constexpr std::size_t kWriteBatch = 64 * 1024;

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof kAlpnH2, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void lowerCase(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
}

nghttp2_nv makeNv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

class ServerConnection;

class Http2TestServer::Impl {
 public:
  Impl(Http2TestServerOptions options, Handler handler);
  ~Impl();

  // Runs fn on the server thread and waits for it.
  template <typename Fn>
  auto onLoop(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    thread_.loop().post([&task] { task(); });
    return result.get();
  }

  void record(Http2ServerRequest&& request);
  void connectionClosed();
  void noteOpenStreams(std::uint32_t open);

  const Http2TestServerOptions options_;
  const Handler handler_;
  std::unique_ptr<http::TlsServerContext> tls_;
  std::uint16_t port_ = 0;

  mutable std::mutex mutex_;
  std::vector<Http2ServerRequest> received_;
  std::atomic<std::size_t> received_count_{0};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> violations_{0};
  std::atomic<std::uint32_t> max_open_{0};
  std::atomic<std::size_t> resets_{0};

  // Server thread only.
  std::map<std::uint32_t, std::unique_ptr<ServerConnection>> connections_;

  LoopThread thread_{"h2-test-server"};

 private:
  static void onAccept(int fd, short what, void* arg);
  static void onReap(int fd, short what, void* arg);
  void start();
  void stop();

  int listen_fd_ = -1;
  event* listen_event_ = nullptr;
  event* reap_event_ = nullptr;
  std::uint32_t next_connection_id_ = 0;
};

// One accepted connection and its nghttp2 server session. Server thread only.
class ServerConnection final : private http2::TlsSocket::Handler {
 public:
  ServerConnection(Http2TestServer::Impl& server, std::uint32_t id, int fd, SSL* ssl)
      : server_(server),
        id_(id),
        limit_(server.options_.max_concurrent_streams),
        socket_(server.thread_.loop(), fd, ssl, *this, false) {}

  ~ServerConnection() {
    // nghttp2_session_del reports no stream closes: free what is still open.
    while (streams_ != nullptr) unlink(streams_);
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  void start() { socket_.start(); }
  bool closed() const { return closed_; }

  // in_callback: called from the handler, inside nghttp2_session_mem_recv,
  // where nghttp2 must not be asked to send; the read's end flushes.
  void goaway(bool in_callback) {
    if (closed_ || session_ == nullptr || goaway_sent_) return;
    goaway_last_stream_id_ = nghttp2_session_get_last_proc_stream_id(session_);
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, goaway_last_stream_id_, NGHTTP2_NO_ERROR,
                          nullptr, 0);
    goaway_sent_ = true;
    if (!in_callback) flush();
  }

  void kick() { flush(); }

  void drop() {
    if (closed_) return;
    socket_.close(false);
    markClosed();
  }

 private:
  struct Stream {
    Http2ServerRequest request;
    Http2ServerResponse response;
    std::size_t body_offset = 0;
    Stream* prev = nullptr;  // this connection's open streams
    Stream* next = nullptr;
  };

  Stream* newStream() {
    auto* s = new Stream();
    s->next = streams_;
    if (streams_ != nullptr) streams_->prev = s;
    streams_ = s;
    return s;
  }

  void unlink(Stream* s) {
    if (s->prev != nullptr) s->prev->next = s->next;
    if (s->next != nullptr) s->next->prev = s->prev;
    if (streams_ == s) streams_ = s->next;
    delete s;
  }

  // TlsSocket::Handler
  void onTlsConnected() override {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(socket_.ssl(), &alpn, &alpn_len);
    if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
      socket_.close(true);
      markClosed();
      return;
    }
    nghttp2_session_server_new(&session_, callbacks(), this);
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limit_},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    flush();
  }

  void onTlsData(const std::uint8_t* data, std::size_t size) override {
    if (session_ == nullptr || closed_) return;
    if (nghttp2_session_mem_recv(session_, data, size) < 0) {
      socket_.close(false);
      markClosed();
    }
  }

  void onTlsReadDone() override { flush(); }
  void onTlsWritable() override { flush(); }
  void onTlsClosed(const std::string&) override { markClosed(); }

  void flush() {
    if (closed_ || session_ == nullptr || socket_.writeBlocked()) return;
    std::string& out = socket_.output();
    for (;;) {
      while (out.size() < kWriteBatch) {
        const std::uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          socket_.close(false);
          markClosed();
          return;
        }
        if (n == 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      if (out.empty()) break;
      if (!socket_.flush()) return;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      socket_.close(true);  // GOAWAY sent and every stream answered
      markClosed();
    }
  }

  void markClosed() {
    if (closed_) return;
    closed_ = true;
    server_.connectionClosed();
  }

  // nghttp2 callbacks
  static ServerConnection& self(void* user) { return *static_cast<ServerConnection*>(user); }

  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    ServerConnection& c = self(user);
    // A HEADERS frame opening a new stream: would it exceed what we announced?
    if (hd->type == NGHTTP2_HEADERS && hd->stream_id > c.last_new_stream_id_ && !c.goaway_sent_) {
      c.last_new_stream_id_ = hd->stream_id;
      if (c.open_ + 1 > c.limit_) ++c.server_.violations_;
    }
    return 0;
  }

  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    ServerConnection& c = self(user);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, c.newStream());
    ++c.open_;
    c.server_.noteOpenStreams(c.open_);
    return 0;
  }

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame,
                      const std::uint8_t* name, std::size_t namelen, const std::uint8_t* value,
                      std::size_t valuelen, std::uint8_t, void*) {
    auto* s =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (s == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":method") {
      s->request.method = std::move(v);
    } else if (n == ":path") {
      s->request.path = std::move(v);
    } else if (n == ":authority") {
      s->request.authority = std::move(v);
    } else if (n.empty() || n[0] != ':') {
      s->request.headers.emplace_back(std::string(n), std::move(v));
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                         const std::uint8_t* data, std::size_t len, void*) {
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s != nullptr) s->request.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_RST_STREAM) ++self(user).server_.resets_;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      return 0;
    }
    auto* s =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (s == nullptr) return 0;
    self(user).dispatch(frame->hd.stream_id, *s);
    return 0;
  }

  static int onStreamClose(nghttp2_session* session, std::int32_t stream_id, std::uint32_t,
                           void* user) {
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s == nullptr) return 0;
    ServerConnection& c = self(user);
    c.unlink(s);
    --c.open_;
    return 0;
  }

  static ssize_t readBody(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                          std::size_t length, std::uint32_t* data_flags, nghttp2_data_source*,
                          void*) {
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const std::string& body = s->response.body;
    std::size_t n = std::min(length, body.size() - s->body_offset);
    std::memcpy(buf, body.data() + s->body_offset, n);
    s->body_offset += n;
    if (s->body_offset == body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  void dispatch(std::int32_t stream_id, Stream& s) {
    // Beyond our GOAWAY's last stream id: not processed (nghttp2 closes it
    // once the GOAWAY is sent, and the client learns it was refused).
    if (goaway_sent_ && stream_id > goaway_last_stream_id_) return;
    s.request.received_at = nowSeconds();
    s.request.connection_id = id_;
    Http2ServerResponse response;
    try {
      if (server_.handler_) response = server_.handler_(s.request);
    } catch (...) {
      response = Http2ServerResponse{500, {}, {}};
    }
    server_.record(std::move(s.request));
    if (response.status <= 0) return;  // held: never answered
    s.response = std::move(response);
    std::string status = std::to_string(s.response.status);
    std::string length = std::to_string(s.response.body.size());
    std::vector<nghttp2_nv> nva;
    nva.reserve(s.response.headers.size() + 2);
    static const std::string kStatus = ":status";
    static const std::string kLength = "content-length";
    nva.push_back(makeNv(kStatus, status));
    for (auto& [name, value] : s.response.headers) {
      lowerCase(name);
      nva.push_back(makeNv(name, value));
    }
    if (!s.response.body.empty()) nva.push_back(makeNv(kLength, length));
    nghttp2_data_provider provider{};
    provider.read_callback = &readBody;
    nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                            s.response.body.empty() ? nullptr : &provider);
    std::uint32_t raised = server_.options_.max_concurrent_streams_after_first_success;
    if (raised != 0 && !raised_ && s.response.status >= 200 && s.response.status < 300) {
      raised_ = true;
      limit_ = raised;
      const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, raised}};
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
    }
  }

  static const nghttp2_session_callbacks* callbacks() {
    struct Holder {
      nghttp2_session_callbacks* cbs = nullptr;
      Holder() {
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &onBeginFrame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &onBeginHeaders);
        nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunk);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
      }
      ~Holder() { nghttp2_session_callbacks_del(cbs); }
    };
    static const Holder holder;
    return holder.cbs;
  }

  Http2TestServer::Impl& server_;
  const std::uint32_t id_;
  std::uint32_t limit_;  // the SETTINGS_MAX_CONCURRENT_STREAMS last announced
  http2::TlsSocket socket_;
  nghttp2_session* session_ = nullptr;
  Stream* streams_ = nullptr;
  std::uint32_t open_ = 0;
  std::int32_t last_new_stream_id_ = 0;
  bool raised_ = false;
  bool goaway_sent_ = false;
  std::int32_t goaway_last_stream_id_ = 0;
  bool closed_ = false;
};

Http2TestServer::Impl::Impl(Http2TestServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  tls_ = std::make_unique<http::TlsServerContext>(options_.cert_file, options_.key_file);
  SSL_CTX_set_alpn_select_cb(tls_->get(), &selectAlpn, nullptr);

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("http2 test server: socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 1024) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error(std::string("http2 test server: cannot listen: ") +
                             std::strerror(errno));
  }
  port_ = ntohs(addr.sin_port);
  onLoop([this] { start(); });
}

Http2TestServer::Impl::~Impl() {
  onLoop([this] { stop(); });
  thread_.stop();
  ::close(listen_fd_);
}

void Http2TestServer::Impl::start() {
  listen_event_ =
      event_new(thread_.loop().base(), listen_fd_, EV_READ | EV_PERSIST, &Impl::onAccept, this);
  event_add(listen_event_, nullptr);
  reap_event_ = event_new(thread_.loop().base(), -1, 0, &Impl::onReap, this);
}

void Http2TestServer::Impl::stop() {
  event_free(listen_event_);
  event_free(reap_event_);
  connections_.clear();  // abortive closes
}

void Http2TestServer::Impl::onAccept(int fd, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  for (;;) {
    int c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    SSL* ssl = SSL_new(self->tls_->get());
    if (ssl == nullptr) {
      ::close(c);
      continue;
    }
    SSL_set_accept_state(ssl);
    std::uint32_t id = ++self->next_connection_id_;
    auto conn = std::make_unique<ServerConnection>(*self, id, c, ssl);
    ServerConnection* raw = conn.get();
    self->connections_.emplace(id, std::move(conn));
    ++self->accepted_;
    raw->start();
  }
}

// Connections report their end from inside their own callbacks; they are
// freed from this event, later in the same loop pass.
void Http2TestServer::Impl::onReap(int, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  std::erase_if(self->connections_, [](const auto& entry) { return entry.second->closed(); });
}

void Http2TestServer::Impl::connectionClosed() {
  event_active(reap_event_, EV_TIMEOUT, 0);
}

void Http2TestServer::Impl::record(Http2ServerRequest&& request) {
  ++received_count_;
  if (!options_.record) return;
  std::lock_guard lock(mutex_);
  received_.push_back(std::move(request));
}

void Http2TestServer::Impl::noteOpenStreams(std::uint32_t open) {
  std::uint32_t seen = max_open_.load(std::memory_order_relaxed);
  while (open > seen && !max_open_.compare_exchange_weak(seen, open)) {
  }
}

Http2TestServer::Http2TestServer(Http2TestServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Http2TestServer::~Http2TestServer() = default;

std::uint16_t Http2TestServer::port() const {
  return impl_->port_;
}

std::vector<Http2ServerRequest> Http2TestServer::received() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->received_;
}

std::size_t Http2TestServer::receivedCount() const {
  return impl_->received_count_.load();
}

void Http2TestServer::clearReceived() {
  std::lock_guard lock(impl_->mutex_);
  impl_->received_.clear();
  impl_->received_count_ = 0;
}

void Http2TestServer::sendGoaway() {
  if (impl_->thread_.loop().inLoopThread()) {
    for (auto& [id, conn] : impl_->connections_) conn->goaway(true);
    // Connections other than the one calling the handler flush on the next turn.
    impl_->thread_.loop().post([impl = impl_.get()] {
      for (auto& [id, conn] : impl->connections_) conn->kick();
    });
    return;
  }
  impl_->onLoop([this] {
    for (auto& [id, conn] : impl_->connections_) conn->goaway(false);
  });
}

void Http2TestServer::dropConnections() {
  impl_->onLoop([this] {
    for (auto& [id, conn] : impl_->connections_) conn->drop();
  });
}

std::size_t Http2TestServer::connectionsAccepted() const {
  return impl_->accepted_.load();
}

std::uint32_t Http2TestServer::maxOpenStreams() const {
  return impl_->max_open_.load();
}

std::size_t Http2TestServer::streamLimitViolations() const {
  return impl_->violations_.load();
}

std::size_t Http2TestServer::streamResetsReceived() const {
  return impl_->resets_.load();
}

}  // namespace sipwake::testing
