// An HTTP/2-over-TLS server for tests and benchmarks (nghttp2's server API,
// libevent, OpenSSL) on its own thread, listening on 127.0.0.1:0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sipwake::testing {

struct Http2ServerRequest {
  std::string method, path, authority;
  std::vector<std::pair<std::string, std::string>> headers;  // regular headers, as received
  std::string body;
  double received_at = 0;           // seconds since the epoch, when the request was complete
  std::uint32_t connection_id = 0;  // 1, 2, ... in accept order
};

struct Http2ServerResponse {
  // status <= 0: the request is never answered; its stream stays open until
  // the client resets it or the connection ends (tests of timeouts and of
  // in-flight requests on a lost connection).
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // names are lower-cased
  std::string body;
};

struct Http2TestServerOptions {
  std::string cert_file, key_file;             // PEM
  std::uint32_t max_concurrent_streams = 100;  // announced at connection start
  // 0: never changes; else a new SETTINGS after the first 2xx response on a
  // connection (APNs behaviour).
  std::uint32_t max_concurrent_streams_after_first_success = 0;
  bool record = true;  // keep every request for received()
};

// Only the constructor, the destructor and the methods below may be called
// from other threads; the handler runs on the server's thread.
class Http2TestServer {
 public:
  using Handler = std::function<Http2ServerResponse(const Http2ServerRequest&)>;

  // Binds 127.0.0.1:0 and starts the thread. Throws std::runtime_error when
  // the certificate or key cannot be loaded or the socket cannot be bound.
  Http2TestServer(Http2TestServerOptions options, Handler handler);
  ~Http2TestServer();
  Http2TestServer(const Http2TestServer&) = delete;
  Http2TestServer& operator=(const Http2TestServer&) = delete;

  std::uint16_t port() const;
  // Thread-safe copy of the requests recorded so far (empty with record=false).
  std::vector<Http2ServerRequest> received() const;
  // Complete requests seen (counted with record=false too).
  std::size_t receivedCount() const;
  void clearReceived();
  // GOAWAY (NO_ERROR, last stream id = the last one processed) to every open
  // connection; each closes once its remaining streams are answered, and
  // streams above that id are not processed (the client sees them refused).
  // From another thread it returns once the frames are handed over; it may
  // also be called from the handler, where it acts at once (mid-batch).
  void sendGoaway();
  // Closes every connection abruptly (TCP RST, no GOAWAY); returns when done.
  void dropConnections();
  std::size_t connectionsAccepted() const;

  // Flow-control checks. The most streams ever open at once on one
  // connection, and how many new streams arrived while their connection
  // already had as many open as it had announced (a client bug).
  std::uint32_t maxOpenStreams() const;
  std::size_t streamLimitViolations() const;
  // RST_STREAM frames received from clients.
  std::size_t streamResetsReceived() const;

 private:
  class Impl;
  friend class ServerConnection;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sipwake::testing
