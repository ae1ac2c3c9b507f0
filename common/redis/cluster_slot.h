#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace sipwake::redis {

// Redis Cluster's key space: 16384 hash slots.
inline constexpr int kClusterSlots = 16384;

// CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster uses it.
std::uint16_t crc16(std::string_view data);

// The slot of `key`: CRC16 of the key, or of the text between the first '{'
// and the next '}' when that text is not empty (the hash tag), mod 16384.
int keySlot(std::string_view key);

// Which argument of a command is the key that decides where it runs:
// argv[1] by default; the first key of EVAL/EVALSHA/FCALL (none when
// numkeys is 0); the first stream after STREAMS (XREAD, XREADGROUP); argv[2]
// for commands with a subcommand (XGROUP CREATE key, XINFO GROUPS key).
// nullopt for commands about no key (PING, TIME, PUBLISH, SCRIPT, INFO,
// CLUSTER, ...), which any node can run.
std::optional<std::size_t> commandKeyIndex(const std::vector<std::string_view>& argv);

}  // namespace sipwake::redis
