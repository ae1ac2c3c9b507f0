#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;

namespace sipwake::testing {

struct HttpReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  // First value of that (lower-case) header, or "" if absent.
  std::string header(std::string_view lower) const;
};

struct HttpClientOptions {
  bool tls = false;
  std::string
      ca_file;  // with tls: verify the server against it (and its name/IP); empty = no verification
  int timeout_ms = 10000;  // connect, and each read or write
};

// A blocking HTTP/1.1 client for tests. Not thread-safe; one per test thread.
class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port, HttpClientOptions opts = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Reuses a keep-alive connection and reconnects once if the server had
  // closed it. Adds Host and (for a body) Content-Length unless given.
  // Throws std::runtime_error on connect, timeout or TLS failure.
  HttpReply request(const std::string& method, const std::string& target,
                    const std::string& body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {});

  // Opens a new connection, writes bytes as they are, returns everything read
  // until the server closes or a read times out. Throws only if it cannot connect.
  std::string sendRaw(const std::string& bytes);

  // Drops the kept-alive connection, if any.
  void disconnect();

 private:
  class Connection;

  std::unique_ptr<Connection> connect();
  HttpReply exchange(Connection& connection, const std::string& method, const std::string& text,
                     bool& retry);

  std::string host_;
  std::uint16_t port_;
  HttpClientOptions opts_;
  SSL_CTX* ssl_ctx_ = nullptr;
  std::unique_ptr<Connection> connection_;
};

class ChildProcess;

// The sum of the samples of metric `name` in a Prometheus text exposition
// whose label set contains `label_filter` (e.g. result="ok"); 0 when none.
double sumMetric(const std::string& exposition, const std::string& name,
                 const std::string& label_filter = "");

// Polls GET /readyz on 127.0.0.1:port until it answers 200 (-> true), the
// process exits or timeout_ms passes (-> false).
bool waitForReadyz(ChildProcess& process, std::uint16_t port, int timeout_ms = 15000);

}  // namespace sipwake::testing
