// Smoke test of the integration-test harness itself: child processes, a real
// redis-server, the Kamailio test PBX and SIPp as an independent UA.
#include <signal.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/sipp_ua.h"
#include "tests/support/test_certs.h"

using namespace sipwake::testing;

namespace {

SippRegisterOptions sippOptions(const KamailioPbx& pbx, const std::string& user,
                                const std::string& transport = "u1") {
  SippRegisterOptions o;
  o.port = pbx.port();
  o.transport = transport;
  o.user = user;
  o.password = "pw-" + user;
  o.expires = 300;
  o.timeout_s = 5;
  return o;
}

int tlsCheck(uint16_t port, const std::string& ca_file) {
  int status = -1;
  runCommand("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                 " -CAfile " + shellQuote(ca_file) +
                 " -verify_return_error </dev/null >/dev/null 2>&1",
             &status);
  return status;
}

}  // namespace

TEST_CASE("ChildProcess reports exit codes and cleans up", "[harness]") {
  TempDir dir;
  {
    ChildProcess p({"sh", "-c", "echo hello; exit 3"}, dir.file("a.log"));
    CHECK(p.waitExit(5000) == 3);
    CHECK_FALSE(p.running());
    CHECK(p.readLog() == "hello\n");
  }
  {
    ChildProcess p({"sleep", "30"}, dir.file("b.log"));
    CHECK(p.running());
    CHECK(p.waitExit(100) == -1);
    p.signal(SIGTERM);
    CHECK(p.waitExit(5000) == 128 + SIGTERM);
  }
  {
    ChildProcess p({"sh", "-c", "echo \"$SW_TEST_VAR $(pwd)\""}, dir.file("c.log"),
                   {{"SW_TEST_VAR", "value"}}, dir.path());
    CHECK(p.waitExit(5000) == 0);
    CHECK(p.readLog() == "value " + dir.path() + "\n");
  }
  CHECK_THROWS(ChildProcess({"/nonexistent/program"}, dir.file("d.log")));

  std::set<uint16_t> ports;
  for (int i = 0; i < 50; ++i) {
    uint16_t port = freePort();
    CHECK(port >= 20000);
    CHECK(port <= 60000);
    ports.insert(port);
  }
  CHECK(ports.size() == 50);

  int status = -1;
  CHECK(runCommand("echo out; echo err >&2; exit 4", &status) == "out\n");
  CHECK(status == 4);
}

TEST_CASE("RedisServer answers and keeps data across restarts", "[harness]") {
  RedisServer redis;
  CHECK(redis.ping());
  CHECK(redis.url() == "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
  {
    RedisClient client(redis.port());
    RedisReply pong = client.command({"PING"});
    CHECK(pong.type == RedisReply::Type::Status);
    CHECK(pong.str == "PONG");
    client.command({"SET", "greeting", "hello"});
    client.command({"HSET", "binding:1", "aor", "sip:1000@pbx", "secret", "s3cr3t-hash"});
    client.command({"SADD", "set:1", "member-secret"});
    client.command({"ZADD", "zset:1", "42", "zmember-secret"});
    client.command({"RPUSH", "list:1", "list-secret"});
    client.command({"XADD", "stream:1", "*", "field", "stream-secret"});
    client.command({"SET", "expiring", "x", "EX", "100"});
    CHECK(client.get("greeting") == std::optional<std::string>("hello"));
    CHECK_FALSE(client.get("missing").has_value());
    CHECK(client.hgetall("binding:1").at("aor") == "sip:1000@pbx");
    CHECK(client.keys("binding:*") == std::vector<std::string>{"binding:1"});
    CHECK(client.exists("greeting"));
    CHECK(client.ttl("greeting") == -1);
    CHECK(client.ttl("expiring") > 90);
    CHECK(client.ttl("missing") == -2);
    std::string dump = client.dumpEverything();
    for (const char* s : {"hello", "s3cr3t-hash", "member-secret", "zmember-secret", "list-secret",
                          "stream-secret"}) {
      CHECK(dump.find(s) != std::string::npos);
    }
    CHECK(client.command({"NOSUCHCOMMAND"}).isError());
  }

  redis.stop();
  CHECK_FALSE(redis.ping());
  redis.start();
  {
    RedisClient client(redis.port());
    CHECK(client.get("greeting") == std::optional<std::string>("hello"));
    client.command({"SET", "after-restart", "1"});
  }
  redis.kill9();
  redis.start();
  RedisClient client(redis.port());
  CHECK(client.get("after-restart") == std::optional<std::string>("1"));
  CHECK(client.hgetall("binding:1").at("secret") == "s3cr3t-hash");
}

TEST_CASE("KamailioPbx registers users with digest auth", "[harness]") {
  KamailioPbx pbx;
  CHECK(pbx.hostPort() == "127.0.0.1:" + std::to_string(pbx.port()));

  SECTION("UDP and TCP registrations show up in the location table") {
    REQUIRE(sippRegister(sippOptions(pbx, "1000", "u1")) == 0);
    REQUIRE(sippRegister(sippOptions(pbx, "1000", "t1")) == 0);
    auto contacts = pbx.contacts("1000");
    REQUIRE(contacts.size() == 2);
    for (const auto& c : contacts) {
      CHECK(c.uri.find("sip:1000@127.0.0.1:") == 0);
      CHECK(c.expires > 290);
      CHECK(c.expires <= 300);
      CHECK(c.cseq == 2);
      CHECK(c.user_agent == "sipp-register");
      CHECK_FALSE(c.call_id.empty());
    }
    CHECK(pbx.allContacts().at("1000").size() == 2);
    CHECK(pbx.contacts("4242").empty());

    auto regs = pbx.registersFor("1000");
    REQUIRE(regs.size() == 4);
    CHECK(regs[0].proto == "udp");
    CHECK_FALSE(regs[0].auth);
    CHECK(regs[0].reply_code == 401);
    CHECK(regs[1].auth);
    CHECK(regs[1].reply_code == 200);
    CHECK(regs[1].expires == "300");
    CHECK(regs[1].call_id == regs[0].call_id);
    CHECK(regs[1].cseq == 2);
    CHECK(regs[1].contact.find("sip:1000@127.0.0.1") != std::string::npos);
    CHECK(regs[1].time >= regs[0].time);
    CHECK(regs[1].time > 1.6e9);
    CHECK(regs[3].proto == "tcp");
    CHECK(regs[3].reply_code == 200);
    CHECK(regs[3].src.find("127.0.0.1:") == 0);

    // A restart keeps the ports and forgets the registrations.
    uint16_t port = pbx.port();
    pbx.restart();
    CHECK(pbx.port() == port);
    CHECK(pbx.contacts("1000").empty());
    REQUIRE(sippRegister(sippOptions(pbx, "1000", "u1")) == 0);
    CHECK(pbx.contacts("1000").size() == 1);

    // And so does a crash.
    pbx.kill9();
    CHECK_FALSE(pbx.running());
    pbx.start();
    CHECK(pbx.running());
    CHECK(pbx.contacts("1000").empty());
    REQUIRE(sippRegister(sippOptions(pbx, "1000", "t1")) == 0);
    CHECK(pbx.contacts("1000").size() == 1);
  }

  SECTION("a wrong password fails") {
    SippRegisterOptions o = sippOptions(pbx, "1001");
    o.password = "wrong";
    CHECK(sippRegister(o) != 0);
    auto regs = pbx.registersFor("1001");
    REQUIRE(regs.size() == 2);
    CHECK_FALSE(regs[0].auth);
    CHECK(regs[0].reply_code == 401);
    CHECK(regs[1].auth);
    CHECK(regs[1].reply_code == 401);
    CHECK(pbx.contacts("1001").empty());
  }

  SECTION("busy users get 503 with Retry-After once") {
    TempDir dir;
    SippRegisterOptions o = sippOptions(pbx, "busy1");
    o.message_log_file = dir.file("messages.log");
    CHECK(sippRegister(o) != 0);
    CHECK(readFile(o.message_log_file).find("Retry-After: 3") != std::string::npos);
    auto regs = pbx.registersFor("busy1");
    REQUIRE(regs.size() == 1);
    CHECK(regs[0].reply_code == 503);
    CHECK(sippRegister(sippOptions(pbx, "busy1")) == 0);
    CHECK(pbx.contacts("busy1").size() == 1);
  }

  SECTION("other behaviours by user-name prefix") {
    CHECK(sippRegister(sippOptions(pbx, "down1")) != 0);
    CHECK(pbx.registersFor("down1").at(0).reply_code == 503);

    CHECK(sippRegister(sippOptions(pbx, "reject1")) != 0);
    auto rejected = pbx.registersFor("reject1");
    REQUIRE(rejected.size() == 2);
    CHECK(rejected[1].reply_code == 403);

    SippRegisterOptions brief = sippOptions(pbx, "brief1");
    brief.expires = 60;
    CHECK(sippRegister(brief) != 0);
    CHECK(pbx.registersFor("brief1").at(0).reply_code == 423);
    brief.expires = 120;
    CHECK(sippRegister(brief) == 0);

    SippRegisterOptions short_reg = sippOptions(pbx, "short1");
    short_reg.local_port = freePort();  // the same Contact for both REGISTERs
    CHECK(sippRegister(short_reg) == 0);
    auto short_contacts = pbx.contacts("short1");
    REQUIRE(short_contacts.size() == 1);
    CHECK(short_contacts[0].expires <= 10);
    short_reg.expires = 0;
    CHECK(sippRegister(short_reg) == 0);
    CHECK(pbx.contacts("short1").empty());

    SippRegisterOptions slow = sippOptions(pbx, "slow1");
    slow.timeout_s = 2;
    CHECK(sippRegister(slow) != 0);
    auto slow_regs = pbx.registersFor("slow1");
    REQUIRE_FALSE(slow_regs.empty());
    for (const auto& r : slow_regs) CHECK(r.reply_code == 0);
  }
}

TEST_CASE("KamailioPbx routes INVITEs to registered contacts", "[harness]") {
  KamailioPbx pbx;
  TempDir dir;
  // Register a contact on a port where sipp's built-in UAS then answers.
  SippRegisterOptions reg = sippOptions(pbx, "2000");
  reg.local_port = freePort();
  REQUIRE(sippRegister(reg) == 0);
  std::string port = std::to_string(reg.local_port);
  ChildProcess uas({"sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", port, "-t", "u1", "-m", "1",
                    "-nostdin", "-timeout", "10s", "-timeout_error"},
                   dir.file("uas.log"), {}, dir.path());
  // The UAS is ready when its UDP port is taken.
  REQUIRE(waitUntil(
      [&] {
        return runCommand("ss -Hlun 'sport = :" + port + "'").find(port) != std::string::npos;
      },
      5000));
  ChildProcess uac({"sipp", pbx.hostPort(), "-sn", "uac", "-s", "2000", "-i", "127.0.0.1", "-p",
                    std::to_string(freePort()), "-t", "u1", "-m", "1", "-nostdin", "-timeout",
                    "10s", "-timeout_error"},
                   dir.file("uac.log"), {}, dir.path());
  CHECK(uac.waitExit(20000) == 0);
  CHECK(uas.waitExit(20000) == 0);
  CHECK(pbx.readLog().find("SWROUTE method=INVITE ruri=sip:2000@127.0.0.1:" + port) !=
        std::string::npos);
}

TEST_CASE("KamailioPbx options: max_expires, log_registers, busy_retry_after", "[harness]") {
  KamailioPbxOptions options;
  options.max_expires = 90;
  options.log_registers = false;
  options.busy_retry_after = 7;
  KamailioPbx pbx(options);
  REQUIRE(sippRegister(sippOptions(pbx, "1002")) == 0);
  auto contacts = pbx.contacts("1002");
  REQUIRE(contacts.size() == 1);
  CHECK(contacts[0].expires <= 90);
  CHECK(pbx.registers().empty());
  CHECK(pbx.replies().empty());

  TempDir dir;
  SippRegisterOptions busy = sippOptions(pbx, "busy2");
  busy.message_log_file = dir.file("messages.log");
  CHECK(sippRegister(busy) != 0);
  CHECK(readFile(busy.message_log_file).find("Retry-After: 7") != std::string::npos);
}

TEST_CASE("KamailioPbx TLS listener verifies against the test CA only", "[harness]") {
  const TestCertificates& certs = sharedTestCertificates();
  {
    KamailioPbxOptions options;
    options.tls = true;
    KamailioPbx pbx(options);
    REQUIRE(pbx.tlsPort() != 0);
    CHECK(pbx.tlsPort() != pbx.port());
    CHECK(tlsCheck(pbx.tlsPort(), certs.ca_file) == 0);
    // The plain listeners still work next to TLS.
    CHECK(sippRegister(sippOptions(pbx, "1003", "t1")) == 0);
  }
  {
    KamailioPbxOptions options;
    options.tls = true;
    options.tls_cert_file = certs.untrusted_cert_file;
    options.tls_key_file = certs.untrusted_key_file;
    KamailioPbx pbx(options);
    CHECK(tlsCheck(pbx.tlsPort(), certs.ca_file) != 0);
    // The same check against the certificate itself passes: the listener is
    // up, and only trust differs.
    CHECK(tlsCheck(pbx.tlsPort(), certs.untrusted_cert_file) == 0);
  }
}
