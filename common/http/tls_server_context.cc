#include "common/http/tls_server_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>
#include <stdexcept>

namespace sipwake::http {
namespace {

// Drains OpenSSL's error queue into "reason; reason". Reason strings name the
// failing check (e.g. "no start line"), never the bytes that were read.
std::string opensslReasons() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(code));
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void throwFor(const std::string& what, const std::string& file) {
  throw std::runtime_error("TLS: " + what + " '" + file + "': " + opensslReasons());
}

bool isKeyMismatch(unsigned long code) {
  return ERR_GET_LIB(code) == ERR_LIB_X509 && (ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH ||
                                               ERR_GET_REASON(code) == X509_R_KEY_TYPE_MISMATCH);
}

[[noreturn]] void throwMismatch(const std::string& cert_file, const std::string& key_file) {
  throwFor("private key does not match the certificate in '" + cert_file + "': key file", key_file);
}

void requireReadable(const std::string& what, const std::string& file) {
  if (!std::ifstream(file).good()) {
    throw std::runtime_error("TLS: cannot open " + what + " '" + file + "'");
  }
}

// OpenSSL's default would prompt on the terminal for an encrypted key; a
// service must fail instead.
int refusePassphrase(char*, int, int, void*) {
  return 0;
}

}  // namespace

TlsServerContext::TlsServerContext(const std::string& cert_chain_file, const std::string& key_file)
    : ctx_(nullptr) {
  requireReadable("certificate file", cert_chain_file);
  requireReadable("private key file", key_file);
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (ctx_ == nullptr) throw std::runtime_error("TLS: SSL_CTX_new failed: " + opensslReasons());
  try {
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_default_passwd_cb(ctx_, &refusePassphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert_chain_file.c_str()) != 1) {
      throwFor("cannot load certificate chain from", cert_chain_file);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      // Loading already compares the key with the certificate; say so plainly.
      if (isKeyMismatch(ERR_peek_last_error())) throwMismatch(cert_chain_file, key_file);
      throwFor("cannot load private key from", key_file);
    }
    if (SSL_CTX_check_private_key(ctx_) != 1) throwMismatch(cert_chain_file, key_file);
  } catch (...) {
    SSL_CTX_free(ctx_);
    throw;
  }
}

TlsServerContext::~TlsServerContext() {
  SSL_CTX_free(ctx_);
}

}  // namespace sipwake::http
