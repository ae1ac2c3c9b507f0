#include "tests/support/sipp_ua.h"

#include <stdexcept>
#include <vector>

#include "tests/support/process.h"

namespace sipwake::testing {
namespace {

const char* kScenario = SIPWAKE_SOURCE_DIR "/tests/sipp/register.xml";

void replaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

int sippRegister(const SippRegisterOptions& o) {
  if (o.port == 0 || o.user.empty())
    throw std::invalid_argument("sippRegister: port and user needed");
  TempDir work("sipwake-sipp");

  // sipp does not expand keywords inside [authentication ...]: the
  // credentials are written into a copy of the scenario.
  std::string scenario = readFile(kScenario);
  if (scenario.empty()) throw std::runtime_error(std::string("cannot read ") + kScenario);
  replaceAll(scenario, "@AUTH_USER@", o.auth_user.empty() ? o.user : o.auth_user);
  replaceAll(scenario, "@AUTH_PASSWORD@", o.password);
  std::string scenario_file = work.file("register.xml");
  writeFile(scenario_file, scenario);

  uint16_t local_port = o.local_port != 0 ? o.local_port : freePort();
  // clang-format off
  std::vector<std::string> argv = {
      "sipp", o.host + ":" + std::to_string(o.port),
      "-sf", scenario_file,
      "-m", "1",
      "-i", "127.0.0.1",
      "-p", std::to_string(local_port),
      "-t", o.transport,
      "-timeout", std::to_string(o.timeout_s) + "s",
      "-timeout_error",
      "-nostdin",
      "-key", "user", o.user,
      "-key", "domain", o.domain.empty() ? o.host : o.domain,
      "-key", "contact_user", o.contact_user.empty() ? o.user : o.contact_user,
      "-key", "expires", std::to_string(o.expires),
      "-trace_msg",
      "-message_file", o.message_log_file.empty() ? work.file("messages.log") : o.message_log_file,
  };
  // clang-format on
  std::string output = o.output_file.empty() ? work.file("sipp.out") : o.output_file;
  ChildProcess sipp(argv, output, {}, work.path());
  int status = sipp.waitExit((o.timeout_s + 10) * 1000);
  if (status == -1) {
    sipp.kill9();
    return 255;
  }
  return status;
}

}  // namespace sipwake::testing
