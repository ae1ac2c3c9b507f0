#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "common/log/logger.h"
#include "pushgw/pushgw_app.h"
#include "pushgw/pushgw_config.h"

int main(int argc, char** argv) {
  // A crash must not leave a core file: it would hold decrypted SIP
  // passwords and provider keys in clear. (Not PR_SET_DUMPABLE: that also
  // stops LeakSanitizer, which the sanitizer tests rely on.)
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  using namespace sipwake;
  std::optional<std::string> config_file;
  if (const char* env = std::getenv("PUSHGW_CONFIG")) config_file = env;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(pushgw::pushgwConfigTable()
                     .help("pushgw", "sipwake pushgw: sends the registrar's push jobs to APNs and FCM.")
                     .c_str(),
                 stdout);
      std::fputs("\n  PUSHGW_CONFIG  the config file (same as --config)\n", stdout);
      return 0;
    }
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_file = argv[++i];
      continue;
    }
    std::fprintf(stderr, "pushgw: unknown argument '%s' (see --help)\n", argv[i]);
    return 2;
  }
  try {
    auto config = pushgw::loadPushgwConfig(config_file, config::processEnvironment());
    return pushgw::runPushgw(config);
  } catch (const std::exception& e) {
    log::error("pushgw cannot start", {{"error", e.what()}});
    return 1;
  }
}
