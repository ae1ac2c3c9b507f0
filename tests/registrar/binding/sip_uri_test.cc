#include "registrar/binding/sip_uri.h"

#include <catch2/catch.hpp>

using namespace sipwake::registrar;

TEST_CASE("SIP URIs we accept", "[uri]") {
  auto u = parseSipUri("sip:1000@PBX.Example.com:5080;transport=TCP");
  REQUIRE(u);
  CHECK(u->user == "1000");
  CHECK(u->host == "pbx.example.com");
  CHECK(u->port == 5080);
  CHECK(u->transport(SipTransport::Udp) == SipTransport::Tcp);
  CHECK(u->hostPort() == "pbx.example.com:5080");

  auto s = parseSipUri("sips:203.0.113.7");
  REQUIRE(s);
  CHECK(s->transport(SipTransport::Tcp) == SipTransport::Tls);

  auto v6 = parseSipUri("sip:[2001:db8::1]:5060;transport=udp");
  REQUIRE(v6);
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->hostPort() == "[2001:db8::1]:5060");
  CHECK(v6->toString() == "sip:[2001:db8::1]:5060;transport=udp");

  auto d = parseSipUri("sip:pbx.example.com");
  REQUIRE(d);
  CHECK(d->transport(SipTransport::Tcp) == SipTransport::Tcp);
  CHECK(parseSipUri("sip:alice%20x@h"));
}

TEST_CASE("SIP URIs we refuse, with a reason", "[uri]") {
  const char* bad[] = {
      "",                          "http://x",           "sip:",
      "sip:user:secret@host",      "sip:host?Subject=x", "sip:host:0",
      "sip:host:65536",            "sip:host:",          "sip:-host",
      "sip:ho st",                 "sip:host;",          "sip:host;transport=sctp",
      "sip:[::1",                  "sip:user@",          "sip:a@b@",
      "sips:host;transport=udp",   "sip:%zz@host",       "sip:host;=x",
  };
  for (const char* text : bad) {
    SipUriError error;
    INFO(text);
    CHECK_FALSE(parseSipUri(text, &error));
    CHECK_FALSE(error.message.empty());
  }
  CHECK_FALSE(parseSipUri("sip:" + std::string(600, 'a')));
}
