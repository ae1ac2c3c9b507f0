#include "common/crypto/credential_sealer.h"

#include <fstream>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "common/crypto/random.h"
#include "common/util/encoding.h"

using namespace sipwake;
using namespace sipwake::crypto;

TEST_CASE("sealed credentials open only with their key and associated data", "[crypto]") {
  CredentialSealer sealer({{"k1", randomBytes(32)}});
  std::string blob = sealer.seal("s3cret-password", "acme/phone1");
  CHECK(blob.find("s3cret-password") == std::string::npos);
  CHECK(CredentialSealer::keyIdOf(blob) == "k1");
  auto opened = sealer.open(blob, "acme/phone1");
  REQUIRE(opened);
  CHECK(opened->reveal() == "s3cret-password");
  CHECK_FALSE(sealer.open(blob, "acme/phone2"));  // moved to another binding
  std::string tampered = blob;
  tampered[tampered.size() / 2] ^= 1;
  CHECK_FALSE(sealer.open(tampered, "acme/phone1"));
  CHECK_FALSE(sealer.open("", "acme/phone1"));
  CHECK_FALSE(sealer.open(std::string(3, '\x01'), "acme/phone1"));
  CHECK(sealer.seal("x", "a") != sealer.seal("x", "a"));  // fresh IV each time
}

TEST_CASE("rotation: the first key seals, every key opens", "[crypto]") {
  std::string old_key = randomBytes(32), new_key = randomBytes(32);
  CredentialSealer before({{"old", old_key}});
  std::string blob = before.seal("pw", "t/b");
  CredentialSealer after({{"new", new_key}, {"old", old_key}});
  CHECK(after.open(blob, "t/b")->reveal() == "pw");
  CHECK(CredentialSealer::keyIdOf(after.seal("pw", "t/b")) == "new");
  CredentialSealer dropped({{"new", new_key}});
  CHECK_FALSE(dropped.open(blob, "t/b"));
}

TEST_CASE("keys replaced at run time: the new first key seals, a dropped key opens until restart",
          "[crypto]") {
  std::string a = randomBytes(32), b = randomBytes(32);
  CredentialSealer sealer({{"a", a}});
  std::string old_blob = sealer.seal("pw", "t/b");
  CHECK(sealer.replaceKeys({{"b", b}, {"a", a}}).empty());
  CHECK(sealer.currentKeyId() == "b");
  CHECK(CredentialSealer::keyIdOf(sealer.seal("pw", "t/b")) == "b");
  CHECK(sealer.open(old_blob, "t/b")->reveal() == "pw");
  // "a" leaves the file: it is retired, still opening what is still sealed with it.
  auto retired = sealer.replaceKeys({{"b", b}});
  CHECK(retired == std::vector<std::string>{"a"});
  CHECK(sealer.keyIds() == std::vector<std::string>{"b", "a"});
  CHECK(sealer.open(old_blob, "t/b")->reveal() == "pw");
  CHECK(CredentialSealer::keyIdOf(sealer.seal("pw", "t/b")) == "b");
  CHECK_THROWS(sealer.replaceKeys({}));
  CHECK(sealer.currentKeyId() == "b");  // a refused file changes nothing
}

TEST_CASE("key files: format errors never echo key material", "[crypto]") {
  std::string good = "# comment\n\nk2 " + base64Encode(std::string(32, 'a')) + "\nk1 " +
                     base64Encode(std::string(32, 'b')) + "\n";
  auto keys = parseSealingKeys(good);
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].id == "k2");
  try {
    parseSealingKeys("k1 c2hvcnQtc2VjcmV0LWtleQ==\n");
    FAIL("short key accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("c2hvcnQ") == std::string::npos);
    CHECK(std::string(e.what()).find("line 1") != std::string::npos);
  }
  CHECK_THROWS(parseSealingKeys(""));
  CHECK_THROWS(parseSealingKeys("k1 " + base64Encode(std::string(32, 'a')) + "\nk1 " +
                                base64Encode(std::string(32, 'b'))));
}

TEST_CASE("a keys file readable or writable by its group or others is refused", "[crypto]") {
  std::string path = "/tmp/sipwake-keys-test-" + randomToken(40);
  {
    std::ofstream out(path);
    out << "k1 " << base64Encode(std::string(32, 'a')) << "\n";
  }
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602}) {
    INFO("mode " << std::oct << mode);
    chmod(path.c_str(), mode);
    CHECK_THROWS_WITH(loadSealingKeysFile(path), Catch::Contains("readable by other users") &&
                                                     Catch::Contains("chmod 600"));
  }
  chmod(path.c_str(), 0400);
  CHECK(loadSealingKeysFile(path).size() == 1);
  chmod(path.c_str(), 0600);
  CHECK(loadSealingKeysFile(path).size() == 1);
  std::remove(path.c_str());
}
