#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace sipwake::testing {
namespace {

std::runtime_error sysError(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

// Exit code as a shell reports it: the code, or 128 + signal.
int decodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

bool canBind(int type, uint16_t port) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // No SO_REUSEADDR: a port with TIME_WAIT leftovers is not "free" either.
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// ---------------------------------------------------------------- TempDir

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw sysError("mkdtemp " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("SIPWAKE_KEEP_TEST_DIRS");
  if (keep != nullptr && std::string(keep) == "1") return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const {
  return path_ + "/" + name;
}

// ----------------------------------------------------------- ChildProcess

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_file,
                           std::vector<std::pair<std::string, std::string>> extra_env,
                           std::string cwd)
    : argv_(std::move(argv)), log_file_(std::move(log_file)) {
  if (argv_.empty()) throw std::invalid_argument("ChildProcess: empty argv");

  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : extra_env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& s : argv_) args.push_back(s.data());
  args.push_back(nullptr);

  int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw sysError("open " + log_file_);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    throw sysError("open /dev/null");
  }
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    ::close(null_fd);
    throw sysError("pipe2");
  }

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    ::close(log_fd);
    ::close(null_fd);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    errno = saved;
    throw sysError("fork");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // A test runner that dies (crash, ctest timeout) takes its servers along.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(126);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Sockets the test holds (redis connections...) must not leak into the
    // child; only the CLOEXEC error pipe stays until exec.
    int keep = err_pipe[1];
    if (keep > 3) ::close_range(3, keep - 1, 0);
    ::close_range(keep + 1, ~0U, 0);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(keep, &e, sizeof(e));
      ::_exit(127);
    }
    ::execvpe(args[0], args.data(), envp.data());
    int e = errno;
    (void)!::write(keep, &e, sizeof(e));
    ::_exit(127);
  }

  ::setpgid(pid, pid);  // also in the parent: no race with kill(-pid).
  ::close(log_fd);
  ::close(null_fd);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  pid_ = pid;
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    exited_ = true;
    exit_status_ = decodeWaitStatus(status);
    throw std::runtime_error("cannot execute " + argv_[0] + ": " + std::strerror(child_errno));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0 || exited_) return;
  signal(SIGTERM);
  if (waitExit(5000) == -1) kill9();
}

bool ChildProcess::pollExit() {
  if (exited_) return true;
  siginfo_t info{};
  // WNOWAIT keeps the zombie, so its pid (= the group id) cannot be reused
  // while we clean up whatever is left in the group.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  if (info.si_pid == 0) return false;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  exit_status_ = decodeWaitStatus(status);
  return true;
}

bool ChildProcess::running() {
  return !pollExit();
}

void ChildProcess::signal(int sig) {
  if (!pollExit()) ::kill(pid_, sig);
}

void ChildProcess::kill9() {
  if (exited_) return;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  exit_status_ = decodeWaitStatus(status);
}

int ChildProcess::waitExit(int timeout_ms) {
  waitUntil([this] { return pollExit(); }, timeout_ms, 10);
  return exited_ ? exit_status_ : -1;
}

std::string ChildProcess::readLog() const {
  return readFile(log_file_);
}

// ------------------------------------------------------------------ ports

uint16_t freePort() {
  static std::mutex mutex;
  static std::set<uint16_t> handed_out;
  static std::mt19937 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mutex);
  std::uniform_int_distribution<int> dist(20000, 60000);
  for (int attempt = 0; attempt < 2000; ++attempt) {
    auto port = static_cast<uint16_t>(dist(rng));
    if (handed_out.count(port) != 0) continue;
    if (!canBind(SOCK_STREAM, port) || !canBind(SOCK_DGRAM, port)) continue;
    handed_out.insert(port);
    return port;
  }
  throw std::runtime_error("freePort: no free port found");
}

// ---------------------------------------------------------------- helpers

bool waitUntil(std::function<bool()> pred, int timeout_ms, int poll_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

std::string runCommand(const std::string& shell_cmd, int* exit_status) {
  std::string out;
  FILE* pipe = ::popen(shell_cmd.c_str(), "re");
  if (pipe == nullptr) {
    if (exit_status != nullptr) *exit_status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  if (exit_status != nullptr) *exit_status = status < 0 ? -1 : decodeWaitStatus(status);
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << content;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::string shellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  q += "'";
  return q;
}

std::string stopAndCheckExit(ChildProcess& process, const std::string& name) {
  process.signal(SIGTERM);
  int status = process.waitExit(20000);
  if (status == -1) process.kill9();
  std::string text = process.readLog();
  for (const char* marker : {"AddressSanitizer", "LeakSanitizer", "runtime error:"}) {
    auto at = text.find(marker);
    if (at != std::string::npos) {
      return name + " reported " + marker + ":\n" + text.substr(at > 200 ? at - 200 : 0, 4000);
    }
  }
  if (status != 0) return name + " exited with status " + std::to_string(status);
  return "";
}

void startOnFreePorts(const std::function<void()>& choose_ports, const std::function<void()>& start,
                      const std::string& in_use_text) {
  for (int attempt = 1;; ++attempt) {
    choose_ports();
    try {
      start();
      return;
    } catch (const std::runtime_error& e) {
      if (attempt == 3 || std::string(e.what()).find(in_use_text) == std::string::npos) throw;
    }
  }
}

}  // namespace sipwake::testing
