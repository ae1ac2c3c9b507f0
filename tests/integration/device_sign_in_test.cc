// The device listener: woken apps sign in with their binding's own SIP
// credentials over TCP (issue 4, items 1 and 2), against a real registrar.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"
#include "tests/support/test_certs.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

std::vector<int> statuses(const std::vector<SipMessageRecord>& responses) {
  std::vector<int> out;
  for (const auto& r : responses) out.push_back(r.status);
  return out;
}

struct DeviceScenario {
  DeviceScenario()
      : device_port(freePort()),
        registrar(redis.url(), {{"REGISTRAR_DEVICE_LISTEN", "127.0.0.1:" + std::to_string(device_port)},
                                {"REGISTRAR_DEVICE_MAX_FAILURES", "3"}}) {
    json body = bindingBody("1000", pbx.port(), "udp");
    REQUIRE(registrar.put("phone", body).status == 201);
    REQUIRE(registrar.waitForState("phone", "registered", 10000));
    std::string contact = registrar.binding("phone")["contact"];
    token = contact.substr(4, contact.find('@') - 4);  // sip:<token>@...
  }
  std::string listener() const { return "sip:127.0.0.1:" + std::to_string(device_port) + ";transport=tcp"; }
  static SipTestUaOptions app(const std::string& ip = "127.0.0.1") {
    SipTestUaOptions o;
    o.transport = "tcp";
    o.bind_ip = ip;
    o.contact_user = "app";
    return o;
  }

  RedisServer redis;
  KamailioPbx pbx;
  std::uint16_t device_port;
  RegistrarProcess registrar;
  std::string token;
};

}  // namespace

TEST_CASE("a woken app signs in with its binding's credentials, on its connection only", "[devices]") {
  DeviceScenario s;
  {
    SipTestUa app(DeviceScenario::app());
    REQUIRE(app.registerTo(s.listener(), "1000", "pw-1000", 600, 5000, s.token) == 200);
    auto responses = app.lastRequestResponses();
    REQUIRE(statuses(responses) == std::vector<int>{401, 200});
    std::string challenge = responses[0].header("www-authenticate");
    CHECK(challenge.find("Digest") == 0);
    CHECK(challenge.find("realm=\"sipwake\"") != std::string::npos);
    CHECK(challenge.find("qop=\"auth\"") != std::string::npos);
    CHECK(responses[1].header("contact").find(app.contactUri()) != std::string::npos);
    CHECK(s.registrar.metric("registrar_devices_signed_in") == 1);
    CHECK(s.registrar.metric("registrar_device_registers_total", "result=\"ok\"") == 1);
  }
  // The app's connection closed with it: the registration is gone.
  CHECK(waitUntil([&] { return s.registrar.metric("registrar_devices_signed_in") == 0; }, 8000));
}

TEST_CASE("wrong passwords and unknown bindings are refused, then the source is refused unheard",
          "[devices]") {
  DeviceScenario s;
  SipTestUa attacker(DeviceScenario::app("127.0.0.2"));
  CHECK(attacker.registerTo(s.listener(), "1000", "guess-1", 600, 5000, s.token) == 403);
  CHECK(statuses(attacker.lastRequestResponses()) == std::vector<int>{401, 403});
  CHECK(attacker.registerTo(s.listener(), "someone", "pw-1000", 600, 5000, s.token) == 403);
  CHECK(attacker.registerTo(s.listener(), "1000", "pw-1000", 600, 5000, "not-a-binding") == 404);
  // Three failures from 127.0.0.2: even the right password is refused now.
  CHECK(attacker.registerTo(s.listener(), "1000", "pw-1000", 600, 5000, s.token) == 403);
  CHECK(attacker.lastRequestResponses().back().reason == "Too Many Failed Sign-Ins");
  CHECK(s.registrar.metric("registrar_device_registers_total", "result=\"rejected\"") == 2);
  CHECK(s.registrar.metric("registrar_device_registers_total", "result=\"not_found\"") == 1);
  CHECK(s.registrar.metric("registrar_device_registers_total", "result=\"rate_limited\"") >= 1);
  CHECK(s.registrar.metric("registrar_devices_signed_in") == 0);

  // The app from another address is not affected.
  SipTestUa app(DeviceScenario::app());
  CHECK(app.registerTo(s.listener(), "1000", "pw-1000", 600, 5000, s.token) == 200);
  // And un-registers (expires 0).
  CHECK(app.registerTo(s.listener(), "1000", "pw-1000", 0, 5000, s.token) == 200);
  CHECK(s.registrar.metric("registrar_devices_signed_in") == 0);
  // No password in the registrar's log.
  CHECK(s.registrar.log().find("pw-1000") == std::string::npos);
  CHECK(s.registrar.log().find("guess-1") == std::string::npos);
}

TEST_CASE("the device listener speaks TLS with the SIP certificate when configured", "[devices]") {
  RedisServer redis;
  KamailioPbx pbx;
  const TestCertificates& certs = sharedTestCertificates();
  std::uint16_t tcp_port = freePort(), tls_port = freePort();
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_DEVICE_LISTEN", "127.0.0.1:" + std::to_string(tcp_port)},
                                           {"REGISTRAR_DEVICE_TLS_LISTEN", "127.0.0.1:" + std::to_string(tls_port)},
                                           {"REGISTRAR_SIP_TLS_CERT", certs.server_cert_file},
                                           {"REGISTRAR_SIP_TLS_KEY", certs.server_key_file}});
  REQUIRE(registrar.put("phone", bindingBody("1000", pbx.port(), "udp")).status == 201);
  REQUIRE(registrar.waitForState("phone", "registered", 10000));
  std::string contact = registrar.binding("phone")["contact"];
  std::string token = contact.substr(4, contact.find('@') - 4);
  std::string host = "127.0.0.1:" + std::to_string(tls_port);
  std::string request = "REGISTER sip:" + host + ";transport=tls SIP/2.0\r\n"
                        "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1\r\n"
                        "From: <sip:" + token + "@" + host + ">;tag=t1\r\nTo: <sip:" + token + "@" + host + ">\r\n"
                        "Call-ID: tls-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                        "Contact: <sip:app@127.0.0.1:5999;transport=tls>\r\nContent-Length: 0\r\n\r\n";
  TempDir dir;
  writeFile(dir.file("register.txt"), request);
  // Verified against the test CA: the app sees our certificate.
  std::string reply = runCommand("(cat " + shellQuote(dir.file("register.txt")) +
                                 "; sleep 2) | timeout 10 openssl s_client -quiet -verify_return_error -CAfile " +
                                 shellQuote(certs.ca_file) + " -connect " + host + " 2>/dev/null");
  INFO(reply);
  CHECK(reply.rfind("SIP/2.0 401", 0) == 0);
  CHECK(reply.find("realm=\"sipwake\"") != std::string::npos);
}
