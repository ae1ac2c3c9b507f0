#include "common/http2/tls_socket.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>

#include "common/event/event_loop.h"

namespace sipwake::http2 {
namespace {

// Bytes decrypted per readable event before yielding to other events (and to
// our own writes); the rest is read on the next loop pass.
constexpr std::size_t kMaxReadPerEvent = 256 * 1024;

}  // namespace

std::string takeOpensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(code));
  }
  return out;
}

TlsSocket::TlsSocket(EventLoop& loop, int fd, SSL* ssl, Handler& handler, bool connecting)
    : loop_(loop),
      fd_(fd),
      ssl_(ssl),
      handler_(handler),
      state_(connecting ? State::Connecting : State::Handshaking),
      tcp_connected_(!connecting) {
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL_set_fd(ssl_, fd_);
  // Partial writes: SSL_write reports each completed record, so a blocked
  // socket keeps what was written. Moving buffer: out_ may grow (reallocate)
  // between a blocked SSL_write and its retry.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // HTTP/2 frames its own end (GOAWAY, END_STREAM): a peer that closes TCP
  // without close_notify is an EOF, not an attack.
  SSL_set_options(ssl_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  read_event_ = event_new(loop_.base(), fd_, EV_READ | EV_PERSIST, &TlsSocket::onEvent, this);
  write_event_ = event_new(loop_.base(), fd_, EV_WRITE, &TlsSocket::onEvent, this);
}

TlsSocket::~TlsSocket() {
  release(true);
  event_free(read_event_);
  event_free(write_event_);
  SSL_free(ssl_);
}

void TlsSocket::start() {
  if (state_ == State::Connecting) {
    event_add(write_event_, nullptr);
    write_event_added_ = true;
    return;
  }
  event_add(read_event_, nullptr);
  handshake();
}

void TlsSocket::onEvent(int, short what, void* arg) {
  auto* self = static_cast<TlsSocket*>(arg);
  if (what & EV_WRITE) {
    self->write_event_added_ = false;
    self->handleWrite();
  }
  if ((what & EV_READ) && self->state_ != State::Closed) self->handleRead();
}

void TlsSocket::handleRead() {
  switch (state_) {
    case State::Handshaking:
      handshake();
      return;
    case State::Open:
      if (write_wants_read_) {
        write_wants_read_ = false;
        writeAgain();
        if (state_ != State::Open) return;
      }
      readAvailable();
      return;
    case State::Connecting:
    case State::Closed:
      return;
  }
}

void TlsSocket::handleWrite() {
  switch (state_) {
    case State::Connecting:
      finishConnect();
      return;
    case State::Handshaking:
      handshake();
      return;
    case State::Open:
      if (read_wants_write_) {
        read_wants_write_ = false;
        readAvailable();
        if (state_ != State::Open) return;
      }
      if (write_blocked_) writeAgain();
      return;
    case State::Closed:
      return;
  }
}

void TlsSocket::finishConnect() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    fail(std::string("TCP connect: ") + std::strerror(err));
    return;
  }
  state_ = State::Handshaking;
  tcp_connected_ = true;
  event_add(read_event_, nullptr);
  handshake();
}

void TlsSocket::handshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  int sys_errno = errno;
  if (rc == 1) {
    state_ = State::Open;
    handler_.onTlsConnected();
    // Application data may have arrived with the last handshake records.
    if (state_ == State::Open) readAvailable();
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) return;  // the read event is armed
  if (err == SSL_ERROR_WANT_WRITE) {
    if (!write_event_added_) {
      event_add(write_event_, nullptr);
      write_event_added_ = true;
    }
    return;
  }
  fail("TLS handshake: " + describe(err, sys_errno));
}

void TlsSocket::readAvailable() {
  std::size_t total = 0;
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl_, in_.data(), static_cast<int>(in_.size()));
    int sys_errno = errno;
    if (n > 0) {
      handler_.onTlsData(in_.data(), static_cast<std::size_t>(n));
      if (state_ != State::Open) return;
      total += static_cast<std::size_t>(n);
      if (total >= kMaxReadPerEvent) {
        // Come back on the next loop pass: the kernel or SSL may hold more.
        event_active(read_event_, EV_READ, 0);
        break;
      }
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_WANT_WRITE) {
      read_wants_write_ = true;
      if (!write_event_added_) {
        event_add(write_event_, nullptr);
        write_event_added_ = true;
      }
      break;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      handler_.onTlsReadDone();
      if (state_ == State::Open) fail("connection closed by peer");
      return;
    }
    handler_.onTlsReadDone();
    if (state_ == State::Open) fail(describe(err, sys_errno));
    return;
  }
  handler_.onTlsReadDone();
}

bool TlsSocket::flush() {
  if (state_ != State::Open || write_blocked_) return false;
  while (out_offset_ < out_.size()) {
    std::size_t left = out_.size() - out_offset_;
    ERR_clear_error();
    int n = SSL_write(ssl_, out_.data() + out_offset_,
                      static_cast<int>(left > INT_MAX ? INT_MAX : left));
    int sys_errno = errno;
    if (n > 0) {
      out_offset_ += static_cast<std::size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_WRITE) {
      write_blocked_ = true;
      if (!write_event_added_) {
        event_add(write_event_, nullptr);
        write_event_added_ = true;
      }
      return false;
    }
    if (err == SSL_ERROR_WANT_READ) {
      write_blocked_ = true;
      write_wants_read_ = true;
      return false;
    }
    fail(describe(err, sys_errno));
    return false;
  }
  out_.clear();
  out_offset_ = 0;
  return true;
}

void TlsSocket::writeAgain() {
  write_blocked_ = false;
  if (flush()) handler_.onTlsWritable();
}

void TlsSocket::close(bool graceful) {
  if (state_ == State::Closed) return;
  if (graceful && state_ == State::Open) {
    // Best effort: whatever the socket takes now, then close_notify. Errors
    // are irrelevant, the connection is going away.
    if (!write_blocked_ && out_offset_ < out_.size()) {
      ERR_clear_error();
      SSL_write(ssl_, out_.data() + out_offset_, static_cast<int>(out_.size() - out_offset_));
    }
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  release(!graceful);
}

void TlsSocket::fail(const std::string& reason) {
  if (state_ == State::Closed) return;
  ERR_clear_error();
  release(false);
  handler_.onTlsClosed(reason);
}

void TlsSocket::release(bool abortive) {
  state_ = State::Closed;
  if (fd_ < 0) return;
  event_del(read_event_);
  event_del(write_event_);
  write_event_added_ = false;
  if (abortive) {
    linger lg{1, 0};  // close() sends RST instead of FIN
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  ::close(fd_);
  fd_ = -1;
}

std::string TlsSocket::describe(int ssl_error, int sys_errno) const {
  if (ssl_error == SSL_ERROR_SSL) {
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    }
    std::string reasons = takeOpensslErrors();
    return reasons.empty() ? "TLS error" : reasons;
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    std::string reasons = takeOpensslErrors();
    if (!reasons.empty()) return reasons;
    return sys_errno != 0 ? std::strerror(sys_errno) : "connection closed by peer";
  }
  return "TLS error " + std::to_string(ssl_error);
}

}  // namespace sipwake::http2
