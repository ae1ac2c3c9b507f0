// Fuzzes a push job from the Redis stream to the provider request: the job
// JSON the registrar wrote (pushgw/queue/push_job), the provider-independent
// message, and the APNs and FCM HTTP/2 requests built from it.
// Properties: no crash; a job either parses or says why; built requests fit
// the providers' size limits, carry valid JSON and no CR/LF/NUL in any
// header (nghttp2 would reset the stream, or worse, a proxy split it).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pushgw/provider/apns/apns_request.h"
#include "pushgw/provider/fcm/fcm_request.h"
#include "pushgw/queue/push_job.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::pushgw;

namespace {

void checkRequest(const http2::Request& r, std::size_t body_limit) {
  FUZZ_CHECK(!r.path.empty() && r.path.front() == '/');
  FUZZ_CHECK(r.path.find_first_of(std::string_view("\r\n\0 ", 4)) == std::string::npos);
  for (const auto& [name, value] : r.headers) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(name.find_first_of(std::string_view("\r\n\0:", 4)) == std::string::npos);
    FUZZ_CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
  }
  FUZZ_CHECK(r.body.size() <= body_limit);
  FUZZ_CHECK(nlohmann::json::accept(r.body));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto job = parsePushJob(text, error);
  if (!job) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(job->provider == "apns" || job->provider == "fcm");
  FUZZ_CHECK(!job->token.empty());

  const Millis now = 1'700'000'000'000;
  PushMessage message = toPushMessage(*job, now);
  FUZZ_CHECK(message.payload.is_object());
  if (job->isCall()) FUZZ_CHECK(message.expires_at <= now + 30'000);

  std::string why;
  if (auto apns = buildApnsRequest(message, "provider-token", &why)) {
    checkRequest(*apns, kApnsVoipPayloadLimit);
  } else {
    FUZZ_CHECK(!why.empty());
  }
  why.clear();
  if (auto fcm = buildFcmRequest(message, job->app, "access-token", now, &why)) {
    checkRequest(*fcm, 2 * kFcmDataLimit + 1024);
  } else {
    FUZZ_CHECK(!why.empty());
  }
  return 0;
}
