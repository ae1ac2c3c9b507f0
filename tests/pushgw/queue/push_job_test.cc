#include "pushgw/queue/push_job.h"

#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace sipwake;
using namespace sipwake::pushgw;
using nlohmann::json;

namespace {

json callJob() {
  return {{"type", "call"},
          {"tenant", "acme"},
          {"binding", "phone"},
          {"device", {{"id", "iphone"}, {"provider", "apns"}, {"token", "a1b2"}, {"app", "com.example.talk"}}},
          {"call_id", "c-1"},
          {"from", "sip:alice@127.0.0.1"},
          {"from_name", "Alice"},
          {"to", "sip:1000@127.0.0.1"},
          {"sent_at", 1000},
          {"received_at", 990},
          {"expires_at", 61000},
          {"instance", "registrar-a"},
          {"relay", "sip:tok@127.0.0.1:5062;transport=tcp"}};
}

std::string parseError(const json& j) {
  std::string error;
  auto job = parsePushJob(j.dump(), error);
  return job ? "" : error;
}

}  // namespace

TEST_CASE("a registrar's call job parses and becomes the contract's payload", "[queue]") {
  std::string error;
  auto job = parsePushJob(callJob().dump(), error);
  REQUIRE(job);
  CHECK(job->bindingKey() == "acme/phone");
  CHECK(job->isCall());
  CHECK(job->device_id == "iphone");
  CHECK(job->received_at == 990);

  PushMessage m = toPushMessage(*job, 2000);
  CHECK(m.provider == "apns");
  CHECK(m.token == "a1b2");
  CHECK(m.environment == "production");  // defaults
  CHECK(m.push_type == "voip");
  CHECK(m.collapse_id == "c-1");
  CHECK(m.urgent);
  CHECK(m.expires_at > 2000);
  CHECK(m.expires_at <= 61000);
  CHECK(m.payload == json{{"type", "call"}, {"binding", "phone"}, {"sent_at", 1000}, {"call_id", "c-1"},
                          {"from", "sip:alice@127.0.0.1"}, {"from_name", "Alice"}, {"to", "sip:1000@127.0.0.1"},
                          {"relay", "sip:tok@127.0.0.1:5062;transport=tcp"}});
}

TEST_CASE("message and call_cancelled jobs carry their own fields", "[queue]") {
  json message = callJob();
  message["type"] = "message";
  message["body"] = "See you at 5";
  std::string error;
  auto job = parsePushJob(message.dump(), error);
  REQUIRE(job);
  CHECK(toPushMessage(*job, 2000).payload["body"] == "See you at 5");

  json cancelled = callJob();
  cancelled["type"] = "call_cancelled";
  cancelled["answered_elsewhere"] = true;
  job = parsePushJob(cancelled.dump(), error);
  REQUIRE(job);
  CHECK(toPushMessage(*job, 2000).payload["answered_elsewhere"] == true);
}

TEST_CASE("garbage jobs are refused with a reason, never half-parsed", "[queue]") {
  std::string error;
  CHECK_FALSE(parsePushJob("{not json", error));
  CHECK(error == "not a JSON object");
  CHECK_FALSE(parsePushJob("[1,2]", error));

  json j = callJob();
  j.erase("tenant");
  CHECK(parseError(j) == "missing 'tenant'");
  j = callJob();
  j["type"] = "rickroll";
  CHECK(parseError(j).find("unknown type") == 0);
  j = callJob();
  j.erase("call_id");
  CHECK(parseError(j) == "missing 'call_id'");  // a call needs its id
  j = callJob();
  j["sent_at"] = "yesterday";
  CHECK(parseError(j) == "'sent_at' must be an integer");
  j = callJob();
  j["from"] = std::string(600, 'x');
  CHECK(parseError(j).find("'from' must be a string of at most") == 0);
  j = callJob();
  j.erase("device");
  CHECK(parseError(j) == "missing 'device'");
  j = callJob();
  j["device"]["provider"] = "pigeon";
  CHECK(parseError(j) == "device: unknown provider");
  j = callJob();
  j["device"]["token"] = "";
  CHECK(parseError(j) == "device: empty token");
  j = callJob();
  j["device"]["token"] = 42;
  CHECK(parseError(j).find("device: 'token'") == 0);
}

TEST_CASE("test and binding_expiring jobs go to APNs as alerts, with their own fields", "[queue]") {
  json test = {{"type", "test"},       {"tenant", "acme"},      {"binding", "phone"},
               {"device", {{"id", "iphone"}, {"provider", "apns"}, {"token", "a1b2"},
                           {"app", "com.example.talk"}, {"push_type", "voip"}}},
               {"sent_at", 1000},       {"expires_at", 11000},   {"test_id", "t-1"},
               {"instance", "registrar-a"}, {"trace", {{"max", 50}, {"ttl", 3600}}}};
  std::string error;
  auto job = parsePushJob(test.dump(), error);
  REQUIRE(job);
  CHECK(job->test_id == "t-1");
  CHECK(job->trace_max == 50);
  CHECK(job->trace_ttl == 3600 * kSecond);
  PushMessage m = toPushMessage(*job, 2000);
  CHECK(m.push_type == "alert");  // a VoIP push that reports no call gets an iOS app killed
  CHECK(m.payload["type"] == "test");
  CHECK_FALSE(m.payload.contains("expires_at"));

  json expiring = test;
  expiring["type"] = "binding_expiring";
  expiring["expires_at"] = 86'400'000;
  expiring.erase("test_id");
  expiring.erase("trace");
  job = parsePushJob(expiring.dump(), error);
  REQUIRE(job);
  CHECK(job->trace_max == 0);
  m = toPushMessage(*job, 2000);
  CHECK(m.push_type == "alert");
  CHECK(m.payload["type"] == "binding_expiring");
  CHECK(m.payload["expires_at"] == 86'400'000);
  CHECK(m.expires_at == 86'400'000);
}
