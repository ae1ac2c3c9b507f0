#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/event/event_loop.h"
#include "common/http2/host_resolver.h"
#include "common/http2/http2_client_options.h"
#include "common/http2/http2_exchange.h"
#include "common/http2/tls_socket.h"

struct nghttp2_session;

namespace sipwake::http2 {

class TlsClientContext;

// One TLS connection to the origin and its nghttp2 client session. It opens
// the streams its Client asks for, collects their responses and reports each
// exchange back exactly once. It does not queue: the Client only calls
// open() while canOpenStream() says the server's
// SETTINGS_MAX_CONCURRENT_STREAMS leaves room.
//
// Nothing here acts on its own behalf beyond the connection: it reports to
// its Listener, which records and acts later (from its own event), so
// callbacks never re-enter nghttp2 or destroy a connection under its feet.
// Output is produced only by flush(): the Client calls it once per loop
// turn, after it has opened every stream it could, so one turn's frames
// leave in one write.
//
// Runs on the thread of the EventLoop it is given.
class Connection final : private TlsSocket::Handler {
 public:
  // Resolving, Connecting (TCP + TLS), AwaitingSettings (preface sent, no
  // streams until the server's SETTINGS says how many), Ready, Draining (GOAWAY
  // received or stream ids used up: no new streams, the open ones finish),
  // Closed.
  enum class State { Resolving, Connecting, AwaitingSettings, Ready, Draining, Closed };

  class Listener {
   public:
    // ex left this connection with its response (or error) filled in; the
    // listener owns it again. May be called from inside nghttp2: record only.
    virtual void onExchangeDone(Exchange& ex) = 0;
    // State, stream capacity or pending output changed: act on the next turn.
    virtual void onConnectionChanged() = 0;

   protected:
    ~Listener() = default;
  };

  Connection(EventLoop& loop, const ClientOptions& options, const std::string& authority,
             const TlsClientContext& tls, Listener& listener, std::uint64_t id);
  // Closes without reporting: call close() first to hand exchanges back.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();

  State state() const { return state_; }
  std::uint64_t id() const { return id_; }
  // Why it closed ("" while open).
  const std::string& closeReason() const { return close_reason_; }
  // Reached Ready at least once.
  bool wasReady() const { return was_ready_; }
  // Completed at least one response: the server works with us.
  bool hadResponse() const { return had_response_; }
  // Streams submitted and not yet closed (as nghttp2 sees them).
  std::size_t openStreams() const { return open_streams_; }
  // The server's SETTINGS_MAX_CONCURRENT_STREAMS (0 before its SETTINGS;
  // 0xffffffff when it announced no limit).
  std::uint32_t peerMaxConcurrentStreams() const { return peer_max_streams_; }
  bool canOpenStream() const { return state_ == State::Ready && open_streams_ < peer_max_streams_; }

  // Submits ex on a new stream (the caller checked canOpenStream()).
  // NoCapacity: stream ids are used up, the connection starts draining and
  // ex is untouched. Failed: nghttp2 refused this request; ex.response.error
  // says why.
  enum class OpenResult { Opened, NoCapacity, Failed };
  OpenResult open(Exchange& ex);
  // Takes ex back (request timeout): the stream is reset with CANCEL unless it
  // already ended; ex is not reported through onExchangeDone.
  void cancel(Exchange& ex);
  // Serialises pending frames and writes them; no-op while a write is blocked.
  void flush();
  // Ends the connection: exchanges still on it are reported with `reason`
  // (retry_safe when their HEADERS never left); a GOAWAY and close_notify go
  // out on a best-effort basis.
  enum class CloseKind { Failure, Drained, Shutdown };
  void close(const std::string& reason, CloseKind kind);

 private:
  enum class TimerPhase { None, Connect, PingIdle, PingAck };

  // TlsSocket::Handler
  void onTlsConnected() override;
  void onTlsData(const std::uint8_t* data, std::size_t size) override;
  void onTlsReadDone() override;
  void onTlsWritable() override;
  void onTlsClosed(const std::string& reason) override;

  void onResolved(std::vector<ResolvedAddress> addresses, std::string error);
  void connectNext();
  void onTimer();
  void startPingTimer();
  void finishIfDrained();
  std::string describe() const;

  // nghttp2 callbacks, entered through C trampolines in the .cc.
  friend struct SessionCallbacks;
  int onBeginHeaders(std::int32_t stream_id);
  int onHeader(std::int32_t stream_id, const std::uint8_t* name, std::size_t namelen,
               const std::uint8_t* value, std::size_t valuelen);
  int onDataChunk(std::int32_t stream_id, const std::uint8_t* data, std::size_t len);
  int onFrameRecv(std::uint8_t type, std::uint8_t flags, std::int32_t stream_id,
                  std::int32_t goaway_last_stream_id, std::uint32_t goaway_error);
  int onFrameSend(std::uint8_t type, std::int32_t stream_id);
  int onStreamClose(std::int32_t stream_id, std::uint32_t error_code);
  void onSessionError(const char* msg, std::size_t len);
  long readBody(std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                std::uint32_t* data_flags);
  Exchange* exchangeFor(std::int32_t stream_id) const;

  EventLoop& loop_;
  const ClientOptions& options_;
  const std::string& authority_;
  const TlsClientContext& tls_;
  Listener& listener_;
  std::uint64_t id_;
  State state_ = State::Resolving;
  std::string close_reason_;
  bool was_ready_ = false;
  bool had_response_ = false;
  bool goaway_received_ = false;
  std::int32_t goaway_last_stream_id_ = 0;

  HostResolver resolver_;
  std::vector<ResolvedAddress> addresses_;
  std::size_t next_address_ = 0;
  std::string last_connect_error_;
  std::unique_ptr<TlsSocket> socket_;
  // A socket that failed to connect, kept until the next one replaces it:
  // it reported the failure from inside its own callback.
  std::unique_ptr<TlsSocket> failed_socket_;
  nghttp2_session* session_ = nullptr;
  std::string session_error_;  // nghttp2's last complaint about the peer

  PlaceList streams_;  // exchanges on this connection
  std::size_t open_streams_ = 0;
  std::uint32_t peer_max_streams_ = 0;

  LoopTimer timer_;
  TimerPhase timer_phase_ = TimerPhase::None;
  Millis last_read_ms_ = 0;  // steady clock
};

// Steady-clock milliseconds, for deadlines that must not jump with wall time.
Millis steadyNowMs();

}  // namespace sipwake::http2
