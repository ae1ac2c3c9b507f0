#include "pushgw/queue/job_stream.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/redis_server.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using sipwake::testing::RedisClient;
using sipwake::testing::RedisServer;
using sipwake::testing::waitUntil;
using nlohmann::json;

namespace {

std::string messageJob(int n) {
  return json({{"type", "message"},
               {"tenant", "acme"},
               {"binding", "phone"},
               {"device", {{"id", "iphone"}, {"provider", "apns"}, {"token", "a1b2"}, {"app", "com.example.talk"}}},
               {"body", "message " + std::to_string(n)}})
      .dump();
}

long long streamLength(RedisClient& redis) { return redis.command({"XLEN", kJobStreamKey}).integer; }

}  // namespace

TEST_CASE("the job stream trims only what every group acknowledged", "[pushgw][redis]") {
  RedisServer server;
  RedisClient redis(server.port());
  redis.command({"XGROUP", "CREATE", kJobStreamKey, "pushgw", "$", "MKSTREAM"});
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(redis.command({"XADD", kJobStreamKey, "*", "job", messageJob(i)}).str);
  }
  // A consumer that holds the first five and never acknowledges them.
  redis.command({"XREADGROUP", "GROUP", "pushgw", "holder", "COUNT", "5", "STREAMS", kJobStreamKey, ">"});

  JobStream::Options options;
  options.url = redis::parseRedisUrl(server.url());
  options.consumer = "worker";
  options.claim_idle = kHour;  // nothing reclaimed here
  options.trim_interval = 50;
  JobStream* stream_ptr = nullptr;
  std::atomic<std::size_t> handled{0};
  JobStream stream(options, [&](std::vector<PushJob>&& jobs) {
    for (const auto& job : jobs) stream_ptr->ack(job.entry_id);
    handled += jobs.size();
  });
  stream_ptr = &stream;
  stream.start();
  REQUIRE(waitUntil([&] { return handled == 15 && stream.outstanding() == 0; }, 5000));
  // Acknowledged entries 6..20 lie above the held ones: nothing may go.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several trim rounds
  CHECK(streamLength(redis) == 20);
  CHECK(stream.trims().acknowledged == 0);

  // A second group that has read nothing keeps everything too.
  redis.command({"XGROUP", "CREATE", kJobStreamKey, "audit", "0"});
  redis.command({"XACK", kJobStreamKey, "pushgw", ids[0], ids[1], ids[2], ids[3], ids[4]});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several trim rounds
  CHECK(streamLength(redis) == 20);

  // Once every group is through, all but the last delivered entry go.
  redis.command({"XGROUP", "DESTROY", kJobStreamKey, "audit"});
  REQUIRE(waitUntil([&] { return streamLength(redis) == 1; }, 3000));
  CHECK(stream.trims().acknowledged == 19);
  // New jobs still flow after the trim.
  redis.command({"XADD", kJobStreamKey, "*", "job", messageJob(20)});
  REQUIRE(waitUntil([&] { return handled == 16; }, 3000));
  stream.stop();
}

TEST_CASE("jobs under way longer than claim_idle stay with their live consumer, a dead one's are taken over",
          "[pushgw][redis]") {
  RedisServer server;
  RedisClient redis(server.port());
  JobStream::Options options;
  options.url = redis::parseRedisUrl(server.url());
  options.claim_idle = 1000;
  std::mutex mutex;
  std::vector<std::string> slow_ids, other_ids;
  options.consumer = "slow";
  JobStream slow(options, [&](std::vector<PushJob>&& jobs) {
    std::lock_guard lock(mutex);
    for (const auto& job : jobs) slow_ids.push_back(job.entry_id);
  });
  slow.start();
  for (int i = 0; i < 5; ++i) redis.command({"XADD", kJobStreamKey, "*", "job", messageJob(i)});
  REQUIRE(waitUntil([&] { return slow.outstanding() == 5; }, 3000));

  options.consumer = "other";
  JobStream* other_ptr = nullptr;
  JobStream other(options, [&](std::vector<PushJob>&& jobs) {
    std::lock_guard lock(mutex);
    for (const auto& job : jobs) {
      other_ids.push_back(job.entry_id);
      other_ptr->ack(job.entry_id);
    }
  });
  other_ptr = &other;
  other.start();
  // Three times claim_idle: "slow" still works on them (a long retry).
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  {
    std::lock_guard lock(mutex);
    CHECK(other_ids.empty());
  }
  // "slow" dies without a word: "other" takes the five over, once each.
  slow.stop();
  REQUIRE(waitUntil([&] {
    std::lock_guard lock(mutex);
    return other_ids.size() == 5;
  }, 5000));
  REQUIRE(waitUntil([&] {
    auto summary = redis.command({"XPENDING", kJobStreamKey, "pushgw"});
    return !summary.elements.empty() && summary.elements[0].integer == 0;
  }, 3000));
  std::lock_guard lock(mutex);
  CHECK(std::set<std::string>(other_ids.begin(), other_ids.end()) ==
        std::set<std::string>(slow_ids.begin(), slow_ids.end()));
  other.stop();
}
