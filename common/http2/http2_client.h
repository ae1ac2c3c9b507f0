#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/event/event_loop.h"
#include "common/http2/http2_client_options.h"
#include "common/http2/http2_connection.h"
#include "common/http2/http2_exchange.h"
#include "common/http2/http2_message.h"

struct event;

namespace sipwake::http2 {

class TlsClientContext;

// Response::error values the caller may act on; other errors describe a
// connection or stream failure in words (with retry_safe saying whether the
// server can have processed the request).
inline constexpr std::string_view kErrorTimeout = "timeout";
inline constexpr std::string_view kErrorQueueFull = "queue full";
inline constexpr std::string_view kErrorClientClosed = "client closed";

// An HTTP/2 client for one origin (APNs, FCM) on nghttp2's session API.
//
// One TLS connection (ALPN h2, certificate always verified) carries the
// requests; it never has more streams open than the server's
// SETTINGS_MAX_CONCURRENT_STREAMS, and the rest wait in a FIFO queue that
// drains as streams end or the limit rises. A connection is opened when a
// request is waiting and none is usable, and then kept (PING when idle).
//
// Failures, all reported through the request's callback:
// - REFUSED_STREAM, or beyond a GOAWAY's last stream id: retry_safe = true.
// - GOAWAY: the connection finishes its streams below the last id while a
//   new one takes the queue.
// - connection lost: requests on it fail (retry_safe only if their HEADERS
//   never left); queued ones wait for the reconnection (back-off 100 ms,
//   doubling to 5 s, back to 100 ms once a connection answers).
// - a connection attempt fails (DNS, TCP, TLS, no h2): the requests queued
//   at that moment fail with "connect failed: ..." (retry_safe).
// - request_timeout: "timeout"; a stream is reset with CANCEL.
// A response with error set may still carry the status and headers received
// (e.g. a body over 64 KiB); callers check error first.
//
// Runs on the EventLoop given at construction: construct, call and destroy it
// there. Callbacks run on the loop thread, never inside submit().
class Client final : private Connection::Listener {
 public:
  // Throws std::runtime_error for an unusable configuration (empty host,
  // unreadable CA file). Does not connect yet: the first submit() does.
  Client(EventLoop& loop, ClientOptions options);
  // Fails every outstanding request with "client closed" (retry_safe when it
  // was never sent) and runs those callbacks synchronously, inside the
  // destructor: they must not use the Client. Responses already received but
  // not yet delivered are delivered as they are.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Header names are lower-cased; connection-specific headers and an invalid
  // name or value fail the request ("invalid request: ..."). content-length
  // is set from the body. Beyond max_queued waiting requests: "queue full".
  void submit(Request request, ResponseCallback callback);

  // Waiting for a stream slot.
  std::size_t queued() const { return queue_.size(); }
  // Streams open, on every connection (including ones draining after GOAWAY).
  std::size_t inFlight() const;
  // As the server last announced it (0 before any SETTINGS).
  std::uint32_t peerMaxConcurrentStreams() const;
  // A connection is ready for requests.
  bool connected() const;

 private:
  // Connection::Listener
  void onExchangeDone(Exchange& ex) override;
  void onConnectionChanged() override;

  static void onWorkEvent(int fd, short what, void* arg);
  void scheduleWork();
  void doWork();
  bool deliverCompleted(const std::weak_ptr<bool>& alive);
  void manageConnections();
  void retire(std::unique_ptr<Connection> connection);
  void pump();
  void flushConnections();
  void onTimeoutTimer();
  void complete(Exchange* ex);
  void reject(Exchange* ex, std::string error, bool retry_safe);
  void failQueued(const std::string& error);
  void scheduleReconnect(bool reset_backoff);
  Exchange* acquire();
  void release(Exchange* ex);

  EventLoop& loop_;
  const ClientOptions options_;
  const std::string authority_;
  std::unique_ptr<TlsClientContext> tls_;

  std::unique_ptr<Connection> active_;                 // takes new streams
  std::vector<std::unique_ptr<Connection>> draining_;  // after GOAWAY: finishing streams
  std::uint64_t connection_ids_ = 0;
  std::uint32_t last_peer_max_streams_ = 0;
  Millis backoff_;

  PlaceList queue_;                              // waiting for a stream, in submission order
  PlaceList completed_;                          // waiting for their callback
  DeadlineList deadlines_;                       // every queued or in-flight exchange, oldest first
  std::vector<std::unique_ptr<Exchange>> pool_;  // recycled exchanges

  LoopTimer timeout_timer_;
  LoopTimer reconnect_timer_;  // pending: no new connection yet (back-off)
  event* work_event_ = nullptr;
  bool work_pending_ = false;  // work_event_ is active
  bool in_work_ = false;
  bool dirty_ = false;           // something to do since the work loop last looked
  bool closing_ = false;         // in the destructor
  std::shared_ptr<bool> alive_;  // expires when the Client is destroyed
};

}  // namespace sipwake::http2
