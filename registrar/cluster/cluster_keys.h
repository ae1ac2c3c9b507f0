#pragma once

#include <string>

namespace sipwake::registrar {

// Redis layout of instance ownership (README: Several instances):
//   sipwake:instances          zset: instance -> liveness deadline (ms, Redis time)
//   sipwake:instance:{<name>}  hash: sip, api, started_at, state (active|leaving)
//   sipwake:leases             hash: shard -> "<instance> <deadline ms>"
inline constexpr const char* kInstancesKey = "sipwake:instances";
inline constexpr const char* kLeasesKey = "sipwake:leases";
inline std::string instanceRedisKey(const std::string& instance) {
  return "sipwake:instance:{" + instance + "}";
}

}  // namespace sipwake::registrar
