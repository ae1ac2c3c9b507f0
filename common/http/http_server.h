#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/event/clock.h"
#include "common/http/http_message.h"

struct evconnlistener;
struct sockaddr;

namespace sipwake {
class EventLoop;
class LoopTimer;
}  // namespace sipwake

namespace sipwake::http {

class HttpConnection;
class TlsServerContext;

struct ServerLimits {
  std::size_t max_header_bytes = 16384;
  std::size_t max_body_bytes = 65536;
  std::size_t max_connections = 1024;
  Millis header_timeout = 10000;  // the whole request (headers and body) must arrive within this
  Millis idle_timeout = 60000;    // an idle keep-alive connection, or a stalled response write
};

// Answers one request. Call it exactly once, on the server's loop thread;
// further calls are ignored. Calling it after the connection (or the server)
// is gone is a no-op. Until it is called the connection waits (no timeout),
// so a handler must always answer eventually.
using Responder = std::function<void(Response)>;
// Gets each request; may keep the Responder and answer later.
using Handler = std::function<void(Request&&, Responder)>;

// A small HTTP/1.1 server on libevent. Every error it produces itself is a
// JSON body (jsonError), which is why we do not use evhttp.
// Runs on the loop thread of the EventLoop it is given: construct, listen,
// query and destroy it there.
class HttpServer {
 public:
  // Ignores SIGPIPE process-wide: libevent writes with write(2)/SSL_write.
  HttpServer(EventLoop& loop, ServerLimits limits, Handler handler);
  // Closes listeners and connections; outstanding Responders become no-ops.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // host_port is a numeric address: "127.0.0.1:8080", "[::1]:0", "0.0.0.0:0";
  // port 0 picks an ephemeral port. tls == nullptr serves plain HTTP; a
  // context must outlive the server. Throws std::runtime_error. May be
  // called several times for several listeners.
  void listen(const std::string& host_port, const TlsServerContext* tls);
  // The bound port of the listener_index-th successful listen(); throws
  // std::out_of_range for an index never listened on.
  std::uint16_t port(std::size_t listener_index = 0) const;
  // Open connections counted against max_connections (refused ones excluded).
  std::size_t connectionCount() const { return served_; }

 private:
  struct Listener;

  static void onAcceptCb(evconnlistener* listener, int fd, sockaddr* addr, int len, void* arg);
  static void onAcceptErrorCb(evconnlistener* listener, void* arg);
  void accept(const Listener& listener, int fd, const sockaddr* addr) noexcept;
  void onConnectionClosed(HttpConnection& connection);

  EventLoop& loop_;
  ServerLimits limits_;
  Handler handler_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  struct Entry {
    std::shared_ptr<HttpConnection> connection;
    bool served;  // false: being refused (503), not counted against the limit
  };
  std::unordered_map<HttpConnection*, Entry> connections_;
  // Closed connections are destroyed from a fresh loop callback, never from
  // inside one of their own callbacks.
  std::vector<std::shared_ptr<HttpConnection>> closed_;
  std::unique_ptr<LoopTimer> reaper_;
  std::size_t served_ = 0;
};

}  // namespace sipwake::http
