#include "common/config/config_table.h"

#include <fstream>

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::config;

namespace {
ConfigTable table() {
  return ConfigTable("REGISTRAR", {{"api.listen", "127.0.0.1:8080", "API address"},
                                   {"registration.backoff_base", "30s", "first back-off"},
                                   {"registration.max_rejections", "3", "rejections"},
                                   {"api.allow_plain", "false", "plain HTTP"}});
}
EnvLookup env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("config: defaults, file, then environment", "[config]") {
  std::string path = "/tmp/sipwake-config-test.json";
  {
    std::ofstream out(path);
    out << R"({"api": {"listen": "0.0.0.0:9000"}, "registration.max_rejections": 5})";
  }
  auto values = table().load(path, env({{"REGISTRAR_API_ALLOW_PLAIN", "1"}}));
  CHECK(values.string("api.listen") == "0.0.0.0:9000");
  CHECK(values.integer("registration.max_rejections", 1, 10) == 5);
  CHECK(values.boolean("api.allow_plain"));
  CHECK(values.duration("registration.backoff_base", 0, kHour) == 30'000);
  CHECK(values.hostPort("api.listen") == std::pair<std::string, int>{"0.0.0.0", 9000});

  auto overridden = table().load(path, env({{"REGISTRAR_API_LISTEN", "[::1]:81"}}));
  CHECK(overridden.hostPort("api.listen") == std::pair<std::string, int>{"::1", 81});
}

TEST_CASE("config: errors name the key and its variable", "[config]") {
  auto values = table().load(std::nullopt, env({{"REGISTRAR_REGISTRATION_MAX_REJECTIONS", "x"}}));
  CHECK_THROWS_WITH(values.integer("registration.max_rejections", 1, 10),
                    Catch::Contains("REGISTRAR_REGISTRATION_MAX_REJECTIONS"));
  std::string path = "/tmp/sipwake-config-typo.json";
  {
    std::ofstream out(path);
    out << R"({"api": {"lisen": "x"}})";
  }
  CHECK_THROWS_WITH(table().load(path, env({})), Catch::Contains("api.lisen"));
  CHECK_THROWS(parseDuration("5 parsecs"));
  CHECK(parseDuration("7d") == 7 * kDay);
  CHECK(parseDuration("250ms") == 250);
  CHECK(table().help("registrar", "x").find("REGISTRAR_API_LISTEN") != std::string::npos);
}
