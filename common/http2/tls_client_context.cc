#include "common/http2/tls_client_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <stdexcept>

#include "common/http2/tls_socket.h"

namespace sipwake::http2 {
namespace {

// ALPN wire format: length-prefixed protocol names.
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

}  // namespace

bool isIpAddress(const std::string& host) {
  in6_addr buf;
  return inet_pton(AF_INET, host.c_str(), &buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

TlsClientContext::TlsClientContext(const std::string& ca_file) : ctx_(nullptr) {
  if (!ca_file.empty() && !std::ifstream(ca_file).good()) {
    throw std::runtime_error("TLS: cannot open CA file '" + ca_file + "'");
  }
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw std::runtime_error("TLS: SSL_CTX_new failed: " + takeOpensslErrors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                               : SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
  if (loaded != 1) {
    std::string reasons = takeOpensslErrors();
    SSL_CTX_free(ctx_);
    throw std::runtime_error("TLS: cannot load CA certificates from '" +
                             (ca_file.empty() ? std::string("the system store") : ca_file) +
                             "': " + reasons);
  }
  // Returns 0 on success, unlike the rest of OpenSSL.
  if (SSL_CTX_set_alpn_protos(ctx_, kAlpnH2, sizeof kAlpnH2) != 0) {
    SSL_CTX_free(ctx_);
    throw std::runtime_error("TLS: cannot set ALPN: " + takeOpensslErrors());
  }
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

SSL* TlsClientContext::newSsl(const std::string& host, std::string& error) const {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) {
    error = "TLS: SSL_new failed: " + takeOpensslErrors();
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  bool ok;
  if (isIpAddress(host)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1 &&
         SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  }
  if (!ok) {
    error = "TLS: cannot check the certificate against '" + host + "': " + takeOpensslErrors();
    SSL_free(ssl);
    return nullptr;
  }
  return ssl;
}

}  // namespace sipwake::http2
