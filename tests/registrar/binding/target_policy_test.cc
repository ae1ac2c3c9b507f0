#include "registrar/binding/target_policy.h"

#include <catch2/catch.hpp>

using namespace sipwake::registrar;

namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  REQUIRE(a);
  return *a;
}

}  // namespace

TEST_CASE("target policy: CIDRs parse and match and IPv4-mapped IPv6 counts as IPv4", "[target]") {
  CHECK(Cidr::parse("10.0.0.0/8")->contains(ip("10.255.1.2")));
  CHECK_FALSE(Cidr::parse("10.0.0.0/8")->contains(ip("11.0.0.1")));
  CHECK(Cidr::parse("100.64.0.0/10")->contains(ip("100.127.255.255")));
  CHECK_FALSE(Cidr::parse("100.64.0.0/10")->contains(ip("100.128.0.0")));
  CHECK(Cidr::parse("fc00::/7")->contains(ip("fd12:3456::1")));
  CHECK_FALSE(Cidr::parse("fc00::/7")->contains(ip("fe00::1")));
  CHECK(Cidr::parse("192.0.2.7")->contains(ip("192.0.2.7")));  // a bare address: /32
  CHECK(Cidr::parse("::ffff:10.0.0.0/104")->contains(ip("10.1.2.3")));
  CHECK(ip("::ffff:127.0.0.1").toString() == "127.0.0.1");
  CHECK(ip("[::1]").toString() == "::1");
  CHECK_FALSE(Cidr::parse("10.0.0.0/33"));
  CHECK_FALSE(Cidr::parse("10.0.0.0/"));
  CHECK_FALSE(Cidr::parse("pbx.example.com/24"));
  CHECK_FALSE(Cidr::parse("10.0.0.0/8x"));
}

TEST_CASE("target policy: by default internal and special and multicast ranges are refused", "[target]") {
  TargetPolicy policy;
  for (const char* bad : {"127.0.0.1", "127.0.0.2", "0.0.0.0", "10.1.2.3", "172.16.0.1",
                          "172.31.255.254", "192.168.1.1", "100.64.0.1", "169.254.169.254",
                          "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
                          "::1", "::", "fe80::1", "fc00::1", "fd00::5", "ff02::1",
                          "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1"}) {
    INFO(bad);
    CHECK(policy.checkHost("acme", bad));
    CHECK(policy.checkAddress("acme", "", ip(bad)));
  }
  for (const char* good : {"203.0.113.7", "8.8.8.8", "172.32.0.1", "100.128.0.1",
                           "2001:4860:4860::8888", "192.0.2.10"}) {
    INFO(good);
    CHECK_FALSE(policy.checkHost("acme", good));
  }
  // A name is judged by what it resolves to.
  CHECK_FALSE(policy.checkHost("acme", "pbx.example.com"));
  auto why = policy.checkAddress("acme", "pbx.example.com", ip("10.0.0.8"));
  REQUIRE(why);
  CHECK(*why == "10.0.0.8 is a private (RFC 1918) address");
  CHECK(*policy.checkAddress("acme", "", ip("169.254.169.254")) ==
        "169.254.169.254 is a link-local address");
}

TEST_CASE("target policy: allow and deny lists", "[target]") {
  TargetPolicy policy(TargetPolicy::parseConfig("127.0.0.0/8, 10.20.0.0/16", "203.0.113.0/24,10.20.30.0/24", ""));
  CHECK_FALSE(policy.checkHost("acme", "127.0.0.1"));
  CHECK_FALSE(policy.checkHost("acme", "10.20.1.1"));
  CHECK(policy.checkHost("acme", "10.20.30.40"));  // deny wins over allow
  CHECK(policy.checkHost("acme", "10.21.0.1"));    // still private
  auto why = policy.checkHost("acme", "203.0.113.7");
  REQUIRE(why);
  CHECK(why->find("denied by the operator (203.0.113.0/24)") != std::string::npos);
  CHECK(policy.checkHost("acme", "::1"));  // the allow names IPv4 loopback only
  CHECK_THROWS_WITH(TargetPolicy::parseConfig("127.0.0.0/8,nonsense", "", ""),
                    Catch::Contains("'nonsense' is not a CIDR"));
}

TEST_CASE("target policy: per-tenant domains and CIDRs", "[target]") {
  auto config = TargetPolicy::parseConfig("", "", R"({"tenants": {
      "acme": {"domains": ["pbx.acme.example", ".voip.acme.example"]},
      "globex": {"cidrs": ["10.9.0.0/16"]},
      "initech": {"domains": ["initech.example"], "cidrs": ["198.51.100.0/24"]}}})");
  TargetPolicy policy(config);
  // acme: only its domains, by name; literal addresses are not among them.
  CHECK_FALSE(policy.checkHost("acme", "pbx.acme.example"));
  CHECK_FALSE(policy.checkHost("acme", "PBX.Acme.Example"));
  CHECK_FALSE(policy.checkHost("acme", "eu.voip.acme.example"));
  CHECK(policy.checkHost("acme", "evilpbx.acme.example.attacker.net"));
  CHECK(policy.checkHost("acme", "notpbx.acme.example"));
  CHECK(policy.checkHost("acme", "8.8.8.8"));
  CHECK_FALSE(policy.checkAddress("acme", "pbx.acme.example", ip("8.8.8.8")));
  // Its domains still may not point inside.
  CHECK(policy.checkAddress("acme", "pbx.acme.example", ip("10.0.0.1")));
  // globex: its CIDRs, even private ones; nothing else.
  CHECK_FALSE(policy.checkHost("globex", "10.9.1.1"));
  CHECK(policy.checkHost("globex", "10.8.1.1"));
  CHECK(policy.checkHost("globex", "8.8.8.8"));
  CHECK_FALSE(policy.checkHost("globex", "pbx.globex.example"));  // may resolve into its CIDRs
  CHECK_FALSE(policy.checkAddress("globex", "pbx.globex.example", ip("10.9.0.1")));
  CHECK(policy.checkAddress("globex", "pbx.globex.example", ip("8.8.4.4")));
  // initech: either.
  CHECK_FALSE(policy.checkHost("initech", "198.51.100.1"));
  CHECK_FALSE(policy.checkAddress("initech", "sip.initech.example", ip("8.8.8.8")));
  // Tenants without a rule get the global policy.
  CHECK_FALSE(policy.checkHost("hooli", "8.8.8.8"));
  CHECK(policy.checkHost("hooli", "10.9.1.1"));

  CHECK_THROWS_WITH(TargetPolicy::parseConfig("", "", R"({"tenants": {"a": {"hosts": []}}})"),
                    Catch::Contains("only 'domains' and 'cidrs'"));
  CHECK_THROWS_WITH(TargetPolicy::parseConfig("", "", R"({"tenants": {"a": {"cidrs": ["x"]}}})"),
                    Catch::Contains("'x' is not a CIDR"));
  CHECK_THROWS(TargetPolicy::parseConfig("", "", "[1]"));
  CHECK(tenantOfKey("acme/phone-1") == "acme");
}
