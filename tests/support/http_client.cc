#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "tests/support/process.h"

namespace sipwake::testing {
namespace {

std::string lowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  return out;
}

std::string sslReasons() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : "unknown";
  }
  return out.empty() ? "no OpenSSL reason" : out;
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool hasHeader(const std::vector<std::pair<std::string, std::string>>& headers,
               std::string_view lower) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return lowerCase(h.first) == lower; });
}

int connectWithTimeout(const std::string& host, std::uint16_t port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error("HttpClient: cannot resolve " + host + ": " + gai_strerror(rc));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int soerr = ETIMEDOUT;
      socklen_t len = sizeof soerr;
      if (poll(&p, 1, timeout_ms) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      rc = soerr == 0 ? 0 : -1;
      errno = soerr;
    }
    if (rc != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0)
    throw std::runtime_error("HttpClient: cannot connect to " + host + ":" + std::to_string(port) +
                             ": " + error);
  // Blocking from here on, with per-operation timeouts.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

std::string HttpReply::header(std::string_view lower) const {
  for (const auto& [name, value] : headers) {
    if (name == lower) return value;
  }
  return "";
}

// One TCP (and maybe TLS) connection, plus bytes read past the last reply.
class HttpClient::Connection {
 public:
  enum class ReadStatus { Data, Eof, Failed };

  Connection(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    ::close(fd_);
  }

  bool writeAll(std::string_view bytes) {
    while (!bytes.empty()) {
      long n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                               : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (ssl_ == nullptr && errno == EINTR) continue;
        ERR_clear_error();
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Appends what arrives to buffer. Failed covers timeouts and resets.
  ReadStatus readMore() {
    char chunk[16384];
    long n = 0;
    if (ssl_ != nullptr) {
      n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n <= 0) {
        int err = SSL_get_error(ssl_, static_cast<int>(n));
        ERR_clear_error();
        return err == SSL_ERROR_ZERO_RETURN ? ReadStatus::Eof : ReadStatus::Failed;
      }
    } else {
      do n = ::recv(fd_, chunk, sizeof chunk, 0);
      while (n < 0 && errno == EINTR);
      if (n == 0) return ReadStatus::Eof;
      if (n < 0) return ReadStatus::Failed;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
    return ReadStatus::Data;
  }

  // An idle keep-alive connection that turned readable was closed (or
  // written to) by the server; it is not worth reusing.
  bool readableWhileIdle() const {
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return true;
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }

  std::string buffer;

 private:
  int fd_;
  SSL* ssl_;
};

HttpClient::HttpClient(std::string host, std::uint16_t port, HttpClientOptions opts)
    : host_(std::move(host)), port_(port), opts_(std::move(opts)) {
  // SSL_write uses write(2): a server reset would raise SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  if (!opts_.tls) return;
  ssl_ctx_ = SSL_CTX_new(TLS_client_method());
  if (ssl_ctx_ == nullptr) throw std::runtime_error("HttpClient: SSL_CTX_new: " + sslReasons());
  SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
  // sendRaw reads until close; a close without close_notify is still the end.
  SSL_CTX_set_options(ssl_ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (opts_.ca_file.empty()) {
    SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_NONE, nullptr);
    return;
  }
  if (SSL_CTX_load_verify_locations(ssl_ctx_, opts_.ca_file.c_str(), nullptr) != 1) {
    std::string reasons = sslReasons();
    SSL_CTX_free(ssl_ctx_);
    throw std::runtime_error("HttpClient: cannot load CA file " + opts_.ca_file + ": " + reasons);
  }
  SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_PEER, nullptr);
}

HttpClient::~HttpClient() {
  connection_.reset();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

void HttpClient::disconnect() {
  connection_.reset();
}

std::unique_ptr<HttpClient::Connection> HttpClient::connect() {
  int fd = connectWithTimeout(host_, port_, opts_.timeout_ms);
  if (!opts_.tls) return std::make_unique<Connection>(fd, nullptr);
  SSL* ssl = SSL_new(ssl_ctx_);
  if (ssl == nullptr) {
    ::close(fd);
    throw std::runtime_error("HttpClient: SSL_new: " + sslReasons());
  }
  auto connection = std::make_unique<Connection>(fd, ssl);
  SSL_set_fd(ssl, fd);
  if (isIpLiteral(host_)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host_.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host_.c_str());
    SSL_set1_host(ssl, host_.c_str());
  }
  ERR_clear_error();
  if (SSL_connect(ssl) != 1) {
    std::string reasons = sslReasons();
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
      reasons += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    throw std::runtime_error("HttpClient: TLS handshake with " + host_ + " failed: " + reasons);
  }
  return connection;
}

HttpReply HttpClient::request(const std::string& method, const std::string& target,
                              const std::string& body,
                              std::vector<std::pair<std::string, std::string>> headers) {
  std::string text = method + " " + target + " HTTP/1.1\r\n";
  if (!hasHeader(headers, "host")) text += "Host: " + host_ + ":" + std::to_string(port_) + "\r\n";
  bool wants_length = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (wants_length && !hasHeader(headers, "content-length")) {
    text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  for (const auto& [name, value] : headers) text += name + ": " + value + "\r\n";
  text += "\r\n" + body;

  for (int attempt = 0;; ++attempt) {
    if (connection_ != nullptr && connection_->readableWhileIdle()) connection_.reset();
    bool reused = connection_ != nullptr;
    if (!reused) connection_ = connect();
    bool retry = false;
    HttpReply reply = exchange(*connection_, method, text, retry);
    // The server may close a kept-alive connection just as we reuse it.
    if (retry && reused && attempt == 0) {
      connection_.reset();
      continue;
    }
    if (retry) {
      connection_.reset();
      throw std::runtime_error("HttpClient: connection closed before a response to " + method +
                               " " + target);
    }
    if (lowerCase(reply.header("connection")).find("close") != std::string::npos)
      connection_.reset();
    return reply;
  }
}

// Sends one request and reads its reply. Sets retry (and returns nothing)
// if the connection died before the first byte of the reply.
HttpReply HttpClient::exchange(Connection& connection, const std::string& method,
                               const std::string& text, bool& retry) {
  auto fail = [this](const std::string& why) -> HttpReply {
    connection_.reset();
    throw std::runtime_error("HttpClient: " + why);
  };
  std::string& buf = connection.buffer;
  bool wrote = connection.writeAll(text);
  HttpReply reply;
  std::size_t head_end = std::string::npos;
  while (true) {
    head_end = buf.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      // Skip interim 1xx responses.
      if (buf.compare(0, 10, "HTTP/1.1 1") == 0 || buf.compare(0, 10, "HTTP/1.0 1") == 0) {
        buf.erase(0, head_end + 4);
        continue;
      }
      break;
    }
    auto status = connection.readMore();
    if (status == Connection::ReadStatus::Data) continue;
    if (buf.empty() && (status == Connection::ReadStatus::Eof || !wrote)) {
      retry = true;
      return reply;
    }
    if (buf.empty() && status == Connection::ReadStatus::Failed && errno == ECONNRESET) {
      retry = true;
      return reply;
    }
    return fail(status == Connection::ReadStatus::Eof ? "connection closed mid-response"
                                                      : "timeout or error reading response");
  }

  std::string_view head(buf.data(), head_end);
  auto line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1."))
    return fail("malformed status line");
  reply.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail("malformed header line");
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    reply.headers.emplace_back(lowerCase(line.substr(0, colon)), std::string(value));
  }
  buf.erase(0, head_end + 4);

  bool no_body = method == "HEAD" || reply.status == 204 || reply.status == 304;
  std::string length_text = reply.header("content-length");
  if (no_body) return reply;
  if (!length_text.empty()) {
    std::size_t length = std::stoul(length_text);
    while (buf.size() < length) {
      if (connection.readMore() != Connection::ReadStatus::Data)
        return fail("connection closed mid-body");
    }
    reply.body = buf.substr(0, length);
    buf.erase(0, length);
    return reply;
  }
  // No length: the body runs until the server closes.
  while (connection.readMore() == Connection::ReadStatus::Data) {
  }
  reply.body = std::move(buf);
  buf.clear();
  reply.headers.emplace_back("connection", "close");
  return reply;
}

std::string HttpClient::sendRaw(const std::string& bytes) {
  auto connection = connect();
  // A server may refuse and close before taking everything; read anyway.
  connection->writeAll(bytes);
  while (connection->readMore() == Connection::ReadStatus::Data) {
  }
  return connection->buffer;
}

bool waitForReadyz(ChildProcess& process, std::uint16_t port, int timeout_ms) {
  return waitUntil(
      [&] {
        if (!process.running()) return false;
        try {
          HttpClient probe("127.0.0.1", port, {false, "", 500});
          return probe.request("GET", "/readyz").status == 200;
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout_ms, 50);
}

double sumMetric(const std::string& exposition, const std::string& name, const std::string& label_filter) {
  std::istringstream in(exposition);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != '{' && next != ' ') continue;
    if (!label_filter.empty() && line.find(label_filter) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace sipwake::testing
