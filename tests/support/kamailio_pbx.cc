#include "tests/support/kamailio_pbx.h"

#include <atomic>
#include <cstdio>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "tests/support/test_certs.h"

namespace sipwake::testing {
namespace {

const char* kTemplate = SIPWAKE_SOURCE_DIR "/tests/kamailio/pbx.cfg";

void replaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

bool tcpAccepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// Splits "k1=v1 k2=v2 ..." where the keys are known and in order; a value
// runs up to " <next key>=", so it may contain spaces (a Contact may).
std::map<std::string, std::string> parseFields(const std::string& line,
                                               const std::vector<std::string>& keys) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string marker = keys[i] + "=";
    size_t start = line.find(marker, pos);
    if (start == std::string::npos) return out;
    start += marker.size();
    size_t end = std::string::npos;
    if (i + 1 < keys.size()) end = line.find(" " + keys[i + 1] + "=", start);
    if (end == std::string::npos) {
      end = line.size();
      while (end > start && (line[end - 1] == '\n' || line[end - 1] == '\r')) --end;
    }
    out[keys[i]] = line.substr(start, end - start);
    pos = end;
  }
  return out;
}

uint32_t toU32(const std::string& s) {
  return static_cast<uint32_t>(std::strtoul(s.c_str(), nullptr, 10));
}

// kamcmd prints RPC structures as
//   {                 (anonymous struct)
//     Key: value
//     Key: {  ...  }
//   }
// Values are kept as text; numbers are not typed.
struct RpcNode {
  std::string key;
  std::string value;
  bool is_struct = false;
  std::vector<RpcNode> children;

  const RpcNode* child(const std::string& k) const {
    for (const auto& c : children) {
      if (c.key == k) return &c;
    }
    return nullptr;
  }
  std::string leaf(const std::string& k) const {
    const RpcNode* c = child(k);
    return c != nullptr && !c->is_struct ? c->value : std::string();
  }
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

RpcNode parseRpc(const std::string& text) {
  RpcNode root;
  root.is_struct = true;
  std::vector<RpcNode*> stack{&root};
  std::istringstream in(text);
  std::string raw;
  while (std::getline(in, raw)) {
    std::string line = trim(raw);
    if (line.empty()) continue;
    if (line == "}") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    RpcNode node;
    if (line == "{") {
      node.is_struct = true;
    } else {
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;  // e.g. an error line
      node.key = line.substr(0, colon);
      node.value = trim(line.substr(colon + 1));
      if (node.value == "{") {
        node.is_struct = true;
        node.value.clear();
      }
    }
    stack.back()->children.push_back(std::move(node));
    if (stack.back()->children.back().is_struct) stack.push_back(&stack.back()->children.back());
  }
  return root;
}

PbxContact toContact(const RpcNode& c) {
  PbxContact pc;
  pc.uri = c.leaf("Address");
  std::string exp = c.leaf("Expires");
  if (!exp.empty() && exp.find_first_not_of("0123456789") == std::string::npos) {
    pc.expires = std::atoi(exp.c_str());
  } else if (exp == "permanent") {
    pc.expires = -1;
  } else {
    pc.expires = 0;  // "expired", "deleted"
  }
  pc.call_id = c.leaf("Call-ID");
  pc.cseq = toU32(c.leaf("CSeq"));
  pc.user_agent = c.leaf("User-Agent");
  pc.received = c.leaf("Received");
  if (pc.received == "[not set]") pc.received.clear();
  pc.socket = c.leaf("Socket");
  return pc;
}

// Collects every struct that has an "AoR" leaf and a "Contacts" struct:
// the top level of ul.lookup, each "Info" of ul.dump.
void collectAors(const RpcNode& node, std::map<std::string, std::vector<PbxContact>>& out) {
  if (node.is_struct) {
    const RpcNode* aor = node.child("AoR");
    const RpcNode* contacts = node.child("Contacts");
    if (aor != nullptr && !aor->is_struct && contacts != nullptr && contacts->is_struct) {
      auto& list = out[aor->value];
      for (const auto& c : contacts->children) {
        if (c.is_struct && c.key == "Contact") list.push_back(toContact(c));
      }
      return;
    }
  }
  for (const auto& c : node.children) collectAors(c, out);
}

}  // namespace

KamailioPbx::KamailioPbx(KamailioPbxOptions options) : options_(std::move(options)) {
  if (options_.tls && options_.tls_cert_file.empty()) {
    const TestCertificates& certs = sharedTestCertificates();
    options_.tls_cert_file = certs.server_cert_file;
    options_.tls_key_file = certs.server_key_file;
  }
  startOnFreePorts(
      [this] {
        port_ = freePort();
        tls_port_ = options_.tls ? freePort() : 0;
        writeConfig();
      },
      [this] { start(); });
}

KamailioPbx::~KamailioPbx() {
  stop();
}

std::string KamailioPbx::hostPort() const {
  return host() + ":" + std::to_string(port_);
}

std::string KamailioPbx::readLog() const {
  return readFile(logFile());
}

void KamailioPbx::writeConfig() const {
  std::string cfg = readFile(kTemplate);
  if (cfg.empty()) throw std::runtime_error(std::string("cannot read ") + kTemplate);
  std::string defines;
  if (options_.tls) defines += "#!define WITH_TLS\n";
  if (options_.log_registers) defines += "#!define WITH_REGISTER_LOG\n";
  replaceAll(cfg, "%%DEFINES%%", defines);
  replaceAll(cfg, "%%PORT%%", std::to_string(port_));
  replaceAll(cfg, "%%TLS_PORT%%", std::to_string(tls_port_));
  replaceAll(cfg, "%%RUNDIR%%", dir_.path());
  replaceAll(cfg, "%%BUSY_RETRY_AFTER%%", std::to_string(options_.busy_retry_after));
  replaceAll(cfg, "%%MAX_EXPIRES%%", std::to_string(options_.max_expires));
  writeFile(configFile(), cfg);

  if (options_.tls) {
    // Server side: our certificate, no client certificates asked for.
    // Client side (requests routed to TLS contacts): no verification.
    std::string tls_cfg =
        "[server:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
        "certificate = " +
        options_.tls_cert_file +
        "\n"
        "private_key = " +
        options_.tls_key_file +
        "\n"
        "\n"
        "[client:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = no\n"
        "require_certificate = no\n";
    writeFile(dir_.file("tls.cfg"), tls_cfg);
  }
}

void KamailioPbx::start() {
  if (running()) return;
  process_.reset();
  std::error_code ec;
  std::filesystem::remove(dir_.file("kamailio_ctl"), ec);  // stale after kill9()
  std::vector<std::string> argv = {"kamailio",  "-f",       configFile(),
                                   "-DD",       "-E",       "-Y",
                                   dir_.path(), "-P",       dir_.file("kamailio.pid"),
                                   "-w",        dir_.path()};
  if (options_.shm_mb > 0) {
    argv.insert(argv.end(), {"-m", std::to_string(options_.shm_mb), "-M", "32"});
  }
  process_ = std::make_unique<ChildProcess>(argv, logFile());
  bool up = waitUntil(
      [this] {
        if (!process_->running()) return true;
        if (!tcpAccepts(port_)) return false;
        if (tls_port_ != 0 && !tcpAccepts(tls_port_)) return false;
        int status = -1;
        std::string out = kamcmd("core.uptime", &status);
        return status == 0 && out.find("uptime") != std::string::npos;
      },
      15000, 50);
  if (!up || !process_->running()) {
    std::string log = process_->readLog();
    process_.reset();
    throw std::runtime_error("kamailio did not start on " + hostPort() + "; log:\n" + log);
  }
}

void KamailioPbx::stop() {
  if (process_ == nullptr) return;
  process_->signal(SIGTERM);
  if (process_->waitExit(10000) == -1) process_->kill9();
  process_.reset();
}

void KamailioPbx::restart() {
  stop();
  start();
}

void KamailioPbx::kill9() {
  if (process_ == nullptr) return;
  process_->kill9();
  process_.reset();
}

bool KamailioPbx::running() const {
  return process_ != nullptr && process_->running();
}

std::string KamailioPbx::kamcmd(const std::string& args, int* exit_status) const {
  // kamcmd waits forever on a wedged server: bound it.
  return runCommand("timeout 10 kamcmd -s " + shellQuote("unix:" + dir_.file("kamailio_ctl")) +
                        " " + args + " 2>&1",
                    exit_status);
}

std::vector<RegisterLogEntry> KamailioPbx::registers() const {
  static const std::vector<std::string> kRegKeys = {"user", "callid", "cseq",  "expires", "contact",
                                                    "auth", "src",    "proto", "t"};
  static const std::vector<std::string> kReplyKeys = {"user", "callid", "cseq", "code", "t"};
  std::vector<RegisterLogEntry> out;
  std::istringstream in(readLog());
  std::string line;
  while (std::getline(in, line)) {
    size_t reg = line.find("SWREG user=");
    if (reg != std::string::npos) {
      auto f = parseFields(line.substr(reg + 6), kRegKeys);
      if (f.size() != kRegKeys.size()) continue;  // a truncated line
      RegisterLogEntry e;
      e.user = f["user"];
      e.call_id = f["callid"];
      e.cseq = toU32(f["cseq"]);
      e.expires = f["expires"];
      e.contact = f["contact"];
      e.auth = f["auth"] == "1";
      e.src = f["src"];
      e.proto = f["proto"];
      e.time = std::atof(f["t"].c_str());
      out.push_back(std::move(e));
      continue;
    }
    size_t rep = line.find("SWREPLY user=");
    if (rep != std::string::npos) {
      auto f = parseFields(line.substr(rep + 8), kReplyKeys);
      if (f.size() != kReplyKeys.size()) continue;
      uint32_t cseq = toU32(f["cseq"]);
      // The earliest unanswered REGISTER of that transaction (a UDP
      // retransmission is logged as a REGISTER of its own).
      for (auto& e : out) {
        if (e.reply_code == 0 && e.call_id == f["callid"] && e.cseq == cseq) {
          e.reply_code = std::atoi(f["code"].c_str());
          e.reply_time = std::atof(f["t"].c_str());
          break;
        }
      }
    }
  }
  return out;
}

std::vector<RegisterLogEntry> KamailioPbx::registersFor(const std::string& user) const {
  std::vector<RegisterLogEntry> out;
  for (auto& e : registers()) {
    if (e.user == user) out.push_back(std::move(e));
  }
  return out;
}

std::vector<PbxReplyLogEntry> KamailioPbx::replies() const {
  static const std::vector<std::string> kReplyKeys = {"user", "callid", "cseq", "code", "t"};
  std::vector<PbxReplyLogEntry> out;
  std::istringstream in(readLog());
  std::string line;
  while (std::getline(in, line)) {
    size_t rep = line.find("SWREPLY user=");
    if (rep == std::string::npos) continue;
    auto f = parseFields(line.substr(rep + 8), kReplyKeys);
    if (f.size() != kReplyKeys.size()) continue;
    PbxReplyLogEntry r;
    r.user = f["user"];
    r.call_id = f["callid"];
    r.cseq = toU32(f["cseq"]);
    r.code = std::atoi(f["code"].c_str());
    r.time = std::atof(f["t"].c_str());
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PbxContact> KamailioPbx::contacts(const std::string& aor_user) const {
  // "s:" keeps kamcmd from sending a numeric user as an integer.
  std::string out = kamcmd("ul.lookup location " + shellQuote("s:" + aor_user));
  if (out.find("AOR not found") != std::string::npos) return {};
  std::map<std::string, std::vector<PbxContact>> aors;
  collectAors(parseRpc(out), aors);
  auto it = aors.find(aor_user);
  if (it != aors.end()) return it->second;
  return aors.size() == 1 ? aors.begin()->second : std::vector<PbxContact>{};
}

std::map<std::string, std::vector<PbxContact>> KamailioPbx::allContacts() const {
  std::map<std::string, std::vector<PbxContact>> aors;
  std::string dump = kamcmd("ul.dump");
  if (dump.find("reply too big") == std::string::npos) {
    collectAors(parseRpc(dump), aors);
    return aors;
  }
  // kamcmd cannot take a whole large table in one reply: list the AoRs, then
  // look them up.
  std::istringstream brief(kamcmd("ul.dump brief"));
  std::string line;
  std::vector<std::string> users;
  while (std::getline(brief, line)) {
    line = trim(line);
    if (line.rfind("AoR: ", 0) == 0) users.push_back(line.substr(5));
  }
  return contactsOf(users);
}

std::map<std::string, std::vector<PbxContact>> KamailioPbx::contactsOf(
    const std::vector<std::string>& aor_users) const {
  // One kamcmd session for all lookups: it reads commands from stdin.
  std::string commands;
  for (const auto& user : aor_users) commands += "ul.lookup location s:" + user + "\n";
  static std::atomic<int> next_file{0};  // callers may poll from several threads
  std::string file = dir_.file("lookups-" + std::to_string(++next_file) + ".txt");
  writeFile(file, commands);
  std::map<std::string, std::vector<PbxContact>> aors;
  collectAors(parseRpc(runCommand("timeout 20 kamcmd -s " +
                                  shellQuote("unix:" + dir_.file("kamailio_ctl")) + " < " +
                                  shellQuote(file) + " 2>&1")),
              aors);
  std::remove(file.c_str());
  return aors;
}

}  // namespace sipwake::testing
