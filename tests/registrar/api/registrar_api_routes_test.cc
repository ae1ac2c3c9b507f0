#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "registrar/api/api_util.h"
#include "registrar/api/registrar_api.h"

using namespace sipwake::registrar;

TEST_CASE("the route table: unique method and path, one authentication per path", "[api]") {
  std::set<std::string> seen;
  std::map<std::string, ApiAuth> auth_of_path;
  for (const auto& r : RegistrarApi::routes()) {
    std::string key = std::string(r.method) + " " + std::string(r.pattern);
    INFO(key);
    CHECK(seen.insert(key).second);
    auto [it, fresh] = auth_of_path.emplace(std::string(r.pattern), r.auth);
    CHECK((fresh || it->second == r.auth));
    CHECK(r.pattern.substr(0, 1) == "/");
    bool admin_path = r.pattern.rfind("/v1/admin/", 0) == 0;
    CHECK(admin_path == (r.auth == ApiAuth::Admin));
  }
  CHECK(seen.count("POST /v1/admin/rotate-keys") == 1);
}

TEST_CASE("query strings: percent-decoding, refusals", "[api]") {
  auto q = parseQuery("state=registered&tenant=ac%2Dme&x=a+b&empty=&&");
  REQUIRE(q);
  CHECK(q->at("state") == "registered");
  CHECK(q->at("tenant") == "ac-me");
  CHECK(q->at("x") == "a b");
  CHECK(q->at("empty").empty());
  CHECK(parseQuery("")->empty());
  CHECK_FALSE(parseQuery("a=%zz"));
  CHECK_FALSE(parseQuery("a=%4"));
  CHECK_FALSE(parseQuery("a=1&a=2"));
  CHECK_FALSE(parseQuery("=1"));
}
