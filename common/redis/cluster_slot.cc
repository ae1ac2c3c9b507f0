#include "common/redis/cluster_slot.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace sipwake::redis {
namespace {

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

bool isOneOf(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::any_of(names.begin(), names.end(),
                     [&](std::string_view n) { return equalsIgnoringCase(name, n); });
}

// EVAL script numkeys key...: the first key when numkeys > 0.
std::optional<std::size_t> scriptKey(const std::vector<std::string_view>& argv) {
  if (argv.size() < 4) return std::nullopt;
  std::string numkeys(argv[2]);
  if (numkeys.empty() || numkeys == "0" ||
      !std::all_of(numkeys.begin(), numkeys.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return 3;
}

// XREAD/XREADGROUP ... STREAMS key... id...: the first key.
std::optional<std::size_t> streamsKey(const std::vector<std::string_view>& argv) {
  for (std::size_t i = 1; i + 1 < argv.size(); ++i) {
    if (equalsIgnoringCase(argv[i], "STREAMS")) return i + 1;
  }
  return std::nullopt;
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (char c : data) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c)) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

int keySlot(std::string_view key) {
  if (auto open = key.find('{'); open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return crc16(key) % kClusterSlots;
}

std::optional<std::size_t> commandKeyIndex(const std::vector<std::string_view>& argv) {
  if (argv.size() < 2) return std::nullopt;
  std::string_view name = argv[0];
  if (isOneOf(name, {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})) {
    return scriptKey(argv);
  }
  if (isOneOf(name, {"XREAD", "XREADGROUP"})) return streamsKey(argv);
  if (isOneOf(name, {"XGROUP", "XINFO", "OBJECT", "MEMORY"})) {
    if (argv.size() < 3) return std::nullopt;
    return 2;
  }
  if (isOneOf(name, {"PING",   "TIME",   "ECHO",     "PUBLISH", "SUBSCRIBE", "PSUBSCRIBE",
                     "PUBSUB", "SCRIPT", "FUNCTION", "ROLE",    "INFO",      "CLUSTER",
                     "AUTH",   "HELLO",  "CLIENT",   "CONFIG",  "COMMAND",   "DBSIZE",
                     "SCAN",   "ASKING", "READONLY", "SELECT",  "WAIT"})) {
    return std::nullopt;
  }
  return 1;
}

}  // namespace sipwake::redis
