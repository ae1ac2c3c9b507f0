// A Kamailio 5.6 instance acting as the users' PBX (registrar with digest
// auth), configured from tests/kamailio/pbx.cfg and run by the test.
//
// Registrar behaviour (see the template for details):
//  - realm = To domain; the password of user U is "pw-U"; qop=auth;
//  - usrloc in memory, use_domain=0: the AOR is the user part alone, so
//    contacts("1000") finds 1000@<any domain>; unlimited contacts per AOR;
//  - min_expires 0, default_expires 3600, max_expires from the options;
//  - user-name prefixes: busy* (first REGISTER of that user: 503 with
//    Retry-After), short* (10 s granted after auth unless un-registering),
//    brief* (0 < requested expiry < 120: 423 with Min-Expires: 120),
//    down* (always 503, no Retry-After), slow* (no reply at all),
//    reject* (403 after auth);
//  - other requests are routed to registered contacts (lookup + t_relay),
//    back over the connection the REGISTER came from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace sipwake::testing {

struct KamailioPbxOptions {
  bool tls = false;
  // PEM files for the TLS listener; empty: sharedTestCertificates()'s server
  // certificate (signed by the test CA).
  std::string tls_cert_file, tls_key_file;
  int busy_retry_after = 3;
  bool log_registers = true;
  int max_expires = 0;  // 0: no maximum
  // Shared memory in MB; 0: Kamailio's default (64), which runs out (500 "No
  // error (2/SL)") with a few thousand transactions open at once.
  int shm_mb = 0;
};

// One REGISTER as logged by the PBX (an SWREG line), with the reply it got.
struct RegisterLogEntry {
  std::string user;  // From user
  std::string call_id;
  uint32_t cseq = 0;
  std::string expires;  // Expires header, empty when absent
  std::string contact;  // first Contact header body, empty when absent
  bool auth = false;    // an Authorization header was present
  std::string src;      // "ip:port"
  std::string proto;    // "udp", "tcp", "tls"
  double time = 0;      // seconds since the epoch
  int reply_code = 0;   // the PBX's answer (SWREPLY line); 0: none (yet)
  double reply_time = 0;
};

// One reply the PBX sent to a REGISTER (an SWREPLY line).
struct PbxReplyLogEntry {
  std::string user;
  std::string call_id;
  uint32_t cseq = 0;
  int code = 0;
  double time = 0;
};

// One contact in the PBX's location table (from kamcmd ul.*).
struct PbxContact {
  std::string uri;  // "Address"
  int expires = 0;  // remaining seconds; -1 permanent, 0 expired/deleted
  std::string call_id;
  uint32_t cseq = 0;
  std::string user_agent;
  std::string received;  // "sip:ip:port[;transport=x]" or empty
  std::string socket;    // the PBX socket, e.g. "udp:127.0.0.1:PORT"
};

// Starts on construction (throws std::runtime_error when Kamailio does not
// come up, with its log); the destructor stops it.
class KamailioPbx {
 public:
  explicit KamailioPbx(KamailioPbxOptions options = {});
  ~KamailioPbx();
  KamailioPbx(const KamailioPbx&) = delete;
  KamailioPbx& operator=(const KamailioPbx&) = delete;

  const KamailioPbxOptions& options() const { return options_; }
  std::string host() const { return "127.0.0.1"; }
  uint16_t port() const { return port_; }         // UDP and TCP
  uint16_t tlsPort() const { return tls_port_; }  // 0 without TLS
  std::string hostPort() const;                   // "127.0.0.1:PORT"
  const std::string& runDir() const { return dir_.path(); }
  std::string logFile() const { return dir_.file("kamailio.log"); }
  std::string configFile() const { return dir_.file("pbx.cfg"); }
  std::string readLog() const;

  // Every REGISTER logged so far (all runs of this instance), in order.
  std::vector<RegisterLogEntry> registers() const;
  std::vector<RegisterLogEntry> registersFor(const std::string& user) const;
  std::vector<PbxReplyLogEntry> replies() const;

  // Contacts of one AOR (the user part: use_domain is off). Empty when none.
  std::vector<PbxContact> contacts(const std::string& aor_user) const;
  // AOR -> contacts, for every AOR in the location table.
  std::map<std::string, std::vector<PbxContact>> allContacts() const;
  // The same for some AORs only (absent: none); quicker on large tables.
  std::map<std::string, std::vector<PbxContact>> contactsOf(const std::vector<std::string>& aor_users) const;
  // Runs `kamcmd -s unix:<ctl socket> <args>` (args are shell words, e.g.
  // "ul.lookup location s:1000"); returns stdout and stderr.
  std::string kamcmd(const std::string& args, int* exit_status = nullptr) const;

  // SIGTERM and wait; the location table (in memory) is lost.
  void stop();
  // Starts again on the same ports; no-op when running.
  void start();
  void restart();
  void kill9();
  bool running() const;

 private:
  void writeConfig() const;

  KamailioPbxOptions options_;
  TempDir dir_{"sipwake-kamailio"};
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace sipwake::testing
