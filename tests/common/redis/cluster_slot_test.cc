#include "common/redis/cluster_slot.h"

#include <catch2/catch.hpp>

using sipwake::redis::commandKeyIndex;
using sipwake::redis::crc16;
using sipwake::redis::keySlot;

TEST_CASE("cluster slots: CRC16/XMODEM of the key or of its hash tag", "[redis][redis-cluster]") {
  CHECK(crc16("123456789") == 0x31C3);  // the CRC's check value
  CHECK(crc16("") == 0);
  CHECK(keySlot("123456789") == 0x31C3 % 16384);
  // Values from the Redis documentation (CLUSTER KEYSLOT).
  CHECK(keySlot("somekey") == 11058);
  CHECK(keySlot("foo{hash_tag}") == 2515);
  CHECK(keySlot("foo") == 12182);

  // The first {...} with something inside decides.
  CHECK(keySlot("{user1000}.following") == keySlot("{user1000}.followers"));
  CHECK(keySlot("{user1000}.following") == keySlot("user1000"));
  CHECK(keySlot("foo{bar}{zap}") == keySlot("bar"));
  CHECK(keySlot("foo{{bar}}zap") == keySlot("{bar"));
  // Empty tag or no closing brace: the whole key.
  CHECK(keySlot("foo{}{bar}") == crc16("foo{}{bar}") % 16384);
  CHECK(keySlot("foo{bar") == crc16("foo{bar") % 16384);

  // Our layout: every key of one binding in one slot.
  CHECK(keySlot("sipwake:binding:{acme/alice}") == keySlot("sipwake:trace:{acme/alice}"));
  CHECK(keySlot("sipwake:binding:{acme/alice}") == keySlot("sipwake:call:{acme/alice}:abc@host"));
  CHECK(keySlot("sipwake:{ownership}:instances") == keySlot("sipwake:{ownership}:leases"));
  CHECK(keySlot("sipwake:{ownership}:instances") == keySlot("sipwake:{ownership}:instance:reg-1"));
}

TEST_CASE("cluster routing: which argument is the key", "[redis][redis-cluster]") {
  using Argv = std::vector<std::string_view>;
  CHECK(commandKeyIndex(Argv{"HGETALL", "k"}) == 1u);
  CHECK(commandKeyIndex(Argv{"set", "k", "v"}) == 1u);
  CHECK(commandKeyIndex(Argv{"EVALSHA", "abc", "2", "k1", "k2", "a"}) == 3u);
  CHECK(commandKeyIndex(Argv{"eval", "return 1", "1", "k1"}) == 3u);
  CHECK_FALSE(commandKeyIndex(Argv{"EVAL", "return 1", "0", "a"}));
  CHECK_FALSE(commandKeyIndex(Argv{"EVAL", "return 1", "x", "a"}));
  CHECK(commandKeyIndex(Argv{"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "100",
                             "STREAMS", "s", ">"}) == 9u);
  CHECK(commandKeyIndex(Argv{"XREAD", "streams", "s", "0"}) == 2u);
  CHECK_FALSE(commandKeyIndex(Argv{"XREAD", "COUNT", "1"}));
  CHECK(commandKeyIndex(Argv{"XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"}) == 2u);
  CHECK(commandKeyIndex(Argv{"XINFO", "GROUPS", "s"}) == 2u);
  for (const char* keyless :
       {"PING", "TIME", "PUBLISH", "SCRIPT", "ROLE", "INFO", "CLUSTER", "scan"}) {
    CAPTURE(keyless);
    CHECK_FALSE(commandKeyIndex(Argv{keyless, "x", "y"}));
  }
  CHECK_FALSE(commandKeyIndex(Argv{"PING"}));
}
