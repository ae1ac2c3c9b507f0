// Fuzzes the HTTP API from bytes on the socket to the answer, without a
// network: the HTTP/1.1 request parser, then RegistrarApi::handle (routing,
// authentication, PUT body and ack validation). The store thread is not
// started, so requests that pass validation stop at the Redis job queue.
// Properties: no crash; the parser yields the same requests whether the
// bytes come at once or in small pieces; every error answer has the
// {"error":{"code","message"}} shape; a PUT's password never shows up in an
// answer or a log line, nor does the API key in a log line.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/crypto/credential_sealer.h"
#include "common/crypto/random.h"
#include "common/http/request_parser.h"
#include "registrar/api/registrar_api.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::fuzz::contains;

namespace {

// Not a secret: the seeds carry it so that inputs get past authentication.
constexpr const char* kApiKey = "fuzz-only-api-key";

struct FakeEngine : RegistrationControl {
  void upsert(RegistrationSpec) override {}
  void remove(std::string, std::function<void(bool)> done) override { done(false); }
  void deviceAck(std::string, std::string device, std::string, std::string,
                 std::function<void(bool)> done) override {
    done(device.size() % 2 == 0);
  }
};

struct World {
  EventLoop loop;
  ApiKeyRing keys = ApiKeyRing::parse(std::string("acme ") + kApiKey + "\n");
  crypto::CredentialSealer sealer{{{"fuzz", crypto::randomBytes(32)}}};
  FakeEngine engine;
  std::string canary = "pw-" + crypto::randomToken(120);  // never in an input
};

World& world() {
  static World* w = [] {
    fuzz::captureLogs();
    return new World;
  }();
  return *w;
}

std::string describe(const http::ParseResult& r) {
  if (r.kind == http::ParseResult::Kind::Error) return "E" + std::to_string(r.error.status);
  const auto& q = r.request;
  std::string out = "C" + q.method + " " + q.target + " " + std::to_string(r.keep_alive);
  for (const auto& [k, v] : q.headers) out += "|" + k + ":" + v;
  return out + "|" + q.body;
}

// Everything the parser yields from `bytes` fed in pieces of `piece` bytes
// (0: all at once).
std::vector<http::ParseResult> parseAll(std::string_view bytes, std::size_t piece) {
  http::ParserLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_body_bytes = 4096;
  http::RequestParser parser(limits);
  std::vector<http::ParseResult> out;
  auto collect = [&](http::ParseResult r) {
    while (r.kind != http::ParseResult::Kind::NeedMore) {
      bool error = r.kind == http::ParseResult::Kind::Error;
      out.push_back(std::move(r));
      if (error || out.size() >= 16) return false;
      r = parser.next();
    }
    return true;
  };
  if (piece == 0) {
    collect(parser.feed(bytes));
    return out;
  }
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    if (!collect(parser.feed(bytes.substr(at, piece)))) break;
  }
  return out;
}

void checkAnswer(const http::Response& r, std::string_view secret) {
  FUZZ_CHECK(r.status >= 100 && r.status <= 599);
  FUZZ_CHECK(!contains(r.body, secret));
  for (const auto& [k, v] : r.headers) FUZZ_CHECK(!contains(v, secret));
  if (r.status < 400) return;
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  FUZZ_CHECK(body.is_object() && body.contains("error") && body["error"].is_object());
  FUZZ_CHECK(body["error"].value("code", nlohmann::json()).is_string());
  FUZZ_CHECK(body["error"].value("message", nlohmann::json()).is_string());
}

void handle(World& w, http::Request request, std::string_view secret) {
  StoreWorker store(StoreWorker::Options{});  // never started: jobs just queue
  ApiOptions options;
  options.contacts.udp_tcp = "192.0.2.1:5060";
  RegistrarApi api(w.loop, options, w.keys, w.sealer, store, w.engine,
                   [] { return std::nullopt; }, [] { return std::string("# metrics\n"); });
  int answers = 0;
  api.handle(std::move(request), [&answers, secret](http::Response r) {
    ++answers;
    checkAnswer(r, secret);
  });
  w.loop.stop();
  w.loop.run();  // answers posted back to the API loop
  FUZZ_CHECK(answers <= 1);
}

// The request with its PUT body's password (if any) replaced by the canary.
std::optional<http::Request> withCanary(const http::Request& request, const std::string& canary) {
  auto body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.contains("auth") || !body["auth"].is_object()) return std::nullopt;
  body["auth"]["password"] = canary;
  http::Request copy = request;
  copy.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return copy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  fuzz::loggedText().clear();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // libFuzzer learns the canary from the comparisons below; an input that
  // carries it may see it echoed (an unknown field name), which is fine.
  const std::string_view secret = contains(bytes, w.canary) ? std::string_view() : w.canary;

  auto whole = parseAll(bytes, 0);
  auto pieces = parseAll(bytes, 1 + size % 7);
  FUZZ_CHECK(whole.size() == pieces.size());
  for (std::size_t i = 0; i < whole.size(); ++i) FUZZ_CHECK(describe(whole[i]) == describe(pieces[i]));

  for (auto& result : whole) {
    if (result.kind != http::ParseResult::Kind::Complete) continue;
    if (auto canaried = withCanary(result.request, w.canary)) handle(w, std::move(*canaried), secret);
    handle(w, std::move(result.request), secret);
  }
  FUZZ_CHECK(!contains(fuzz::loggedText(), secret));
  FUZZ_CHECK(!contains(fuzz::loggedText(), kApiKey));
  return 0;
}
