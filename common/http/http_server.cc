#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <charconv>
#include <csignal>
#include <stdexcept>

#include "common/event/event_loop.h"
#include "common/http/http_connection.h"
#include "common/http/tls_server_context.h"
#include "common/log/logger.h"

namespace sipwake::http {
namespace {

// Refused connections still get their 503 written; past this many in flight
// (a flood), further ones are closed without an answer.
constexpr std::size_t kMaxRefusing = 64;
// After accept() fails for lack of descriptors, retrying at once would spin.
constexpr Millis kAcceptRetryDelay = 100;

std::string formatAddress(const sockaddr* addr) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    evutil_inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    evutil_inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unknown";
}

// "ip:port" or "[ipv6]:port", numeric only. evutil_parse_sockaddr_port
// refuses port 0, which we need for ephemeral ports.
bool parseListenAddress(const std::string& text, sockaddr_storage& out, socklen_t& len) {
  std::string host;
  std::string_view port_text;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    port_text = std::string_view(text).substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port_text = std::string_view(text).substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return false;
  }
  out = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (!text.starts_with("[") && inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof(sockaddr_in);
    return true;
  }
  if (text.starts_with("[") && inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::uint16_t boundPort(evconnlistener* listener) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

struct HttpServer::Listener {
  HttpServer* server = nullptr;
  const TlsServerContext* tls = nullptr;
  evconnlistener* listener = nullptr;
  std::uint16_t port = 0;
  std::unique_ptr<LoopTimer> resume;  // re-enables accepting after an accept error

  ~Listener() {
    if (listener != nullptr) evconnlistener_free(listener);
  }
};

HttpServer::HttpServer(EventLoop& loop, ServerLimits limits, Handler handler)
    : loop_(loop),
      limits_(limits),
      handler_(std::move(handler)),
      reaper_(std::make_unique<LoopTimer>(loop, [this] { closed_.clear(); })) {
  // A write to a socket the peer reset would otherwise kill the process.
  std::signal(SIGPIPE, SIG_IGN);
}

HttpServer::~HttpServer() {
  listeners_.clear();
  for (auto& [raw, entry] : connections_) entry.connection->abandon();
  connections_.clear();
  closed_.clear();
}

void HttpServer::listen(const std::string& host_port, const TlsServerContext* tls) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!parseListenAddress(host_port, addr, len)) {
    throw std::runtime_error("HTTP: invalid listen address '" + host_port +
                             "' (expected ip:port or [ipv6]:port)");
  }
  auto listener = std::make_unique<Listener>();
  listener->server = this;
  listener->tls = tls;
  listener->listener =
      evconnlistener_new_bind(loop_.base(), &HttpServer::onAcceptCb, listener.get(),
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, -1,
                              reinterpret_cast<sockaddr*>(&addr), static_cast<int>(len));
  if (listener->listener == nullptr) {
    throw std::runtime_error("HTTP: cannot listen on '" + host_port +
                             "': " + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
  }
  evconnlistener_set_error_cb(listener->listener, &HttpServer::onAcceptErrorCb);
  listener->port = boundPort(listener->listener);
  Listener* raw = listener.get();
  listener->resume =
      std::make_unique<LoopTimer>(loop_, [raw] { evconnlistener_enable(raw->listener); });
  log::info("http listening", {{"address", host_port},
                               {"port", std::to_string(listener->port)},
                               {"tls", tls != nullptr ? "true" : "false"}});
  listeners_.push_back(std::move(listener));
}

std::uint16_t HttpServer::port(std::size_t listener_index) const {
  if (listener_index >= listeners_.size())
    throw std::out_of_range("HTTP: no listener #" + std::to_string(listener_index));
  return listeners_[listener_index]->port;
}

void HttpServer::onAcceptCb(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  listener->server->accept(*listener, fd, addr);
}

void HttpServer::onAcceptErrorCb(evconnlistener*, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  log::warn("http accept failed",
            {{"error", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())}});
  evconnlistener_disable(listener->listener);
  listener->resume->start(kAcceptRetryDelay);
}

void HttpServer::accept(const Listener& listener, int fd, const sockaddr* addr) noexcept {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool refuse = served_ >= limits_.max_connections;
  if (refuse && connections_.size() - served_ >= kMaxRefusing) {
    evutil_closesocket(fd);
    return;
  }
  bufferevent* bev = nullptr;
  if (listener.tls != nullptr) {
    // On failure libevent frees the SSL (BEV_OPT_CLOSE_ON_FREE) but not the socket.
    if (SSL* ssl = SSL_new(listener.tls->get())) {
      bev = bufferevent_openssl_socket_new(loop_.base(), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                           BEV_OPT_CLOSE_ON_FREE);
    }
  } else {
    bev = bufferevent_socket_new(loop_.base(), fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (bev == nullptr) {
    log::warn("http connection setup failed", {{"remote", formatAddress(addr)}});
    evutil_closesocket(fd);
    return;
  }
  HttpConnection::Context context{loop_, limits_, handler_, [this](HttpConnection& connection) {
                                    onConnectionClosed(connection);
                                  }};
  auto connection = std::make_shared<HttpConnection>(std::move(context), bev, formatAddress(addr),
                                                     listener.tls != nullptr);
  connections_.emplace(connection.get(), Entry{connection, !refuse});
  if (refuse) {
    log::debug("http connection refused: limit reached", {{"remote", formatAddress(addr)}});
    connection->refuse(jsonError(503, "too_many_connections", "too many connections, retry later"));
    return;
  }
  ++served_;
  connection->start();
}

void HttpServer::onConnectionClosed(HttpConnection& connection) {
  auto it = connections_.find(&connection);
  if (it == connections_.end()) return;
  if (it->second.served) --served_;
  closed_.push_back(std::move(it->second.connection));
  connections_.erase(it);
  reaper_->start(0);
}

}  // namespace sipwake::http
