// The operators' API (/v1/admin) against a real registrar, redis-server and
// Kamailio: every tenant's bindings by state, instances and the push queue,
// deleting any binding, log levels at run time, and credential key rotation
// without downtime.

#include <csignal>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "common/crypto/credential_sealer.h"
#include "common/crypto/random.h"
#include "common/util/encoding.h"
#include "tests/support/kamailio_pbx.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

json bodyOf(const HttpReply& reply) { return json::parse(reply.body, nullptr, false); }

std::string errorCode(const HttpReply& reply) {
  json body = bodyOf(reply);
  return body.is_object() && body.contains("error") ? body["error"]["code"].get<std::string>()
                                                    : "(not an error body)";
}

// The key id of every stored credential, by binding key.
std::map<std::string, std::string> storedKeyIds(RedisClient& redis) {
  std::map<std::string, std::string> out;
  for (const auto& key : redis.keys("sipwake:binding:*")) {
    auto fields = redis.hgetall(key);
    auto blob = fields.find("credential");
    if (blob == fields.end()) continue;
    out[key] = sipwake::crypto::CredentialSealer::keyIdOf(blob->second).value_or("(malformed)");
  }
  return out;
}

std::set<std::string> ids(const json& bindings) {
  std::set<std::string> out;
  for (const auto& b : bindings) out.insert(b["tenant"].get<std::string>() + "/" + b["id"].get<std::string>());
  return out;
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Every user has a REGISTER the PBX accepted (200, with credentials) sent after `since`.
bool allRegisteredSince(const KamailioPbx& pbx, const std::vector<std::string>& users, double since) {
  for (const auto& user : users) {
    bool found = false;
    for (const auto& r : pbx.registersFor(user)) {
      if (r.time >= since && r.reply_code == 200 && r.auth && r.expires != "0") found = true;
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("admin API: every tenant's bindings by state, instances and queue, delete any, log level",
          "[registrar][admin]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("a1", bindingBody("8100", pbx.port())).status == 201);
  REQUIRE(registrar.put("a2", bindingBody("8101", pbx.port(), "tcp")).status == 201);
  REQUIRE(registrar.put("g1", bindingBody("8102", pbx.port()), kOtherTenantKey).status == 201);
  // Not this user's PBX password: rejected three times, then failed.
  REQUIRE(registrar.put("bad", bindingBody("8103", pbx.port(), "udp", "Wrong-Secret-8103")).status == 201);
  REQUIRE(registrar.waitForState("a1", "registered", 10000));
  REQUIRE(registrar.waitForState("a2", "registered", 10000));
  REQUIRE(registrar.waitForState("bad", "failed", 30000));
  REQUIRE(waitUntil([&] { return registrar.get("g1", kOtherTenantKey).body.find("\"registered\"") != std::string::npos; },
                    10000));

  SECTION("listing by state and tenant, paged, never a credential") {
    auto all = registrar.admin("GET", "/v1/admin/bindings");
    REQUIRE(all.status == 200);
    json body = bodyOf(all);
    CHECK(ids(body["bindings"]) == std::set<std::string>{"acme/a1", "acme/a2", "acme/bad", "globex/g1"});
    CHECK(body["next_cursor"].is_null());
    CHECK(all.body.find("pw-8100") == std::string::npos);
    CHECK(all.body.find("Wrong-Secret-8103") == std::string::npos);
    CHECK(all.body.find("\"credential\"") == std::string::npos);
    for (const auto& b : body["bindings"]) CHECK_FALSE(b.contains("auth"));

    CHECK(ids(bodyOf(registrar.admin("GET", "/v1/admin/bindings?state=registered"))["bindings"]) ==
          std::set<std::string>{"acme/a1", "acme/a2", "globex/g1"});
    json failed = bodyOf(registrar.admin("GET", "/v1/admin/bindings?state=failed"))["bindings"];
    REQUIRE(failed.size() == 1);
    CHECK(failed[0]["id"] == "bad");
    CHECK(failed[0]["failure_reason"] == "auth_rejected");
    CHECK(ids(bodyOf(registrar.admin("GET", "/v1/admin/bindings?tenant=globex"))["bindings"]) ==
          std::set<std::string>{"globex/g1"});
    CHECK(ids(bodyOf(registrar.admin("GET", "/v1/admin/bindings?tenant=acme&state=registered"))["bindings"]) ==
          std::set<std::string>{"acme/a1", "acme/a2"});

    // Paging by cursor reaches every binding.
    std::set<std::string> seen;
    std::string cursor = "0";
    int pages = 0;
    do {
      auto page = registrar.admin("GET", "/v1/admin/bindings?limit=1&cursor=" + cursor);
      REQUIRE(page.status == 200);
      json p = bodyOf(page);
      for (const auto& id : ids(p["bindings"])) seen.insert(id);
      cursor = p["next_cursor"].is_null() ? "0" : p["next_cursor"].get<std::string>();
    } while (cursor != "0" && ++pages < 100);
    CHECK(seen.size() == 4);

    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings?limit=0")) == "invalid_parameter");
    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings?state=sleeping")) == "invalid_parameter");
    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings?tenant=a%2Fb")) == "invalid_parameter");
    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings?colour=blue")) == "unknown_parameter");
    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings?state=%zz")) == "invalid_query");
  }

  SECTION("tenants' keys do not open the admin API, nor the admin key a tenant's") {
    auto tenant = registrar.request("GET", "/v1/admin/bindings", "",
                                    {{"Authorization", std::string("Bearer ") + kTenantKey}});
    CHECK(tenant.status == 403);
    CHECK(errorCode(tenant) == "forbidden");
    auto none = registrar.request("GET", "/v1/admin/instances", "", {});
    CHECK(none.status == 401);
    CHECK(none.header("www-authenticate") == "Bearer");
    CHECK(registrar.get("a1", kAdminKey).status == 401);
    CHECK(registrar.admin("PATCH", "/v1/admin/log-level").status == 405);
  }

  SECTION("one binding of any tenant, and deleting it un-registers it at the PBX") {
    auto one = registrar.admin("GET", "/v1/admin/bindings/globex/g1");
    REQUIRE(one.status == 200);
    CHECK(bodyOf(one)["tenant"] == "globex");
    CHECK(bodyOf(one)["state"] == "registered");
    CHECK(registrar.admin("GET", "/v1/admin/bindings/globex/nope").status == 404);
    CHECK(errorCode(registrar.admin("GET", "/v1/admin/bindings/glo*bex/g1")) == "invalid_binding_id");
    REQUIRE(pbx.contacts("8102").size() == 1);

    auto del = registrar.admin("DELETE", "/v1/admin/bindings/globex/g1");
    CHECK(del.status == 204);
    CHECK(pbx.contacts("8102").empty());
    CHECK(registrar.get("g1", kOtherTenantKey).status == 404);
    CHECK(registrar.admin("DELETE", "/v1/admin/bindings/globex/g1").status == 404);
    CHECK(registrar.log().find("\"operator\":\"ops\"") != std::string::npos);
  }

  SECTION("instances: leases, bindings per owner, push queue depth") {
    RedisClient client(redis.port());
    for (int i = 0; i < 3; ++i) {
      client.command({"XADD", "sipwake:push:jobs", "*", "job", "{\"type\":\"test\"}"});
    }
    client.command({"XGROUP", "CREATE", "sipwake:push:jobs", "pushgw", "0", "MKSTREAM"});
    client.command({"XREADGROUP", "GROUP", "pushgw", "c1", "COUNT", "2", "STREAMS", "sipwake:push:jobs", ">"});
    long long length = client.command({"XLEN", "sipwake:push:jobs"}).integer;

    // The lone instance leases every shard (REGISTRAR_SHARDS, 64).
    auto reply = registrar.admin("GET", "/v1/admin/instances");
    REQUIRE(reply.status == 200);
    json body = bodyOf(reply);
    INFO(reply.body);
    CHECK(body["this_instance"] == "test-registrar");
    REQUIRE(body["instances"].size() == 1);
    json live = body["instances"][0];
    CHECK(live["name"] == "test-registrar");
    CHECK(live["alive"] == true);
    CHECK(live["leases"] == 64);
    CHECK(live["bindings"] == 3);  // the failed binding left the index
    CHECK(live["sip"] == "127.0.0.1:" + std::to_string(registrar.sipPort()));
    CHECK(body["leases_by_owner"]["test-registrar"] == 64);
    CHECK(body["bindings_by_owner"]["test-registrar"] == 3);
    CHECK(body["push_queue"]["length"] == length);
    CHECK(body["push_queue"]["pending"] == 2);
    CHECK(body["push_queue"]["consumers"] == 1);
  }

  SECTION("log level at run time: the API and signals") {
    CHECK(bodyOf(registrar.admin("GET", "/v1/admin/log-level"))["level"] == "debug");
    auto set = registrar.admin("PUT", "/v1/admin/log-level", R"({"level":"warn"})");
    CHECK(set.status == 200);
    CHECK(bodyOf(registrar.admin("GET", "/v1/admin/log-level"))["level"] == "warn");
    CHECK(errorCode(registrar.admin("PUT", "/v1/admin/log-level", R"({"level":"loud"})")) == "invalid_field");
    CHECK(errorCode(registrar.admin("PUT", "/v1/admin/log-level", "[]")) == "invalid_field");
    // At warn, a PUT's info line is not written.
    REQUIRE(registrar.put("quiet", bindingBody("8104", pbx.port())).status == 201);
    CHECK(registrar.log().find("\"binding\":\"acme/quiet\"") == std::string::npos);

    registrar.signal(SIGUSR1);
    CHECK(waitUntil([&] { return bodyOf(registrar.admin("GET", "/v1/admin/log-level"))["level"] == "debug"; },
                    5000));
    registrar.signal(SIGUSR2);  // back to the configured level (debug in tests)
    CHECK(registrar.log().find("log level changed by signal") != std::string::npos);
  }
}

TEST_CASE("key rotation re-seals every binding under the new key without downtime",
          "[registrar][admin][secrets]") {
  using sipwake::base64Encode;
  using sipwake::crypto::randomBytes;
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  RedisClient client(redis.port());
  const std::string key_a_line = readFile(registrar.credentialKeysFile());  // "k1 <base64>\n"
  const std::string key_b = base64Encode(randomBytes(32));

  std::vector<std::string> users;
  for (int i = 0; i < 6; ++i) {
    std::string user = std::to_string(8200 + i);
    users.push_back(user);
    REQUIRE(registrar.put("rot" + user, bindingBody(user, pbx.port(), i % 2 ? "tcp" : "udp", "", 10)).status == 201);
  }
  REQUIRE(waitUntil([&] { return registrar.metric("registrar_bindings", "state=\"registered\"") == 6; }, 15000));
  for (const auto& [key, id] : storedKeyIds(client)) {
    INFO(key);
    CHECK(id == "k1");
  }

  // New first key B, A still there to open: every instance can seal with B.
  registrar.writeCredentialKeys("k2 " + key_b + "\n" + key_a_line);
  double rotated_at = nowSeconds();
  auto reply = registrar.admin("POST", "/v1/admin/rotate-keys");
  REQUIRE(reply.status == 200);
  json counts = bodyOf(reply);
  CHECK(counts["key_id"] == "k2");
  CHECK(counts["resealed"] == 6);
  CHECK(counts["already_current"] == 0);
  CHECK(counts["failed"] == 0);
  auto after = storedKeyIds(client);
  CHECK(after.size() == 6);
  for (const auto& [key, id] : after) {
    INFO(key);
    CHECK(id == "k2");
  }
  // Again: nothing left to do.
  json again = bodyOf(registrar.admin("POST", "/v1/admin/rotate-keys"));
  CHECK(again["resealed"] == 0);
  CHECK(again["already_current"] == 6);
  CHECK(errorCode(registrar.admin("POST", "/v1/admin/rotate-keys", "[1]")) == "invalid_json");

  // Registrations carry on: each binding refreshes at the PBX after the rotation.
  CHECK(waitUntil([&] { return allRegisteredSince(pbx, users, rotated_at); }, 20000));
  // A PUT now seals under B.
  REQUIRE(registrar.put("rot8200", bindingBody("8200", pbx.port(), "udp", "", 10)).status == 200);
  CHECK(storedKeyIds(client)["sipwake:binding:{acme/rot8200}"] == "k2");

  // A goes from the file; SIGHUP re-reads it.
  registrar.writeCredentialKeys("k2 " + key_b + "\n");
  registrar.signal(SIGHUP);
  REQUIRE(waitUntil([&] { return registrar.log().find("\"retired_until_restart\":\"k1\"") != std::string::npos; },
                    5000));

  // A restart knows only B, and still loads and registers every binding:
  // no REGISTER can use a cached digest, each password is opened with B.
  registrar.stop();
  double restarted_at = nowSeconds();
  registrar.start();
  REQUIRE(waitUntil([&] { return registrar.metric("registrar_bindings", "state=\"registered\"") == 6; }, 15000));
  CHECK(waitUntil([&] { return allRegisteredSince(pbx, users, restarted_at); }, 15000));
  CHECK(registrar.log().find("\"bindings loaded from redis\"") != std::string::npos);
  for (const auto& user : users) CHECK(registrar.binding("rot" + user)["state"] == "registered");

  // Neither key's material ever reaches the log.
  std::string log = registrar.log();
  CHECK(log.find(key_b) == std::string::npos);
  CHECK(log.find(key_a_line.substr(3, 40)) == std::string::npos);
}

TEST_CASE("key rotation under concurrent PUTs from another instance: no PUT is overwritten",
          "[registrar][admin][secrets]") {
  using sipwake::base64Encode;
  using sipwake::crypto::randomBytes;
  RedisServer redis;
  // No PBX answers here: the bindings keep retrying and keep their credential.
  const std::uint16_t silent_pbx = freePort();
  RegistrarProcess a(redis.url(), {{"REGISTRAR_REGISTRATION_MAX_TEMPORARY_FAILURES", "1000"}});
  // A second instance on the same Redis and keys file: its PUTs race A's
  // re-sealing (one instance alone cannot race itself: its store thread
  // serialises PUTs and re-seal batches).
  RegistrarProcess b(redis.url(), {{"REGISTRAR_INSTANCE", "test-registrar-b"},
                                   {"REGISTRAR_CREDENTIAL_KEYS_FILE", a.credentialKeysFile()},
                                   {"REGISTRAR_REGISTRATION_MAX_TEMPORARY_FAILURES", "1000"}});
  RedisClient client(redis.port());
  const int n = 1500;  // three re-seal batches, so B's PUTs land between them too
  std::map<std::string, std::string> last_password;  // binding id -> the password its last PUT sent
  for (int i = 0; i < n; ++i) {
    std::string id = "c" + std::to_string(i);
    last_password[id] = "pw-first-" + std::to_string(i);
    REQUIRE(a.put(id, bindingBody(std::to_string(9000 + i), silent_pbx, "udp", last_password[id])).status == 201);
  }
  const std::string key_a_line = readFile(a.credentialKeysFile());
  a.writeCredentialKeys("k2 " + base64Encode(randomBytes(32)) + "\n" + key_a_line);
  b.signal(SIGHUP);  // B seals with k2 from now on; A re-reads the file when asked to rotate
  REQUIRE(waitUntil([&] { return b.log().find("credential keys re-read") != std::string::npos; }, 5000));

  json counts;
  std::thread rotation([&] {
    HttpClient admin("127.0.0.1", a.apiPort());
    auto reply = admin.request("POST", "/v1/admin/rotate-keys", "",
                               {{"Authorization", std::string("Bearer ") + kAdminKey}});
    counts = json::parse(reply.body, nullptr, false);
  });
  for (int round = 0; round < 2; ++round) {
    for (int i = round; i < n; i += 2) {
      std::string id = "c" + std::to_string(i);
      last_password[id] = "pw-round" + std::to_string(round) + "-" + std::to_string(i);
      REQUIRE(b.put(id, bindingBody(std::to_string(9000 + i), silent_pbx, "udp", last_password[id])).status == 200);
    }
  }
  rotation.join();
  INFO(counts.dump());
  REQUIRE(counts.is_object());
  CHECK(counts["failed"] == 0);
  CHECK(counts["resealed"].get<int>() + counts["already_current"].get<int>() == n);

  // Every stored credential opens (with the file's keys) to the password of
  // its binding's last PUT, and is sealed under k2: re-sealed by A, or PUT
  // by B after its SIGHUP.
  sipwake::crypto::CredentialSealer sealer(
      sipwake::crypto::parseSealingKeys(readFile(a.credentialKeysFile())));
  int checked = 0;
  for (const auto& [id, password] : last_password) {
    auto fields = client.hgetall("sipwake:binding:{acme/" + id + "}");
    INFO(id);
    REQUIRE(fields.count("credential") == 1);
    CHECK(sipwake::crypto::CredentialSealer::keyIdOf(fields["credential"]) == "k2");
    auto opened = sealer.open(fields["credential"], "acme/" + id);
    REQUIRE(opened);
    CHECK(opened->reveal() == password);
    ++checked;
  }
  CHECK(checked == n);
  WARN("re-sealed " << counts["resealed"] << ", already current " << counts["already_current"]
                    << " (PUT by B before A's scan reached them), in " << counts["duration_ms"] << " ms");
}
