// Helpers for integration tests that drive real processes: temporary
// directories, child processes with their own log file, free loopback ports,
// polling and shell commands.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sipwake::testing {

// A fresh directory under /tmp (mkdtemp), removed recursively on destruction
// unless the environment has SIPWAKE_KEEP_TEST_DIRS=1 (for post-mortems).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sipwake-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string file(const std::string& name) const;

 private:
  std::string path_;
};

// A child process started with fork/exec in its own process group, stdin from
// /dev/null, stdout and stderr appended to `log_file`. The environment is the
// parent's plus `extra_env` (which overrides). Throws std::runtime_error when
// the program cannot be executed.
//
// The destructor sends SIGTERM, waits up to 5 s, then SIGKILLs the whole
// process group, so helpers the child forked (kamailio's workers) go too.
// The child also gets SIGTERM (PR_SET_PDEATHSIG) when the thread that
// created it exits, so a crashed test leaves no server behind: create
// ChildProcesses from a thread that outlives them (the test's own).
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log_file,
               std::vector<std::pair<std::string, std::string>> extra_env = {},
               std::string cwd = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig` to the child itself (not its group).
  void signal(int sig);
  // SIGKILL to the whole process group, then reaps the child.
  void kill9();
  // Waits for the child to exit. Returns its exit code, 128 + signal number
  // when a signal killed it, or -1 when it is still running after timeout_ms.
  // Once the child has exited, later calls return the same status at once.
  int waitExit(int timeout_ms);
  // Everything in the log file so far.
  std::string readLog() const;
  const std::string& logFile() const { return log_file_; }

 private:
  // Non-blocking check; on exit kills leftovers of the group and reaps.
  bool pollExit();

  std::vector<std::string> argv_;
  std::string log_file_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_status_ = -1;
};

// Stops one of our own services the way an operator would (SIGTERM, up to
// 20 s, then SIGKILL) and says what went wrong, so the test can fail on it: a
// sanitizer report in its log or an unclean exit. Empty when all was well.
std::string stopAndCheckExit(ChildProcess& process, const std::string& name);

// True when a socket of `type` (SOCK_STREAM, SOCK_DGRAM) can bind
// 127.0.0.1:port now.
bool canBind(int type, uint16_t port);

// A port free for both TCP and UDP on 127.0.0.1: drawn at random in
// [20000, 60000], checked by binding both, and never returned twice by this
// process.
uint16_t freePort();

// A port checked free by freePort() can still be taken (by an outgoing
// connection's ephemeral port) before a server binds it. Calls
// choose_ports() then start(), up to 3 times while start() throws a
// std::runtime_error whose text contains `in_use_text`.
void startOnFreePorts(const std::function<void()>& choose_ports, const std::function<void()>& start,
                      const std::string& in_use_text = "Address already in use");

// Polls `pred` every poll_ms until it returns true (-> true) or timeout_ms
// passes (-> false; pred is evaluated one last time at the deadline).
bool waitUntil(std::function<bool()> pred, int timeout_ms, int poll_ms = 20);

// Runs `shell_cmd` with /bin/sh -c and returns its stdout. When exit_status
// is given it receives the exit code (128 + signal when killed, -1 when the
// shell could not be started).
std::string runCommand(const std::string& shell_cmd, int* exit_status = nullptr);

// Reads a whole file; empty when it does not exist.
std::string readFile(const std::string& path);
// Writes (truncates) a file; throws on failure.
void writeFile(const std::string& path, const std::string& content);

// Quotes `s` for /bin/sh ('...' with embedded quotes escaped).
std::string shellQuote(const std::string& s);

}  // namespace sipwake::testing
