#include "registrar/push/push_job_writer.h"

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include "common/redis/redis_url.h"
#include "registrar/binding/binding_store.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::testing::RedisClient;
using sipwake::testing::RedisServer;
using sipwake::testing::waitUntil;
using nlohmann::json;

namespace {

// A binding hash as the store keeps it, with two devices.
void storeBinding(RedisClient& redis, const std::string& key) {
  json devices = json::array({{{"id", "iphone"}, {"provider", "apns"}, {"token", "a1"}, {"app", "com.example.talk"}},
                              {{"id", "pixel"}, {"provider", "fcm"}, {"token", "f1"}, {"app", "example-project"}}});
  auto slash = key.find('/');
  redis.command({"HSET", bindingRedisKey(key), "tenant", key.substr(0, slash), "id", key.substr(slash + 1),
                 "devices", devices.dump()});
}

PushRequest callPush(const std::string& call_id) {
  return PushRequest{"call", "acme/phone", call_id, "sip:alice@127.0.0.1", "Alice", "sip:1000@127.0.0.1",
                     "", false, 1000, 61000, "sip:tok@127.0.0.1:5062;transport=tcp"};
}

std::vector<json> jobs(RedisClient& redis) { return redis.pushJobs(); }

}  // namespace

TEST_CASE("one call id is pushed once per device, however many instances see it", "[calls][redis]") {
  RedisServer server;
  RedisClient redis(server.port());
  storeBinding(redis, "acme/phone");
  auto url = redis::parseRedisUrl(server.url());
  PushJobWriter a(url, "registrar-a"), b(url, "registrar-b");
  a.start();
  b.start();

  // The PBX forked the INVITE to two instances, and one of them saw it twice.
  a.enqueue(callPush("call-1"));
  b.enqueue(callPush("call-1"));
  a.enqueue(callPush("call-1"));
  REQUIRE(waitUntil([&] { return jobs(redis).size() >= 2; }, 5000));
  a.enqueue(callPush("call-2"));  // a later call still gets its pushes
  REQUIRE(waitUntil([&] { return jobs(redis).size() >= 4; }, 5000));
  auto written = jobs(redis);
  REQUIRE(written.size() == 4);
  std::multiset<std::string> per_device;
  for (const auto& j : written) per_device.insert(j["call_id"].get<std::string>() + "/" + j["device"]["id"].get<std::string>());
  CHECK(per_device == std::multiset<std::string>{"call-1/iphone", "call-1/pixel", "call-2/iphone", "call-2/pixel"});
  const json& first = written[0];
  CHECK(first["type"] == "call");
  CHECK(first["tenant"] == "acme");
  CHECK(first["binding"] == "phone");
  CHECK(first["from"] == "sip:alice@127.0.0.1");
  CHECK(first["from_name"] == "Alice");
  CHECK(first["received_at"] == 1000);
  CHECK(first["expires_at"] == 61000);
  CHECK(first["device"]["token"] == "a1");
  CHECK(first["relay"] == "sip:tok@127.0.0.1:5062;transport=tcp");
  // The call state names the instance that won, for the outcomes.
  auto owner = redis.command({"HGET", callStateKey("acme/phone", "call-1"), "instance"});
  CHECK((owner.str == "registrar-a" || owner.str == "registrar-b"));
  CHECK(redis.command({"TTL", callStateKey("acme/phone", "call-1")}).integer > 0);

  // The call ends: pushgw reads "ended" and stops retrying it.
  a.callEnded("acme/phone", "call-1");
  CHECK(waitUntil([&] {
    return redis.command({"HGET", callStateKey("acme/phone", "call-1"), "state"}).str == "ended";
  }, 5000));
  a.stop();
  b.stop();
}

TEST_CASE("messages are pushed every time, a binding that is gone gets nothing", "[calls][redis]") {
  RedisServer server;
  RedisClient redis(server.port());
  storeBinding(redis, "acme/phone");
  PushJobWriter writer(redis::parseRedisUrl(server.url()), "registrar-a");
  writer.start();
  PushRequest message{"message", "acme/phone", "msg-1", "sip:bob@127.0.0.1", "", "sip:1000@127.0.0.1",
                      "hello", false, 1000, 2000, ""};
  writer.enqueue(message);
  writer.enqueue(message);  // MESSAGEs are not deduplicated: each is news
  REQUIRE(waitUntil([&] { return jobs(redis).size() == 4; }, 5000));
  CHECK(jobs(redis)[0]["body"] == "hello");
  CHECK_FALSE(jobs(redis)[0].contains("relay"));

  PushRequest orphan = callPush("call-9");
  orphan.binding_key = "acme/gone";
  writer.enqueue(orphan);
  writer.enqueue(callPush("call-10"));  // written after the orphan, so the orphan was handled
  REQUIRE(waitUntil([&] { return jobs(redis).size() == 6; }, 5000));
  for (const auto& j : jobs(redis)) CHECK(j["binding"] == "phone");
  writer.stop();
}

TEST_CASE("pushes written while Redis is down wait in order and go out when it returns", "[calls][redis]") {
  RedisServer server;  // AOF: the binding survives the restart
  {
    RedisClient redis(server.port());
    storeBinding(redis, "acme/phone");
  }
  PushJobWriter writer(redis::parseRedisUrl(server.url()), "registrar-a");
  writer.start();
  server.stop();
  Millis now = SystemClock::instance().now();
  PushRequest call = callPush("call-outage");
  call.expires_at = now + 30 * kSecond;
  PushRequest message{"message", "acme/phone", "msg-outage", "sip:bob@127.0.0.1", "", "sip:1000@127.0.0.1",
                      "sent while Redis was down", false, now, now + 30 * kSecond, ""};
  writer.enqueue(call);
  writer.enqueue(message);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a few failed attempts
  server.start();
  RedisClient redis(server.port());
  REQUIRE(waitUntil([&] { return jobs(redis).size() == 4; }, 5000));
  auto written = jobs(redis);
  CHECK(written[0]["call_id"] == "call-outage");
  CHECK(written[1]["call_id"] == "call-outage");
  CHECK(written[2]["body"] == "sent while Redis was down");
  writer.stop();
}

TEST_CASE("over its bound the job stream refuses new jobs, counted, and keeps the old ones", "[calls][redis]") {
  RedisServer server;
  RedisClient redis(server.port());
  storeBinding(redis, "acme/phone");
  prometheus::Registry registry;
  PushJobWriter writer(redis::parseRedisUrl(server.url()), "registrar-a", &registry, 2);
  writer.start();
  writer.enqueue(callPush("call-1"));  // two devices: the stream reaches its bound
  REQUIRE(waitUntil([&] { return jobs(redis).size() == 2; }, 5000));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the length is read once a second
  writer.enqueue(callPush("call-2"));
  writer.enqueue(callPush("call-3"));
  auto refused = [&] {
    for (const auto& family : registry.Collect()) {
      if (family.name == "registrar_push_jobs_refused_total") return family.metric.at(0).counter.value;
    }
    return -1.0;
  };
  REQUIRE(waitUntil([&] { return refused() == 4; }, 5000));
  auto written = jobs(redis);
  REQUIRE(written.size() == 2);
  CHECK(written[0]["call_id"] == "call-1");
  writer.stop();
}
