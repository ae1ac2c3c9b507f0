#pragma once

#include <string>

namespace sipwake::registrar {

// Sofia's TLS transport reads agent.pem (key and certificate) and cafile.pem
// from one directory at start-up. We assemble it in a private temporary
// directory (0700, files 0600) and remove it as soon as the transport is up.
class TlsCertificateDir {
 public:
  // Throws std::runtime_error naming the file that cannot be read. An empty
  // `ca_file` means the system CA bundle.
  TlsCertificateDir(const std::string& cert_file, const std::string& key_file, const std::string& ca_file);
  ~TlsCertificateDir();
  TlsCertificateDir(const TlsCertificateDir&) = delete;
  TlsCertificateDir& operator=(const TlsCertificateDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  void write(const char* name, const std::string& content);
  std::string path_;
};

}  // namespace sipwake::registrar
