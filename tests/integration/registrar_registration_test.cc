// The registration engine against a real Kamailio PBX and a real redis-server:
// what the PBX received and holds, what Redis stores, what /metrics counts.

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <csignal>
#include <regex>

#include <catch2/catch.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sipp_ua.h"
#include "tests/support/test_certs.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Our contact among an AOR's contacts at the PBX, by our unguessable user part.
int countContacts(const std::vector<PbxContact>& contacts, const std::string& contact_uri) {
  std::string user = contact_uri.substr(4, contact_uri.find('@') - 4);
  return static_cast<int>(std::count_if(contacts.begin(), contacts.end(), [&](const PbxContact& c) {
    return c.uri.find("sip:" + user + "@") == 0;
  }));
}

std::vector<RegisterLogEntry> withAuth(const std::vector<RegisterLogEntry>& entries) {
  std::vector<RegisterLogEntry> out;
  for (const auto& e : entries) {
    if (e.auth) out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE("50 bindings register, each with its own contact, beside another UA", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  // An independent UA (SIPp) registered on the first AOR keeps its contact.
  SippRegisterOptions sipp;
  sipp.port = pbx.port();
  sipp.user = "1000";
  sipp.password = "pw-1000";
  sipp.contact_user = "sipp-phone";
  REQUIRE(sippRegister(sipp) == 0);
  REQUIRE(pbx.contacts("1000").size() == 1);

  RegistrarProcess registrar(redis.url());
  for (int i = 0; i < 50; ++i) {
    std::string user = std::to_string(1000 + i);
    auto reply = registrar.put("phone-" + user, bindingBody(user, pbx.port(), i % 2 ? "tcp" : "udp"));
    REQUIRE(reply.status == 201);
  }
  REQUIRE(waitUntil([&] { return registrar.metric("registrar_bindings", "state=\"registered\"") == 50; },
                    20000));

  std::set<std::string> our_contacts;
  for (int i = 0; i < 50; ++i) {
    std::string user = std::to_string(1000 + i);
    // The metric counts at once; the state reaches Redis a moment later.
    json b;
    CHECK(waitUntil([&] {
      b = registrar.binding("phone-" + user);
      return b["state"] == "registered";
    }, 5000));
    std::string contact = b["contact"];
    our_contacts.insert(contact);
    auto at_pbx = pbx.contacts(user);
    CHECK(countContacts(at_pbx, contact) == 1);
    CHECK(at_pbx.size() == (i == 0 ? 2u : 1u));
  }
  CHECK(our_contacts.size() == 50);
  // SIPp's contact is untouched.
  auto first = pbx.contacts("1000");
  CHECK(std::count_if(first.begin(), first.end(), [](const PbxContact& c) {
          return c.uri.find("sip:sipp-phone@") == 0;
        }) == 1);
  CHECK(registrar.metric("registrar_register_requests_total", "result=\"ok\"") >= 50);
  CHECK(registrar.metric("registrar_register_latency_seconds_count") >= 100);
}

TEST_CASE("a wrong password fails after exactly 3 rejected attempts and its credentials are gone",
          "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("bad", bindingBody("2000", pbx.port(), "udp", "not-the-password")).status == 201);
  REQUIRE(registrar.waitForState("bad", "failed", 30000));
  json b = registrar.binding("bad");
  CHECK(b["failure_reason"] == "auth_rejected");
  CHECK(b["last_response"]["code"] == 401);
  CHECK(b["reason"].get<std::string>().find("rejected the credentials") != std::string::npos);

  sleepMs(5000);  // long past the back-off: nothing more may come
  auto attempts = withAuth(pbx.registersFor("2000"));
  CHECK(attempts.size() == 3);
  RedisClient client(redis.port());
  auto stored = client.hgetall("sipwake:binding:{acme/bad}");
  CHECK(stored.count("credential") == 0);
  CHECK(stored["state"] == "failed");
  long long ttl = client.ttl("sipwake:binding:{acme/bad}");
  CHECK(ttl > 0);
  CHECK(ttl <= 24 * 3600);
  CHECK(registrar.metric("registrar_bindings_failed_total", "reason=\"auth_rejected\"") == 1);
  // Each device is told, through the push stream.
  auto jobs = client.command({"XRANGE", "sipwake:push:jobs", "-", "+"});
  REQUIRE(jobs.elements.size() == 2);
  CHECK(jobs.elements[0].elements[1].elements[1].str.find("\"binding_failed\"") != std::string::npos);
}

TEST_CASE("503 with Retry-After: no retry before it", "[registrar]") {
  RedisServer redis;
  KamailioPbxOptions options;
  options.busy_retry_after = 4;
  KamailioPbx pbx(options);
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("busy", bindingBody("busy1", pbx.port(), "tcp")).status == 201);
  REQUIRE(registrar.waitForState("busy", "registered", 20000));
  auto seen = pbx.registersFor("busy1");
  REQUIRE(seen.size() >= 2);
  CHECK(seen[0].reply_code == 503);
  CHECK(seen[1].time - seen[0].time >= 4.0);
  CHECK(registrar.metric("registrar_register_requests_total", "result=\"server_error\"") == 1);
}

TEST_CASE("a shorter expiry granted by the PBX drives the refreshes", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("short", bindingBody("short1", pbx.port(), "udp", "", 600)).status == 201);
  REQUIRE(registrar.waitForState("short", "registered", 10000));
  CHECK(registrar.binding("short")["granted_expires"] == 10);
  sleepMs(21000);
  // Successful REGISTERs (200) spaced by at most the granted 10 s, and at
  // least 7.5 s (75 % of it): the PBX never lost the contact.
  std::vector<double> ok_times;
  for (const auto& e : pbx.registersFor("short1")) {
    if (e.reply_code == 200) ok_times.push_back(e.time);
  }
  REQUIRE(ok_times.size() >= 3);
  for (std::size_t i = 1; i < ok_times.size(); ++i) {
    CHECK(ok_times[i] - ok_times[i - 1] < 10.0);
    CHECK(ok_times[i] - ok_times[i - 1] > 7.0);
  }
  CHECK(pbx.contacts("short1").size() == 1);
}

TEST_CASE("423 Interval Too Brief: we ask again with Min-Expires", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("brief", bindingBody("brief1", pbx.port(), "udp", "", 60)).status == 201);
  REQUIRE(registrar.waitForState("brief", "registered", 10000));
  auto seen = pbx.registersFor("brief1");
  REQUIRE(seen.size() >= 2);
  CHECK(seen[0].reply_code == 423);
  CHECK(seen.back().expires == "120");
}

TEST_CASE("DELETE removes our contact at the PBX and the binding from Redis", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  SippRegisterOptions sipp;
  sipp.port = pbx.port();
  sipp.user = "3000";
  sipp.password = "pw-3000";
  sipp.contact_user = "other-device";
  REQUIRE(sippRegister(sipp) == 0);
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("gone", bindingBody("3000", pbx.port(), "tcp")).status == 201);
  REQUIRE(registrar.waitForState("gone", "registered", 10000));
  std::string contact = registrar.binding("gone")["contact"];
  REQUIRE(countContacts(pbx.contacts("3000"), contact) == 1);

  auto reply = registrar.del("gone");
  CHECK(reply.status == 204);
  CHECK(countContacts(pbx.contacts("3000"), contact) == 0);
  CHECK(pbx.contacts("3000").size() == 1);  // the other device stays
  auto last = pbx.registersFor("3000").back();
  CHECK(last.expires == "0");
  CHECK(last.contact.find(contact.substr(4, contact.find('@') - 4)) != std::string::npos);
  RedisClient client(redis.port());
  CHECK_FALSE(client.exists("sipwake:binding:{acme/gone}"));
  auto index = client.command({"ZSCORE", "sipwake:bindings", "acme/gone"});
  CHECK(index.isNil());
  CHECK(registrar.get("gone").status == 404);
  CHECK(registrar.del("gone").status == 404);
}

TEST_CASE("a restarted registrar keeps each Contact and Call-ID: one contact per binding",
          "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  for (int i = 0; i < 10; ++i) {
    std::string user = std::to_string(4000 + i);
    REQUIRE(registrar.put("r" + user, bindingBody(user, pbx.port(), i % 2 ? "tcp" : "udp")).status == 201);
  }
  REQUIRE(waitUntil([&] { return registrar.metric("registrar_bindings", "state=\"registered\"") == 10; },
                    15000));
  std::map<std::string, PbxContact> before;
  for (int i = 0; i < 10; ++i) {
    std::string user = std::to_string(4000 + i);
    auto contacts = pbx.contacts(user);
    REQUIRE(contacts.size() == 1);
    before[user] = contacts[0];
  }
  std::size_t registers_before = pbx.registers().size();

  registrar.stop();
  // Stopping is not un-registering.
  for (const auto& [user, contact] : before) CHECK(pbx.contacts(user).size() == 1);
  CHECK(pbx.registers().size() == registers_before);

  registrar.start();
  REQUIRE(waitUntil([&] { return registrar.metric("registrar_bindings", "state=\"registered\"") == 10; },
                    15000));
  REQUIRE(waitUntil(
      [&] {
        std::set<std::string> refreshed;
        auto all = pbx.registers();
        for (std::size_t i = registers_before; i < all.size(); ++i) {
          if (all[i].reply_code == 200) refreshed.insert(all[i].user);
        }
        return refreshed.size() == 10;
      },
      10000));
  for (const auto& [user, old] : before) {
    auto contacts = pbx.contacts(user);
    REQUIRE(contacts.size() == 1);
    CHECK(contacts[0].uri == old.uri);
    CHECK(contacts[0].call_id == old.call_id);
    CHECK(contacts[0].cseq > old.cseq);
  }
  // The persisted challenge is answered at once: one REGISTER per binding.
  auto all = pbx.registers();
  for (std::size_t i = registers_before; i < all.size(); ++i) {
    INFO(all[i].user);
    CHECK(all[i].auth);
  }
}

TEST_CASE("TLS toward the PBX: verified against the CA, refused when untrusted", "[registrar]") {
  const TestCertificates& certs = sharedTestCertificates();
  RedisServer redis;
  KamailioPbxOptions trusted_options;
  trusted_options.tls = true;
  trusted_options.tls_cert_file = certs.server_cert_file;
  trusted_options.tls_key_file = certs.server_key_file;
  KamailioPbx trusted(trusted_options);
  KamailioPbxOptions untrusted_options = trusted_options;
  untrusted_options.tls_cert_file = certs.untrusted_cert_file;
  untrusted_options.tls_key_file = certs.untrusted_key_file;
  KamailioPbx untrusted(untrusted_options);
  KamailioPbxOptions misnamed_options = trusted_options;
  misnamed_options.tls_cert_file = certs.misnamed_cert_file;
  misnamed_options.tls_key_file = certs.misnamed_key_file;
  KamailioPbx misnamed(misnamed_options);

  std::uint16_t tls_port = freePort();
  RegistrarProcess registrar(redis.url(),
                             {{"REGISTRAR_SIP_TLS_LISTEN", "127.0.0.1:" + std::to_string(tls_port)},
                              {"REGISTRAR_SIP_TLS_CERT", certs.server_cert_file},
                              {"REGISTRAR_SIP_TLS_KEY", certs.server_key_file},
                              {"REGISTRAR_SIP_TLS_CA_FILE", certs.ca_file}});
  json good = bindingBody("5000", 0, "tls");
  good["registrar"] = "sips:127.0.0.1:" + std::to_string(trusted.tlsPort());
  REQUIRE(registrar.put("tls-good", good).status == 201);
  json bad = bindingBody("5001", 0, "tls");
  bad["registrar"] = "sip:127.0.0.1:" + std::to_string(untrusted.tlsPort()) + ";transport=tls";
  REQUIRE(registrar.put("tls-bad", bad).status == 201);
  json wrong_name = bindingBody("5002", 0, "tls");
  wrong_name["registrar"] = "sips:127.0.0.1:" + std::to_string(misnamed.tlsPort());
  REQUIRE(registrar.put("tls-misnamed", wrong_name).status == 201);

  REQUIRE(registrar.waitForState("tls-good", "registered", 15000));
  auto contacts = trusted.contacts("5000");
  REQUIRE(contacts.size() == 1);
  CHECK(contacts[0].uri.find(";transport=tls") != std::string::npos);
  CHECK(trusted.registersFor("5000").back().proto == "tls");

  REQUIRE(registrar.waitForState("tls-bad", "retrying", 15000));
  // Debian's sofia drops the queued REGISTER after a failed handshake without
  // an error report: it surfaces as a local timeout, never as an answer.
  json last = registrar.binding("tls-bad")["last_response"];
  CHECK((last["error"] == "transport" || last["error"] == "timeout"));
  CHECK(untrusted.registersFor("5001").empty());  // no REGISTER crossed an unverified link
  REQUIRE(registrar.waitForState("tls-misnamed", "retrying", 15000));
  CHECK(misnamed.registersFor("5002").empty());
}

TEST_CASE("bad input gets a clear JSON error and changes nothing", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("keep", bindingBody("6000", pbx.port())).status == 201);
  REQUIRE(registrar.waitForState("keep", "registered", 10000));
  RedisClient client(redis.port());
  std::string before = client.dumpEverything();
  auto keys_before = client.keys("*");

  auto errorCode = [](const HttpReply& r) {
    auto body = json::parse(r.body, nullptr, false);
    return body.is_object() && body.contains("error") ? body["error"]["code"].get<std::string>()
                                                      : std::string("(not json)");
  };
  const std::vector<std::pair<std::string, std::string>> json_headers = {
      {"Authorization", std::string("Bearer ") + kTenantKey}, {"Content-Type", "application/json"}};

  auto malformed = registrar.request("PUT", "/v1/bindings/x1", "{\"aor\": ", json_headers);
  CHECK(malformed.status == 400);
  CHECK(errorCode(malformed) == "invalid_json");

  json missing = bindingBody("6001", pbx.port());
  missing.erase("auth");
  auto r = registrar.put("x2", missing);
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "missing_field");

  json bad_uri = bindingBody("6002", pbx.port());
  bad_uri["aor"] = "sip:6002@exa mple.com";
  r = registrar.put("x3", bad_uri);
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "invalid_field");
  CHECK(r.body.find("aor") != std::string::npos);

  json password_in_uri = bindingBody("6003", pbx.port(), "udp", "hunter2-secret");
  password_in_uri["registrar"] = "sip:6003:hunter2-secret@127.0.0.1";
  r = registrar.put("x4", password_in_uri);
  CHECK(r.status == 400);
  CHECK(r.body.find("hunter2-secret") == std::string::npos);

  json unknown = bindingBody("6004", pbx.port());
  unknown["colour"] = "blue";
  r = registrar.put("x5", unknown);
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "unknown_field");

  auto big = registrar.request("PUT", "/v1/bindings/x6", std::string(200 * 1024, ' '), json_headers);
  CHECK(big.status == 413);
  CHECK(errorCode(big) == "body_too_large");

  r = registrar.put("x7", bindingBody("6005", pbx.port()), "wrong-key-0000000000");
  CHECK(r.status == 401);
  CHECK(errorCode(r) == "unauthorized");
  r = registrar.request("GET", "/v1/bindings/keep", "", {});
  CHECK(r.status == 401);

  r = registrar.put("bad*id", bindingBody("6006", pbx.port()));
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "invalid_binding_id");

  // Another tenant can neither see nor touch acme's binding.
  CHECK(registrar.get("keep", kOtherTenantKey).status == 404);
  CHECK(registrar.del("keep", kOtherTenantKey).status == 404);

  auto raw = HttpClient("127.0.0.1", registrar.apiPort()).sendRaw("GARBAGE\r\n\r\n");
  CHECK(raw.find("400") != std::string::npos);
  CHECK(raw.find("\"error\"") != std::string::npos);

  CHECK(client.keys("*") == keys_before);
  CHECK(client.dumpEverything() == before);
  CHECK(registrar.binding("keep")["state"] == "registered");
  CHECK(registrar.running());
}

TEST_CASE("no plaintext password in Redis, logs or metrics", "[registrar][secrets]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  const std::vector<std::string> passwords = {"Zebra-Secret-0001", "Zebra-Secret-0002",
                                              "Zebra-Secret-0003"};
  // Users whose PBX password these are not: they register, fail, retry.
  REQUIRE(registrar.put("s1", bindingBody("7000", pbx.port(), "udp", passwords[0])).status == 201);
  REQUIRE(registrar.put("s2", bindingBody("7001", pbx.port(), "tcp", passwords[1])).status == 201);
  json ok = bindingBody("7002", pbx.port());
  ok["auth"]["password"] = "pw-7002";
  REQUIRE(registrar.put("s3", ok).status == 201);
  REQUIRE(registrar.waitForState("s1", "failed", 30000));
  REQUIRE(registrar.waitForState("s3", "registered", 10000));
  json with_secret = bindingBody("7003", pbx.port(), "udp", passwords[2]);
  with_secret["expires"] = "not a number";
  CHECK(registrar.put("s4", with_secret).status == 400);
  REQUIRE(registrar.del("s3").status == 204);

  RedisClient client(redis.port());
  std::string everything = client.dumpEverything();
  std::string log = registrar.log();
  std::string metrics = registrar.metricsText();
  REQUIRE(!log.empty());
  for (const auto& p : std::vector<std::string>{passwords[0], passwords[1], passwords[2], "pw-7002"}) {
    INFO(p);
    CHECK(everything.find(p) == std::string::npos);
    CHECK(log.find(p) == std::string::npos);
    CHECK(metrics.find(p) == std::string::npos);
  }
}

TEST_CASE("a crash leaves no core file and its output holds no password", "[registrar][secrets]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  json ok = bindingBody("7010", pbx.port());
  ok["auth"]["password"] = "pw-7010";
  REQUIRE(registrar.put("c1", ok).status == 201);
  REQUIRE(registrar.waitForState("c1", "registered", 10000));
  // The decrypted password's digest is in memory now; a core file would keep it.
  std::string limits = readFile("/proc/" + std::to_string(registrar.pid()) + "/limits");
  std::smatch core;
  REQUIRE(std::regex_search(limits, core, std::regex(R"(Max core file size\s+(\S+)\s+(\S+))")));
  CHECK(core[1] == "0");
  CHECK(core[2] == "0");
  registrar.signal(SIGSEGV);
  REQUIRE(waitUntil([&] { return !registrar.running(); }, 10000));
  std::string output = registrar.log();
  CHECK(output.find("pw-7010") == std::string::npos);
}

TEST_CASE("Redis down: SIP keeps running, API writes answer 503, nothing lost", "[registrar]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("steady", bindingBody("short9", pbx.port(), "udp", "", 600)).status == 201);
  REQUIRE(registrar.waitForState("steady", "registered", 10000));
  redis.stop();
  std::size_t before = pbx.registersFor("short9").size();
  auto r = registrar.put("new", bindingBody("8001", pbx.port()));
  CHECK(r.status == 503);
  CHECK(r.body.find("storage_unavailable") != std::string::npos);
  CHECK(waitUntil([&] {
    HttpClient probe("127.0.0.1", registrar.apiPort());
    return probe.request("GET", "/readyz").status == 503;
  }, 5000));
  // The 10 s grant keeps being refreshed from memory.
  sleepMs(12000);
  CHECK(pbx.registersFor("short9").size() > before);
  CHECK(pbx.contacts("short9").size() == 1);
  redis.start();
  CHECK(waitUntil([&] {
    HttpClient probe("127.0.0.1", registrar.apiPort());
    return probe.request("GET", "/readyz").status == 200;
  }, 10000));
  json b = registrar.binding("steady");
  CHECK(b["state"] == "registered");
  CHECK(registrar.put("new", bindingBody("8001", pbx.port())).status == 201);
}
