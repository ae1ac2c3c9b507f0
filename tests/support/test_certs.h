// Throw-away TLS material for tests, made at run time with the openssl CLI.
#pragma once

#include <string>

namespace sipwake::testing {

struct TestCertificates {
  std::string dir;
  std::string ca_file;           // test CA certificate (PEM)
  std::string ca_key_file;       // its key, to sign more certificates if needed
  std::string server_cert_file;  // signed by the CA; CN 127.0.0.1, SAN IP:127.0.0.1
  std::string server_key_file;
  std::string untrusted_cert_file;  // self-signed, same subject and SANs
  std::string untrusted_key_file;
  std::string misnamed_cert_file;  // signed by the CA, but for pbx.invalid only
  std::string misnamed_key_file;
};

// Generates a CA, a server certificate it signs and an untrusted self-signed
// certificate (P-256 keys, 10 years) into `dir`, which must exist. Throws
// std::runtime_error when openssl fails.
TestCertificates generateTestCertificates(const std::string& dir);

// One set per test process, generated on first use into a TempDir that lives
// until the process exits.
const TestCertificates& sharedTestCertificates();

}  // namespace sipwake::testing
