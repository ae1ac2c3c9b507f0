#pragma once

#include <string>

typedef struct ssl_ctx_st SSL_CTX;

namespace sipwake::http {

// An OpenSSL server context loaded from PEM files: the certificate chain
// (leaf first) and its private key. TLS 1.2 is the minimum version.
// Construction throws std::runtime_error naming the file and OpenSSL's reason;
// messages never carry key material. Immutable once built, so several
// listeners (and threads) may share one.
class TlsServerContext {
 public:
  TlsServerContext(const std::string& cert_chain_file, const std::string& key_file);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

}  // namespace sipwake::http
