#include "registrar/sip/tls_certificate_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sipwake::registrar {

namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

std::string readFile(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(std::string("cannot read ") + what + " '" + path + "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

TlsCertificateDir::TlsCertificateDir(const std::string& cert_file, const std::string& key_file,
                                     const std::string& ca_file) {
  char templ[] = "/tmp/sipwake-tls-XXXXXX";
  if (!mkdtemp(templ)) throw std::runtime_error("cannot create a TLS certificate directory");
  path_ = templ;
  chmod(path_.c_str(), 0700);
  std::string key = readFile(key_file, "SIP TLS key");
  std::string cert = readFile(cert_file, "SIP TLS certificate");
  write("agent.pem", key + "\n" + cert);
  std::fill(key.begin(), key.end(), '\0');
  write("cafile.pem", readFile(ca_file.empty() ? kSystemCaBundle : ca_file, "SIP TLS CA file"));
}

TlsCertificateDir::~TlsCertificateDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TlsCertificateDir::write(const char* name, const std::string& content) {
  std::string file = path_ + "/" + name;
  std::ofstream out(file);
  chmod(file.c_str(), 0600);
  out << content;
  if (!out) throw std::runtime_error("cannot write the TLS certificate directory");
}

}  // namespace sipwake::registrar
