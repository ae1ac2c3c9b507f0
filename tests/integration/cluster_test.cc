// Scale-out and failover: three registrars and a pushgw on one redis-server,
// Kamailio as the PBX. Assertions are on the PBX's location table (one live
// contact per binding, whose host:port says which instance holds it), the
// instances' metrics, and the pushes the APNs mock received.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include <catch2/catch.hpp>

#include "common/crypto/random.h"
#include "common/util/encoding.h"
#include "tests/support/kamailio_pbx.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

constexpr int kBindings = 300;
constexpr int kLeaseTtlSeconds = 3;
constexpr const char* kSdp =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string user(int i) { return "cl" + std::to_string(i); }

// Live contacts of one AOR (expired or deleted ones excluded).
std::vector<PbxContact> live(const std::vector<PbxContact>& contacts) {
  std::vector<PbxContact> out;
  for (const auto& c : contacts) {
    if (c.expires != 0) out.push_back(c);
  }
  return out;
}

// The SIP port in a Contact URI sip:token@127.0.0.1:PORT;transport=udp.
int portOf(const std::string& uri) {
  auto at = uri.find('@');
  auto colon = uri.find(':', at);
  return colon == std::string::npos ? 0 : std::atoi(uri.c_str() + colon + 1);
}

struct Cluster {
  Cluster() {
    // Every instance opens every binding's credentials: one key file for all.
    writeFile(keys.file("credential_keys"), "k1 " + sipwake::base64Encode(sipwake::crypto::randomBytes(32)) + "\n");
    runCommand("chmod 600 " + shellQuote(keys.file("credential_keys")));
    for (int i = 1; i <= 3; ++i) {
      registrars.push_back(std::make_unique<RegistrarProcess>(
          redis.url(), RegistrarProcess::Env{{"REGISTRAR_INSTANCE", "r" + std::to_string(i)},
                                             {"REGISTRAR_LEASE_TTL", std::to_string(kLeaseTtlSeconds) + "s"},
                                             {"REGISTRAR_HANDOVER_TIMEOUT", "12s"},
                                             {"REGISTRAR_CREDENTIAL_KEYS_FILE", keys.file("credential_keys")},
                                             {"REGISTRAR_LOG_LEVEL", "debug"}}));
    }
  }

  RegistrarProcess& r(int i) { return *registrars[static_cast<std::size_t>(i - 1)]; }

  // PBX view: user -> live contacts.
  std::map<std::string, std::vector<PbxContact>> contacts() const {
    std::map<std::string, std::vector<PbxContact>> out;
    for (auto& [aor, list] : pbx.allContacts()) out[aor] = live(list);
    return out;
  }

  // How many bindings have exactly one live contact, on one of `ports`.
  int singleContactsOn(const std::set<int>& ports) const {
    int n = 0;
    auto all = contacts();
    for (int i = 0; i < kBindings; ++i) {
      auto it = all.find(user(i));
      if (it != all.end() && it->second.size() == 1 && ports.count(portOf(it->second[0].uri))) ++n;
    }
    return n;
  }

  // What the PBX holds, for failure messages: "port:count ..." and how many
  // bindings have none or several contacts.
  std::string describe() const {
    std::map<int, int> per_port;
    int none = 0, several = 0;
    auto all = contacts();
    for (int i = 0; i < kBindings; ++i) {
      auto it = all.find(user(i));
      if (it == all.end() || it->second.empty()) {
        ++none;
      } else if (it->second.size() > 1) {
        ++several;
      } else {
        ++per_port[portOf(it->second[0].uri)];
      }
    }
    std::string out = "no contact: " + std::to_string(none) + ", several: " + std::to_string(several);
    for (auto& [port, n] : per_port) out += ", port " + std::to_string(port) + ": " + std::to_string(n);
    return out;
  }

  bool waitForLeases(int instances, int timeout_ms) {
    return waitUntil(
        [&] {
          double total = 0;
          for (int i = 1; i <= instances; ++i) {
            if (!r(i).running()) continue;
            double owned = r(i).metric("registrar_shard_leases");
            if (owned <= 0) return false;
            total += owned;
          }
          return total == 64;
        },
        timeout_ms);
  }

  int call(const std::string& to_user) {
    return caller.invite("sip:" + to_user + "@127.0.0.1",
                         "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp",
                         "sip:alice@127.0.0.1", "Alice Caller", kSdp);
  }
  bool ringsAndPushes(const std::string& to_user) {
    std::size_t before = push.apns->pushCount();
    int c = call(to_user);
    bool alerted = caller.waitForResponse(c, [](const SipMessageRecord& m) {
      return m.status == 180 && m.header("x-push-status") == "Alerting-Device";
    }, 5000);
    bool pushed = waitUntil([&] { return push.apns->pushCount() > before; }, 5000);
    caller.cancel(c);
    return alerted && pushed;
  }

  TempDir keys{"sipwake-cluster"};
  RedisServer redis;
  KamailioPbx pbx{[] {
    KamailioPbxOptions o;
    o.log_registers = false;
    o.shm_mb = 128;
    return o;
  }()};
  PushTestSetup push;
  std::vector<std::unique_ptr<RegistrarProcess>> registrars;
  PushgwProcess pushgw{redis.url(), push.apps_file, "pushgw-1"};
  SipTestUa caller;
};

}  // namespace

TEST_CASE("three registrars share 300 bindings, take over a killed one's and hand over on SIGTERM",
          "[cluster]") {
  Cluster cluster;
  REQUIRE(cluster.waitForLeases(3, 20000));

  // Each PUT goes to a different instance's API: any API serves any binding.
  for (int i = 0; i < kBindings; ++i) {
    json body = bindingBody(user(i), cluster.pbx.port(), "udp");
    body["devices"] = json::array({body["devices"][0]});  // APNs only
    auto reply = cluster.r(i % 3 + 1).put("b" + std::to_string(i), body);
    REQUIRE(reply.status == 201);
  }
  std::set<int> all_ports = {cluster.r(1).sipPort(), cluster.r(2).sipPort(), cluster.r(3).sipPort()};
  bool all_registered =
      waitUntil([&] { return cluster.singleContactsOn(all_ports) == kBindings; }, 60000, 250);
  INFO(cluster.describe());
  REQUIRE(all_registered);

  SECTION("the bindings are spread: no instance registers more than 45 %") {
    std::map<int, int> per_port;
    for (auto& [aor, list] : cluster.contacts()) {
      if (aor.rfind("cl", 0) == 0 && list.size() == 1) ++per_port[portOf(list[0].uri)];
    }
    double total = 0;
    for (int i = 1; i <= 3; ++i) {
      int held = per_port[cluster.r(i).sipPort()];
      std::printf("cluster: r%d registers %d of %d bindings\n", i, held, kBindings);
      CHECK(held <= kBindings * 45 / 100);
      CHECK(held > 0);
      double registered = cluster.r(i).metric("registrar_bindings", "state=\"registered\"");
      CHECK(registered == held);
      total += registered;
    }
    CHECK(total == kBindings);
    // GET through an instance that does not hold the binding shows its owner.
    json view = cluster.r(1).binding("b1");
    CHECK(view.value("state", "") == "registered");
    CHECK(view.value("owner", "").rfind("r", 0) == 0);
  }

  SECTION("any instance's API serves any binding: a DELETE through a non-owner un-registers") {
    // b0..b2 were PUT through r1..r3; find one whose owner is another instance.
    for (int i = 0; i < 3; ++i) {
      std::string id = "b" + std::to_string(i);
      std::string owner = cluster.r(1).binding(id).value("owner", "");
      int via = owner == "r1" ? 2 : 1;
      if (owner == "r" + std::to_string(via)) continue;
      INFO(id << " owned by " << owner << ", deleted through r" << via);
      CHECK(cluster.r(via).del(id).status == 204);
      CHECK(cluster.r(via).get(id).status == 404);
      CHECK(waitUntil([&] { return live(cluster.pbx.contacts(user(i))).empty(); }, 5000, 100));
    }
  }

  SECTION("kill -9: survivors take the bindings over within the bound, one contact each") {
    std::set<int> r2_port = {cluster.r(2).sipPort()};
    std::vector<std::string> r2_users;
    for (auto& [aor, list] : cluster.contacts()) {
      if (list.size() == 1 && portOf(list[0].uri) == cluster.r(2).sipPort()) r2_users.push_back(aor);
    }
    REQUIRE(!r2_users.empty());
    auto killed_at = Clock::now();
    cluster.r(2).kill9();
    std::set<int> survivors = {cluster.r(1).sipPort(), cluster.r(3).sipPort()};
    // The lease runs out after kLeaseTtlSeconds; the bound is 15 s after that.
    bool moved = waitUntil([&] { return cluster.singleContactsOn(survivors) == kBindings; },
                           (kLeaseTtlSeconds + 15) * 1000, 250);
    double took = secondsSince(killed_at);
    std::printf("cluster: %zu bindings of the killed instance registered by survivors %.1f s after kill -9 "
                "(lease TTL %d s)\n",
                r2_users.size(), took, kLeaseTtlSeconds);
    REQUIRE(moved);
    CHECK(cluster.singleContactsOn(r2_port) == 0);
    CHECK(cluster.r(1).metric("registrar_shard_leases") + cluster.r(3).metric("registrar_shard_leases") == 64);
    // Calls to taken-over bindings ring and push again.
    for (std::size_t i = 0; i < std::min<std::size_t>(3, r2_users.size()); ++i) {
      INFO(r2_users[i]);
      CHECK(cluster.ringsAndPushes(r2_users[i]));
    }
  }

  SECTION("SIGTERM: the bindings move with a registered contact at every moment") {
    std::vector<std::string> r3_users;
    for (auto& [aor, list] : cluster.contacts()) {
      if (list.size() == 1 && portOf(list[0].uri) == cluster.r(3).sipPort()) r3_users.push_back(aor);
    }
    REQUIRE(!r3_users.empty());
    const int moving = static_cast<int>(r3_users.size());
    std::atomic<bool> polling{true};
    std::atomic<int> polls{0}, failed_polls{0}, worst{moving};
    std::thread poller([&] {
      while (polling) {
        auto seen = cluster.pbx.contactsOf(r3_users);
        if (seen.empty()) {  // kamcmd gave no answer (the PBX always knows some of them)
          ++failed_polls;
          continue;
        }
        int covered = 0;
        for (const auto& u : r3_users) {
          auto it = seen.find(u);
          if (it != seen.end() && !live(it->second).empty()) ++covered;
        }
        worst = std::min(worst.load(), covered);
        ++polls;
      }
    });
    auto stopped_at = Clock::now();
    cluster.r(3).stop();  // SIGTERM; throws unless it exits cleanly
    double took = secondsSince(stopped_at);
    std::set<int> others = {cluster.r(1).sipPort(), cluster.r(2).sipPort()};
    bool single = waitUntil([&] { return cluster.singleContactsOn(others) == kBindings; }, 10000, 250);
    polling = false;
    poller.join();
    std::printf("cluster: SIGTERM'd instance exited after %.1f s; %d PBX polls of its %d bindings (%d "
                "unanswered), fewest with a contact in any poll: %d\n",
                took, polls.load(), moving, failed_polls.load(), worst.load());
    CHECK(polls >= 5);
    CHECK(worst == moving);
    CHECK(single);
    CHECK(cluster.r(1).metric("registrar_shard_leases") + cluster.r(2).metric("registrar_shard_leases") == 64);
  }
}
