#include "registrar/device/device_sign_in.h"

#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "registrar/registration/digest_auth.h"
#include "tests/support/scripted_transaction.h"

using namespace sipwake;
using namespace sipwake::registrar;
using sipwake::testing::Answer;
using sipwake::testing::ScriptedTransaction;

namespace {

struct OneSecret : DeviceSecrets {
  std::optional<DeviceSecret> deviceSecret(std::string_view token, std::string_view realm) override {
    if (token != "tok1") return std::nullopt;
    DigestChallenge c;
    c.realm = std::string(realm);
    return DeviceSecret{"acme/phone", "1000", digestHa1(c, "1000", "s3cret")};
  }
};

struct Connection : DeviceConnection {
  bool open = true;
  bool alive() const override { return open; }
  std::string peer() const override { return "127.0.0.1:40000"; }
};

struct Fixture {
  Fixture() : registry(clock), sign_in(policy(), clock, secrets, registry, nullptr) {}
  static DeviceSignInPolicy policy() {
    DeviceSignInPolicy p;
    p.max_failures = 2;
    return p;
  }
  // Sends a REGISTER; with `password`, answers the last challenge the way a UA does.
  Answer send(const std::string& password, const std::string& source = "192.0.2.1",
              const std::string& token = "tok1", int expires = -1, const std::string& user = "1000") {
    DeviceRegister r;
    r.target_user = token;
    r.contact = contact;
    r.expires = expires;
    r.source_ip = source;
    r.connection = connection;
    if (!password.empty() && last_challenge) {
      DigestInput in{user, password, "REGISTER", "sip:127.0.0.1", "", 1, "cnonce1", ""};
      r.authorization = buildDigestAuthorization(*last_challenge, in);
    }
    std::vector<Answer> answers;
    ScriptedTransaction t(answers);
    sign_in.onRegister(r, t);
    REQUIRE(answers.size() == 1);
    if (answers[0].status == 401) {
      last_challenge = parseDigestChallenge(answers[0].header("WWW-Authenticate"), false);
    }
    return answers[0];
  }

  ManualClock clock;
  OneSecret secrets;
  DeviceRegistry registry;
  DeviceSignIn sign_in;
  std::shared_ptr<Connection> connection = std::make_shared<Connection>();
  std::string contact = "sip:app@192.0.2.1:5555;transport=tcp";
  std::optional<DigestChallenge> last_challenge;
};

}  // namespace

TEST_CASE("device sign-in: challenge, then 200 for the right credentials", "[devices]") {
  Fixture f;
  Answer first = f.send("");
  CHECK(first.status == 401);
  REQUIRE(f.last_challenge);
  CHECK(f.last_challenge->realm == "sipwake");
  CHECK(f.last_challenge->qop_auth);
  Answer ok = f.send("s3cret");
  CHECK(ok.status == 200);
  CHECK(ok.header("Contact") == "<sip:app@192.0.2.1:5555;transport=tcp>;expires=600");
  auto live = f.registry.live("acme/phone");
  REQUIRE(live.size() == 1);
  CHECK(live[0].contact == "sip:app@192.0.2.1:5555;transport=tcp");

  // Its connection closes: the registration is gone.
  f.connection->open = false;
  CHECK(f.registry.live("acme/phone").empty());
}

TEST_CASE("device sign-in: wrong password 403, then the source is refused unheard", "[devices]") {
  Fixture f;
  f.send("");
  CHECK(f.send("wrong").status == 403);
  f.send("");
  CHECK(f.send("s3cret", "192.0.2.1", "tok1", -1, "1001").status == 403);  // another user name
  // Two failures from 192.0.2.1: refused, even with the right password.
  f.send("", "192.0.2.1");
  Answer blocked = f.send("s3cret");
  CHECK(blocked.status == 403);
  CHECK(blocked.reason == "Too Many Failed Sign-Ins");
  // Another address is unaffected; the window passes for the first.
  f.send("", "192.0.2.2");
  CHECK(f.send("s3cret", "192.0.2.2").status == 200);
  f.clock.advance(61'000);
  f.send("");
  CHECK(f.send("s3cret").status == 200);
}

TEST_CASE("device sign-in: unknown tokens 404, stale nonces re-challenged, expiry honoured", "[devices]") {
  Fixture f;
  CHECK(f.send("", "192.0.2.1", "nobody").status == 404);
  f.send("");
  f.clock.advance(6 * 60'000);  // the nonce's 5 minutes passed
  Answer stale = f.send("s3cret");
  CHECK(stale.status == 401);
  CHECK(stale.header("WWW-Authenticate").find("stale=true") != std::string::npos);
  CHECK(f.send("s3cret", "192.0.2.1", "tok1", 99999).status == 200);  // capped at max_expires
  f.clock.advance(3601'000);
  CHECK(f.registry.live("acme/phone").empty());
  f.send("");
  CHECK(f.send("s3cret", "192.0.2.1", "tok1", 60).status == 200);
  f.send("");
  CHECK(f.send("s3cret", "192.0.2.1", "tok1", 0).status == 200);  // un-register
  CHECK(f.registry.live("acme/phone").empty());
}

TEST_CASE("digest responses are verified with the HA1 alone", "[devices]") {
  DigestChallenge c;
  c.realm = "sipwake";
  c.nonce = "n1";
  c.qop_auth = true;
  DigestInput in{"1000", "s3cret", "REGISTER", "sip:127.0.0.1", "", 7, "cn", ""};
  auto a = parseDigestAuthorization(buildDigestAuthorization(c, in));
  REQUIRE(a);
  CHECK(a->username == "1000");
  CHECK(a->nc == "00000007");
  std::string ha1 = digestHa1(c, "1000", "s3cret");
  CHECK(verifyDigestResponse(*a, "REGISTER", ha1));
  CHECK_FALSE(verifyDigestResponse(*a, "INVITE", ha1));
  CHECK_FALSE(verifyDigestResponse(*a, "REGISTER", digestHa1(c, "1000", "other")));
  CHECK_FALSE(parseDigestAuthorization("Basic dXNlcjpwYXNz"));
  CHECK_FALSE(parseDigestAuthorization("Digest username=\"x\""));
}

// Found by tests/fuzz/sip_request: sofia accepts a folded line (LF, TAB)
// and raw bytes inside a Contact URI; we answered them back in our Contact
// header and kept them as the Request-URI for relayed calls.
TEST_CASE("device sign-in: a Contact URI with a line break or raw bytes is refused", "[devices]") {
  Fixture f;
  for (std::string contact : {"sip:ap\n\tp@192.0.2.9:5555;transport=tcp", "sip:ap\xf6p@192.0.2.9",
                              "sip:app@192.0.2.9>;x=<y", "tel:+15551234"}) {
    f.contact = contact;
    f.send("");
    Answer refused = f.send("s3cret");
    CHECK(refused.status == 400);
    CHECK(refused.reason == "Invalid Contact");
  }
  CHECK(f.registry.live("acme/phone").empty());
  f.contact = "sips:app@[2001:db8::9]:5061;transport=tls;ob";
  f.send("");
  CHECK(f.send("s3cret").status == 200);
}
