#include "registrar/api/binding_view.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/http/http_message.h"

using namespace sipwake;
using namespace sipwake::registrar;

// Found by tests/fuzz/binding_record: a stored field that is not UTF-8 (a
// PBX's reason phrase is kept as it came) made GET /v1/bindings/{id} throw
// while serializing, and the binding could only be read as a 500.
TEST_CASE("a binding whose stored texts are not UTF-8 is still shown", "[api]") {
  BindingFields fields = {{"tenant", "acme"},
                          {"id", "phone-1"},
                          {"state", "retrying"},
                          {"last_code", "403"},
                          {"last_reason", "Interdit \xe9t\xff"},
                          {"aor", "sip:1000@pbx.example.com"},
                          {"devices", "[]"}};
  nlohmann::json view = bindingView(fields, 1'700'000'000'000);
  http::Response response = http::jsonResponse(200, view);
  CHECK(response.status == 200);
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  REQUIRE(body.is_object());
  CHECK(body["last_response"]["code"] == 403);
  CHECK(body["last_response"]["reason"].get<std::string>().rfind("Interdit ", 0) == 0);
  CHECK(body["reason"].get<std::string>().find("403") != std::string::npos);
}
