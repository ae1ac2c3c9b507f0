#pragma once

#include <cstdint>
#include <string_view>

namespace sipwake::registrar {

// The shard a binding belongs to: instances own shards, not bindings, so
// ownership changes hands in a few Redis writes however many bindings there
// are. FNV-1a: stable across builds, platforms and restarts.
inline std::uint32_t shardOf(std::string_view binding_key, std::uint32_t shards) {
  std::uint32_t hash = 2166136261u;
  for (unsigned char c : binding_key) {
    hash ^= c;
    hash *= 16777619u;
  }
  return shards == 0 ? 0 : hash % shards;
}

}  // namespace sipwake::registrar
