#include "tests/support/test_certs.h"

#include <memory>
#include <mutex>
#include <stdexcept>

#include "tests/support/process.h"

namespace sipwake::testing {
namespace {

void run(const std::string& cmd) {
  int status = 0;
  std::string out = runCommand(cmd + " 2>&1", &status);
  if (status != 0) {
    throw std::runtime_error("openssl failed (" + std::to_string(status) + "): " + cmd + "\n" +
                             out);
  }
}

const char* kKeyOptions = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
// No DNS name: sofia-sip 1.12 reads the CN only when a certificate has no
// DNS SANs, and it never recognises IP SANs; a PBX addressed as 127.0.0.1
// is matched through CN=127.0.0.1. OpenSSL clients use the IP SAN.
const char* kSan = "subjectAltName=IP:127.0.0.1";

}  // namespace

TestCertificates generateTestCertificates(const std::string& dir) {
  TestCertificates c;
  c.dir = dir;
  c.ca_file = dir + "/ca.crt";
  c.ca_key_file = dir + "/ca.key";
  c.server_cert_file = dir + "/server.crt";
  c.server_key_file = dir + "/server.key";
  c.untrusted_cert_file = dir + "/untrusted.crt";
  c.untrusted_key_file = dir + "/untrusted.key";
  std::string csr = dir + "/server.csr";
  std::string ext = dir + "/server.ext";
  auto q = shellQuote;

  run("openssl req -x509 " + std::string(kKeyOptions) + " -days 3650 -subj '/CN=sipwake test CA'" +
      " -addext 'basicConstraints=critical,CA:TRUE'" +
      " -addext 'keyUsage=critical,keyCertSign,cRLSign'" + " -keyout " + q(c.ca_key_file) +
      " -out " + q(c.ca_file));

  writeFile(ext, std::string(kSan) +
                     "\nbasicConstraints=CA:FALSE"
                     "\nkeyUsage=critical,digitalSignature,keyEncipherment"
                     "\nextendedKeyUsage=serverAuth,clientAuth\n");
  run("openssl req " + std::string(kKeyOptions) + " -subj '/CN=127.0.0.1' -keyout " +
      q(c.server_key_file) + " -out " + q(csr));
  run("openssl x509 -req -days 3650 -in " + q(csr) + " -CA " + q(c.ca_file) + " -CAkey " +
      q(c.ca_key_file) + " -CAcreateserial -CAserial " + q(dir + "/ca.srl") + " -extfile " +
      q(ext) + " -out " + q(c.server_cert_file));

  run("openssl req -x509 " + std::string(kKeyOptions) + " -days 3650 -subj '/CN=127.0.0.1'" +
      " -addext '" + kSan + "' -keyout " + q(c.untrusted_key_file) + " -out " +
      q(c.untrusted_cert_file));

  // Trusted, but for another name: name checks must refuse it.
  c.misnamed_cert_file = dir + "/misnamed.crt";
  c.misnamed_key_file = dir + "/misnamed.key";
  std::string misnamed_csr = dir + "/misnamed.csr";
  std::string misnamed_ext = dir + "/misnamed.ext";
  writeFile(misnamed_ext, "subjectAltName=DNS:pbx.invalid\nbasicConstraints=CA:FALSE"
                          "\nextendedKeyUsage=serverAuth\n");
  run("openssl req " + std::string(kKeyOptions) + " -subj '/CN=pbx.invalid' -keyout " +
      q(c.misnamed_key_file) + " -out " + q(misnamed_csr));
  run("openssl x509 -req -days 3650 -in " + q(misnamed_csr) + " -CA " + q(c.ca_file) +
      " -CAkey " + q(c.ca_key_file) + " -CAserial " + q(dir + "/ca.srl") + " -extfile " +
      q(misnamed_ext) + " -out " + q(c.misnamed_cert_file));
  return c;
}

const TestCertificates& sharedTestCertificates() {
  static std::mutex mutex;
  static std::unique_ptr<TempDir> dir;
  static TestCertificates certs;
  std::lock_guard<std::mutex> lock(mutex);
  if (dir == nullptr) {
    auto d = std::make_unique<TempDir>("sipwake-certs");
    certs = generateTestCertificates(d->path());
    dir = std::move(d);
  }
  return certs;
}

}  // namespace sipwake::testing
