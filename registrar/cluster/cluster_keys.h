#pragma once

#include <string>

namespace sipwake::registrar {

// Redis layout of instance ownership (README: Several instances). One lease
// round script touches all three keys, so they share the hash tag
// {ownership}: one slot on Redis Cluster (the keys are global anyway).
//   sipwake:{ownership}:instances        zset: instance -> liveness deadline (ms, Redis time)
//   sipwake:{ownership}:instance:<name>  hash: sip, api, started_at, state (active|leaving)
//   sipwake:{ownership}:leases           hash: shard -> "<instance> <deadline ms>"
inline constexpr const char* kInstancesKey = "sipwake:{ownership}:instances";
inline constexpr const char* kLeasesKey = "sipwake:{ownership}:leases";
inline std::string instanceRedisKey(const std::string& instance) {
  return "sipwake:{ownership}:instance:" + instance;
}

}  // namespace sipwake::registrar
