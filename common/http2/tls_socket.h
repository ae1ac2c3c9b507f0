#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

struct event;
typedef struct ssl_st SSL;

namespace sipwake {
class EventLoop;
}

namespace sipwake::http2 {

// A non-blocking TLS connection over a TCP socket, driven by two libevent
// events (read, and write only while something waits for the socket).
//
// Raw socket + SSL rather than bufferevent_openssl: nghttp2 reads and writes
// memory (mem_recv / mem_send), so the owner serialises frames into one flat
// output string that goes to SSL_write in large batches (a TLS record per
// 16 KiB, one syscall per batch), and SSL_read decrypts into a fixed buffer
// that is handed straight to nghttp2. bufferevent would add an evbuffer copy
// each way and a callback per chunk, and hide when a write batch ends.
//
// Sets TCP_NODELAY: HTTP/2 writes many small frames, and Nagle's algorithm
// delaying them collapses throughput (~137k to ~2.5k requests/s measured).
//
// Ignores SIGPIPE process-wide (once, at the first construction): SSL_write
// uses write(2), and a peer that went away must be an error, not a signal.
//
// Runs on the thread of the EventLoop it is given.
class TlsSocket {
 public:
  // Callbacks into the owner. The owner must not destroy the TlsSocket from
  // inside one of them; it may call close().
  class Handler {
   public:
    // TCP connected and TLS handshake done.
    virtual void onTlsConnected() = 0;
    // Decrypted bytes; called repeatedly while the socket has data.
    virtual void onTlsData(const std::uint8_t* data, std::size_t size) = 0;
    // Ends the onTlsData calls of one readable event: a good time to reply.
    virtual void onTlsReadDone() = 0;
    // A write that had blocked completed: output() is empty again.
    virtual void onTlsWritable() = 0;
    // The connection ended (peer EOF, socket or TLS error, failed connect or
    // handshake). Called at most once, and never after close().
    virtual void onTlsClosed(const std::string& reason) = 0;

   protected:
    ~Handler() = default;
  };

  enum class State { Connecting, Handshaking, Open, Closed };

  // Takes ownership of fd (non-blocking) and ssl (connect or accept state
  // already chosen). connecting: fd has a connect() in progress.
  TlsSocket(EventLoop& loop, int fd, SSL* ssl, Handler& handler, bool connecting);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  // Starts waiting for the TCP connection, then runs the handshake.
  void start();
  State state() const { return state_; }
  // The TCP connection was established (a failure after it is a TLS or
  // connection failure, not an unreachable address).
  bool tcpConnected() const { return tcp_connected_; }
  SSL* ssl() const { return ssl_; }

  // Bytes waiting to be written: append, then flush().
  std::string& output() { return out_; }
  std::size_t pendingOutput() const { return out_.size() - out_offset_; }
  // A write could not complete; onTlsWritable() follows when it does.
  bool writeBlocked() const { return write_blocked_; }
  // Writes as much of output() as the socket takes. True when all of it is
  // written; false when blocked or closed (onTlsClosed has then been called).
  bool flush();

  // Ends the connection without calling back. graceful: a best-effort
  // (non-blocking) write of pending output and a TLS close_notify;
  // otherwise an abortive close (TCP RST).
  void close(bool graceful);

 private:
  static void onEvent(int fd, short what, void* arg);
  void handleRead();
  void handleWrite();
  void finishConnect();
  void handshake();
  void readAvailable();
  void writeAgain();
  void fail(const std::string& reason);
  void release(bool abortive);
  std::string describe(int ssl_error, int sys_errno) const;

  EventLoop& loop_;
  int fd_;
  SSL* ssl_;
  Handler& handler_;
  event* read_event_ = nullptr;
  event* write_event_ = nullptr;
  State state_;
  bool tcp_connected_;
  bool write_event_added_ = false;
  bool write_blocked_ = false;
  bool write_wants_read_ = false;  // SSL_write needs a read first (TLS 1.3 key update)
  bool read_wants_write_ = false;  // SSL_read needs a write first
  std::string out_;
  std::size_t out_offset_ = 0;
  std::array<std::uint8_t, 16384> in_{};  // one TLS record
};

// OpenSSL's error queue, drained into "reason; reason" (never key material).
std::string takeOpensslErrors();

}  // namespace sipwake::http2
