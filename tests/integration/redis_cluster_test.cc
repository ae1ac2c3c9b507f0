// Registrar and pushgw on a real 3-primary Redis Cluster (redis-cluster://):
// bindings whose keys live on different nodes register at Kamailio, ring
// and push; the admin API lists them from every node and leases work; then
// a binding's slot moves to another node while the services run (once at
// rest, MOVED; once half-way, ASK) and the binding keeps working.

#include <algorithm>
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "common/crypto/random.h"
#include "common/util/encoding.h"
#include "tests/support/kamailio_pbx.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

// Calls `user` through Kamailio; true once the caller got the 180 that says
// the push went out and the APNs mock got the push for `token`.
bool callRingsAndPushes(SipTestUa& caller, KamailioPbx& pbx, ApnsMock& apns, const std::string& user,
                        const std::string& token) {
  std::size_t before = apns.pushesFor(token).size();
  int call = caller.invite("sip:" + user + "@127.0.0.1",
                           "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp",
                           "sip:alice@127.0.0.1", "Alice",
                           "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                           "m=audio 40000 RTP/AVP 0\r\n");
  bool rang = caller.waitForPushStatus(call, "Push-Notification-Sent", 8000);
  bool pushed = waitUntil([&] { return apns.pushesFor(token).size() > before; }, 5000);
  caller.cancel(call);
  return rang && pushed;
}

std::string bindingKey(const std::string& id) {
  return "sipwake:binding:{acme/" + id + "}";
}

// A 64-hex-digit APNs token per binding.
std::string tokenFor(int n) {
  std::string hex = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  return hex + std::to_string(n % 10);
}

json apnsDevice(const std::string& token) {
  return json::array(
      {{{"id", "iphone"}, {"provider", "apns"}, {"token", token}, {"app", "com.example.talk"}}});
}

struct ClusterScenario {
  ClusterScenario()
      : registrar(cluster.url(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "4s"},
                                  {"REGISTRAR_CALL_DEVICE_CONNECT_TIMEOUT", "3s"}}),
        pushgw(cluster.url(), push.apps_file, "pushgw-1") {}

  void bind(const std::string& id, const std::string& user, const std::string& token) {
    json body = bindingBody(user, pbx.port(), "udp");
    body["devices"] = apnsDevice(token);
    auto reply = registrar.put(id, body);
    INFO(reply.body);
    REQUIRE(reply.status / 100 == 2);
  }
  // Calls `user` through Kamailio; true once the caller got the 180 that
  // says the push went out and the APNs mock got the push for `token`.
  bool callPushes(const std::string& user, const std::string& token) {
    return callRingsAndPushes(caller, pbx, *push.apns, user, token);
  }
  // What listed() got, and each node's binding keys, for a failure's report.
  std::string pages_seen;
  std::string whereabouts() {
    std::string out = pages_seen;
    for (uint16_t port : cluster.primaryPorts()) {
      out += std::to_string(port) + ":";
      for (const auto& key : cluster.client(port).keys("sipwake:binding:*")) out += " " + key;
      out += "\n";
    }
    return out;
  }
  std::set<std::string> listed() {
    pages_seen.clear();
    std::set<std::string> out;
    std::string cursor = "0";
    for (int page = 0; page < 50; ++page) {
      auto reply = registrar.admin("GET", "/v1/admin/bindings?limit=1&cursor=" + cursor);
      if (reply.status != 200) {
        out.insert("HTTP " + std::to_string(reply.status));
        break;
      }
      pages_seen += reply.body + "\n";
      json body = json::parse(reply.body);
      for (const auto& b : body["bindings"])
        out.insert(b.value("tenant", "") + "/" + b.value("id", ""));
      if (body["next_cursor"].is_null()) break;
      cursor = body["next_cursor"].get<std::string>();
    }
    return out;
  }
  // The primary serving `id`'s binding hash now, and that the hash is there.
  uint16_t nodeOf(const std::string& id) { return cluster.ownerOf(cluster.slotOf(bindingKey(id))); }
  uint16_t otherPrimary(uint16_t port) {
    for (uint16_t p : cluster.primaryPorts()) {
      if (p != port) return p;
    }
    return 0;
  }

  RedisCluster cluster;
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar;
  PushgwProcess pushgw;
  SipTestUa caller;
};

}  // namespace

TEST_CASE(
    "on Redis Cluster bindings on every node register, ring, push, list and move between nodes",
    "[redis-cluster]") {
  ClusterScenario s;

  // One binding per primary: their hashes live on three nodes.
  std::map<uint16_t, std::string> id_on;
  for (int i = 0; id_on.size() < 3 && i < 300; ++i) {
    std::string id = "phone" + std::to_string(i);
    id_on.emplace(s.nodeOf(id), id);
  }
  REQUIRE(id_on.size() == 3);
  std::map<std::string, std::string> user_of, token_of;
  int n = 0;
  for (const auto& [port, id] : id_on) {
    user_of[id] = std::to_string(2000 + n);
    token_of[id] = tokenFor(n++);
    s.bind(id, user_of[id], token_of[id]);
  }
  for (const auto& [port, id] : id_on) {
    CAPTURE(id, port);
    REQUIRE(s.registrar.waitForState(id, "registered", 15000));
    CHECK(s.cluster.client(port).hgetall(bindingKey(id)).at("state") == "registered");
    CHECK(s.pbx.contacts(user_of[id]).size() == 1);
  }

  // A call to each rings and pushes.
  for (const auto& [port, id] : id_on) {
    CAPTURE(id);
    CHECK(s.callPushes(user_of[id], token_of[id]));
  }

  // The admin listing pages through every node; the lease round works.
  std::set<std::string> expected;
  for (const auto& [port, id] : id_on) expected.insert("acme/" + id);
  CHECK(s.listed() == expected);
  json instances =
      json::parse(s.registrar.admin("GET", "/v1/admin/instances").body, nullptr, false);
  REQUIRE(instances["instances"].size() == 1);
  CHECK(instances["instances"][0]["leases"].get<int>() > 0);
  CHECK(s.registrar.metric("registrar_shard_leases") > 0);

  // MOVED: the first binding's slot moves to another primary at rest.
  auto it = id_on.begin();
  const std::string moved = it->second;
  uint16_t to = s.otherPrimary(it->first);
  int slot = s.cluster.slotOf(bindingKey(moved));
  s.cluster.moveSlot(slot, to);
  REQUIRE(s.cluster.ownerOf(slot) == to);
  const std::string new_token = tokenFor(7);
  s.bind(moved, user_of[moved], new_token);  // an update: the PUT script at the new node
  CHECK(s.cluster.client(to).hgetall(bindingKey(moved)).at("devices").find(new_token) !=
        std::string::npos);
  CHECK(s.registrar.binding(moved)["state"] == "registered");
  CHECK(s.callPushes(user_of[moved], new_token));  // fan-out script and stream after the move

  // ASK: the second binding's slot half-way through a migration: its hash
  // already at the target, its trace and call keys still at the source.
  ++it;
  const std::string asked = it->second;
  uint16_t from = it->first;
  to = s.otherPrimary(from);
  slot = s.cluster.slotOf(bindingKey(asked));
  s.cluster.beginMove(slot, to);
  s.cluster.migrateKey(slot, bindingKey(asked), to);
  CHECK_FALSE(s.cluster.client(from).exists(bindingKey(asked)));
  const std::string asked_token = tokenFor(8);
  s.bind(asked, user_of[asked],
         asked_token);                       // ASK at the source, ASKING + the script at the target
  s.cluster.client(to).command({"ASKING"});  // or the importing node answers MOVED
  CHECK(s.cluster.client(to).hgetall(bindingKey(asked)).at("devices").find(asked_token) !=
        std::string::npos);
  CHECK(s.registrar.binding(asked)["state"] == "registered");  // a read: ASK too
  s.cluster.finishMove(slot, to);
  CHECK(s.callPushes(user_of[asked], asked_token));
  CHECK(s.listed() == expected);

  // DELETE through the API on a moved binding and on one that never moved.
  CHECK(s.registrar.del(moved).status / 100 == 2);
  CHECK(s.registrar.del(id_on.rbegin()->second).status / 100 == 2);
  CHECK(waitUntil([&] { return s.pbx.contacts(user_of[moved]).empty(); }, 10000));
  CHECK_FALSE(s.cluster.client(s.nodeOf(moved)).exists(bindingKey(moved)));
  expected.erase("acme/" + moved);
  expected.erase("acme/" + id_on.rbegin()->second);
  auto listed = s.listed();
  INFO(s.whereabouts());
  CHECK(listed == expected);
}

TEST_CASE(
    "on Redis Cluster a primary's failover to its replica: bindings, pushes and outcomes carry on",
    "[redis-cluster]") {
  RedisCluster cluster({3, 1, ""});
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar(cluster.url(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "4s"},
                                             {"REGISTRAR_CALL_DEVICE_CONNECT_TIMEOUT", "3s"}});
  PushgwProcess pushgw(cluster.url(), push.apps_file, "pushgw-1");
  SipTestUa caller;

  // The first seed is where the registrar's outcome subscription sits; make
  // it a primary that also holds the binding, and kill it.
  const uint16_t seed = cluster.ports()[0];
  auto primaries = cluster.primaryPorts();
  REQUIRE(std::find(primaries.begin(), primaries.end(), seed) != primaries.end());
  std::string id;
  for (int i = 0; id.empty() && i < 300; ++i) {
    std::string candidate = "phone" + std::to_string(i);
    if (cluster.ownerOf(cluster.slotOf(bindingKey(candidate))) == seed) id = candidate;
  }
  REQUIRE_FALSE(id.empty());
  const std::string token = tokenFor(3);
  json body = bindingBody("3000", pbx.port(), "udp");
  body["devices"] = apnsDevice(token);
  REQUIRE(registrar.put(id, body).status / 100 == 2);
  REQUIRE(registrar.waitForState(id, "registered", 15000));
  // Its replica has the binding before the primary dies.
  REQUIRE(cluster.client(seed).command({"WAIT", "1", "2000"}).integer == 1);

  cluster.kill9(seed);
  REQUIRE(waitUntil([&] { return cluster.ownerOf(cluster.slotOf(bindingKey(id))) != seed; }, 20000,
                    200));
  REQUIRE(cluster.waitHealthy(20000));

  // A call still rings with the push sent: the fan-out at the new primary,
  // pushgw's stream, and the outcome through a subscription that moved to
  // the next seed.
  auto callPushes = [&] { return callRingsAndPushes(caller, pbx, *push.apns, "3000", token); };
  // The services may still be finding the new primary: a first call can
  // fail while they do (503 / no push), a later one must not.
  bool worked = false;
  int calls = 0;
  while (calls < 5 && !worked) {
    ++calls;
    worked = callPushes();
  }
  CHECK(worked);
  WARN("calls until one pushed after the failover: " << calls);
  body["devices"] = apnsDevice(tokenFor(4));
  CHECK(registrar.put(id, body).status / 100 == 2);
  CHECK(registrar.binding(id)["state"] == "registered");
}

TEST_CASE(
    "on Redis Cluster two registrar instances share the shards and forward a DELETE to the owner",
    "[redis-cluster]") {
  RedisCluster cluster;
  KamailioPbx pbx;
  TempDir keys("sipwake-keys");
  // Every instance opens every binding's credentials: one key file for both.
  writeFile(keys.file("credential_keys"),
            "k1 " + sipwake::base64Encode(sipwake::crypto::randomBytes(32)) + "\n");
  runCommand("chmod 600 " + shellQuote(keys.file("credential_keys")));
  std::vector<std::unique_ptr<RegistrarProcess>> r;
  for (int i = 1; i <= 2; ++i) {
    r.push_back(std::make_unique<RegistrarProcess>(
        cluster.url(),
        RegistrarProcess::Env{{"REGISTRAR_INSTANCE", "r" + std::to_string(i)},
                              {"REGISTRAR_LEASE_TTL", "3s"},
                              {"REGISTRAR_CREDENTIAL_KEYS_FILE", keys.file("credential_keys")}}));
  }
  // The lease round (keys under {ownership}) splits the shards between both.
  REQUIRE(waitUntil(
      [&] {
        return r[0]->metric("registrar_shard_leases") > 0 &&
               r[1]->metric("registrar_shard_leases") > 0;
      },
      15000, 200));
  json instances = json::parse(r[0]->admin("GET", "/v1/admin/instances").body, nullptr, false);
  CHECK(instances["instances"].size() == 2);

  for (int i = 0; i < 8; ++i) {
    json body = bindingBody(std::to_string(4000 + i), pbx.port(), "udp");
    body["devices"] = apnsDevice(tokenFor(i));
    REQUIRE(r[0]->put("multi" + std::to_string(i), body).status / 100 == 2);
  }
  std::map<std::string, int> owned_by;
  for (int i = 0; i < 8; ++i) {
    std::string id = "multi" + std::to_string(i);
    REQUIRE(r[0]->waitForState(id, "registered", 15000));
    ++owned_by[r[0]->binding(id).value("owner", "")];
  }
  CHECK(owned_by.size() == 2);  // each instance registers some

  // A DELETE through the instance that does not own the binding: forwarded
  // over pub/sub (PUBLISH counts only one node's subscribers here), answered
  // by the owner, which un-registers it at the PBX.
  std::string id, user;
  for (int i = 0; i < 8 && id.empty(); ++i) {
    std::string candidate = "multi" + std::to_string(i);
    if (r[0]->binding(candidate).value("owner", "") == "r2") {
      id = candidate;
      user = std::to_string(4000 + i);
    }
  }
  REQUIRE_FALSE(id.empty());
  REQUIRE(pbx.contacts(user).size() == 1);
  CHECK(r[0]->del(id).status == 204);
  CHECK(waitUntil(
      [&] {
        for (const auto& c : pbx.contacts(user)) {
          if (c.expires != 0) return false;
        }
        return true;
      },
      10000));
  CHECK(r[0]->get(id).status == 404);
}
