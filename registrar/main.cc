#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "common/log/logger.h"
#include "registrar/api/registrar_api.h"
#include "registrar/registrar_app.h"
#include "registrar/registrar_config.h"

namespace {
constexpr const char* kSummary =
    "sipwake registrar: keeps backgrounded apps' SIP accounts registered at their PBXs.";
}

int main(int argc, char** argv) {
  // A crash must not leave a core file: it would hold decrypted SIP
  // passwords and provider keys in clear. (Not PR_SET_DUMPABLE: that also
  // stops LeakSanitizer, which the sanitizer tests rely on.)
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  using namespace sipwake;
  std::optional<std::string> config_file;
  if (const char* env = std::getenv("REGISTRAR_CONFIG")) config_file = env;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(registrar::registrarConfigTable().help("registrar", kSummary).c_str(), stdout);
      std::fputs("\n  REGISTRAR_CONFIG  the config file (same as --config)\n", stdout);
      std::fputs("  --routes          print every API method and path, then exit\n", stdout);
      return 0;
    }
    if (!std::strcmp(argv[i], "--routes")) {  // what the API serves: "METHOD /path auth"
      for (const auto& r : registrar::RegistrarApi::routes()) {
        const char* auth = r.auth == registrar::ApiAuth::None     ? "none"
                           : r.auth == registrar::ApiAuth::Tenant ? "tenant"
                                                                  : "admin";
        std::printf("%.*s %.*s %s\n", int(r.method.size()), r.method.data(), int(r.pattern.size()),
                    r.pattern.data(), auth);
      }
      return 0;
    }
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_file = argv[++i];
      continue;
    }
    std::fprintf(stderr, "registrar: unknown argument '%s' (see --help)\n", argv[i]);
    return 2;
  }
  try {
    auto config = registrar::loadRegistrarConfig(config_file, config::processEnvironment());
    return registrar::runRegistrar(config);
  } catch (const std::exception& e) {
    log::error("registrar cannot start", {{"error", e.what()}});
    return 1;
  }
}
