#pragma once

#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace sipwake::http2 {

// An OpenSSL client context for HTTP/2 over TLS: TLS 1.2 at least, ALPN
// "h2" offered, and the server certificate always verified: against
// `ca_file` (PEM), or the system store when it is empty. There is no way to
// turn verification off. Construction throws std::runtime_error naming the
// file and OpenSSL's reason. Immutable once built.
class TlsClientContext {
 public:
  explicit TlsClientContext(const std::string& ca_file);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A new SSL in connect state for `host`: the certificate must match it (an
  // IP SAN for an address, a DNS name otherwise, no partial wildcards), and
  // a name is also sent as SNI (RFC 6066 forbids addresses there).
  // nullptr with `error` set when OpenSSL refuses.
  SSL* newSsl(const std::string& host, std::string& error) const;

 private:
  SSL_CTX* ctx_;
};

// True for a literal IPv4 or IPv6 address.
bool isIpAddress(const std::string& host);

}  // namespace sipwake::http2
