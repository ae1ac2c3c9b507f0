// An independent SIP UA for tests: one REGISTER with digest auth through
// SIPp (tests/sipp/register.xml).
#pragma once

#include <cstdint>
#include <string>

namespace sipwake::testing {

struct SippRegisterOptions {
  std::string host = "127.0.0.1";  // the PBX
  uint16_t port = 0;
  std::string transport = "u1";  // sipp -t: "u1" (UDP) or "t1" (TCP)
  std::string user;
  std::string password;
  std::string auth_user;     // empty: user
  std::string domain;        // empty: host
  std::string contact_user;  // empty: user
  int expires = 3600;
  uint16_t local_port = 0;  // 0: a freePort()
  int timeout_s = 10;       // sipp -timeout (a timeout is a failure)
  // Optional files: every SIP message sent and received (-trace_msg), and
  // sipp's own output. Empty: kept in a temporary directory, then dropped.
  std::string message_log_file;
  std::string output_file;
};

// Runs sipp -m 1 bound to 127.0.0.1 and returns its exit code: 0 when the
// REGISTER ended with 200, 1 when it failed (other final answer, wrong
// password, timeout), 255/254 on sipp's own fatal errors.
int sippRegister(const SippRegisterOptions& options);

}  // namespace sipwake::testing
