#include "pushgw/provider/apns/apns_token_signer.h"

#include <set>

#include <catch2/catch.hpp>

#include "tests/common/crypto/test_keys.h"

using namespace sipwake;
using namespace sipwake::pushgw;
using Json = nlohmann::json;
using Invalidation = ApnsTokenSigner::Invalidation;

namespace {

constexpr Millis kStart = 1'700'000'000'123;

struct Fixture {
  crypto::EvpKey key = sipwake::testing::generateEcP256Key();
  ApnsTokenSigner signer{"ABCDE12345", "KEY1234567", key};
};

}  // namespace

TEST_CASE("APNs provider token: ES256 with kid, iss and iat in seconds", "[apns]") {
  Fixture f;
  std::string token = f.signer.token(kStart);
  Json claims;
  REQUIRE(crypto::verifyJwtEs256(token, f.key.get(), &claims));
  CHECK(claims == Json{{"iss", "ABCDE12345"}, {"iat", kStart / 1000}});
  CHECK(crypto::decodeJwtHeader(token) == Json{{"alg", "ES256"}, {"kid", "KEY1234567"}});
  CHECK(f.signer.issuedAt() == kStart);
  CHECK(f.signer.mintCount() == 1);
}

TEST_CASE("APNs provider token is reused for a jittered 40-50 minutes", "[apns]") {
  Fixture f;
  std::string first = f.signer.token(kStart);
  Millis expires = f.signer.expiresAt();
  CHECK(expires >= kStart + 40 * kMinute);
  CHECK(expires <= kStart + 50 * kMinute);
  CHECK(f.signer.token(kStart + 20 * kMinute) == first);
  CHECK(f.signer.token(expires - 1) == first);
  CHECK(f.signer.mintCount() == 1);
  std::string second = f.signer.token(expires);
  CHECK(second != first);
  CHECK(f.signer.issuedAt() == expires);
  CHECK(f.signer.mintCount() == 2);
  // A clock that steps back does not mint.
  CHECK(f.signer.token(kStart) == second);

  // The lifetime is drawn per token.
  std::set<Millis> lifetimes;
  Millis now = kStart;
  for (int i = 0; i < 20; ++i) {
    f.signer.token(now);
    Millis lifetime = f.signer.expiresAt() - f.signer.issuedAt();
    CHECK(lifetime >= ApnsTokenSigner::kMinLifetime);
    CHECK(lifetime <= ApnsTokenSigner::kMaxLifetime);
    lifetimes.insert(lifetime);
    now = f.signer.expiresAt();
  }
  CHECK(lifetimes.size() > 1);
}

TEST_CASE("APNs provider token: an invalidation mints once, even within 20 minutes", "[apns]") {
  Fixture f;
  std::string first = f.signer.token(kStart);
  Millis t = kStart + 5 * kMinute;
  CHECK(f.signer.invalidate(t, first) == Invalidation::WillMint);
  CHECK(f.signer.invalidate(t + 1, first) == Invalidation::WillMint);  // counts once
  std::string second = f.signer.token(t + 2);
  CHECK(second != first);
  CHECK(f.signer.mintCount() == 2);
  CHECK(f.signer.token(t + 3) == second);
  CHECK(f.signer.mintCount() == 2);

  SECTION("a late 403 for the old token does not discard the new one") {
    CHECK(f.signer.invalidate(t + 4, first) == Invalidation::AlreadyReplaced);
    CHECK(f.signer.token(t + 5) == second);
    CHECK(f.signer.mintCount() == 2);
  }
  SECTION("the early token rejected again within 20 minutes: refused, no mint storm") {
    CHECK(f.signer.invalidate(t + 10 * kMinute, second) == Invalidation::Refused);
    CHECK(f.signer.token(t + 10 * kMinute) == second);
    CHECK(f.signer.mintCount() == 2);
    // 20 minutes after the early mint an invalidation is honoured again.
    CHECK(f.signer.invalidate(t + 2 + 20 * kMinute) == Invalidation::WillMint);
    CHECK(f.signer.token(t + 3 + 20 * kMinute) != second);
    CHECK(f.signer.mintCount() == 3);
  }
  SECTION("an invalidation without the token concerns the current one") {
    CHECK(f.signer.invalidate(t + 21 * kMinute) == Invalidation::WillMint);
    CHECK(f.signer.token(t + 21 * kMinute) != second);
  }
}

TEST_CASE("APNs provider token: invalidation before any token or after expiry", "[apns]") {
  Fixture f;
  CHECK(f.signer.invalidate(kStart) == Invalidation::WillMint);
  std::string first = f.signer.token(kStart);
  CHECK(f.signer.mintCount() == 1);
  Millis expired = f.signer.expiresAt();
  CHECK(f.signer.invalidate(expired, first) == Invalidation::WillMint);
  CHECK(f.signer.token(expired) != first);
  CHECK(f.signer.mintCount() == 2);
}

TEST_CASE("APNs provider token: never minted twice within 20 minutes unless rejected", "[apns]") {
  // Drive a day of pushes every 10 s, with a 403 now and then, and check the
  // rules on the sequence of mints.
  Fixture f;
  std::vector<std::pair<Millis, bool>> mints;  // time, after an accepted invalidation
  bool invalidated = false;
  std::uint64_t seen = 0;
  std::string current;
  for (Millis now = kStart; now < kStart + kDay; now += 10 * kSecond) {
    current = f.signer.token(now);
    if (f.signer.mintCount() != seen) {
      seen = f.signer.mintCount();
      mints.emplace_back(now, invalidated);
      invalidated = false;
    }
    CHECK(now - f.signer.issuedAt() < 50 * kMinute);  // never older than allowed
    if ((now - kStart) % (97 * kMinute) == 0 && now != kStart) {
      invalidated = f.signer.invalidate(now, current) == Invalidation::WillMint || invalidated;
    }
  }
  REQUIRE(mints.size() > 24);
  for (std::size_t i = 1; i < mints.size(); ++i) {
    bool spaced = mints[i].first - mints[i - 1].first >= ApnsTokenSigner::kMinMintInterval;
    CHECK((spaced || mints[i].second));
  }
}

TEST_CASE("APNs token signer wants a P-256 key and both ids", "[apns]") {
  crypto::EvpKey ec = sipwake::testing::generateEcP256Key();
  CHECK_THROWS_AS(ApnsTokenSigner("ABCDE12345", "KEY1234567", sipwake::testing::sharedRsaKey()),
                  std::invalid_argument);
  CHECK_THROWS_AS(ApnsTokenSigner("", "KEY1234567", ec), std::invalid_argument);
  CHECK_THROWS_AS(ApnsTokenSigner("ABCDE12345", "", ec), std::invalid_argument);
  CHECK_THROWS_AS(ApnsTokenSigner("ABCDE12345", "KEY1234567", crypto::EvpKey()),
                  std::invalid_argument);
}
