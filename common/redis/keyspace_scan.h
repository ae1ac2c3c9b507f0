#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/redis/redis_connection.h"

namespace sipwake::redis {

// One SCAN step over the whole keyspace: one server, or each primary of a
// cluster in turn (Connection::nodes() order). The cursor says where to go
// on: "<cursor>" at the first node, "<node index>-<cursor>" at a later
// one, "0" to begin and when done; so on one server it is SCAN's own.
struct ScanStep {
  std::vector<std::string> keys;
  std::string next_cursor;
};

// `options`: SCAN's own (MATCH pattern, COUNT n, TYPE t). Throws
// RedisUnavailable, std::invalid_argument for a cursor that is not one.
ScanStep scanKeyspace(Connection& redis, const std::string& cursor,
                      const std::vector<std::string>& options);

// True for "0", "<digits>" and "<digits>-<digits>" (API input checks).
bool isKeyspaceCursor(std::string_view cursor);

}  // namespace sipwake::redis
