#include "common/redis/keyspace_scan.h"

#include <algorithm>
#include <stdexcept>

namespace sipwake::redis {
namespace {

bool allDigits(std::string_view text) {
  return !text.empty() && text.size() <= 20 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct Position {
  std::size_t node = 0;
  std::string cursor = "0";
};

Position parse(const std::string& cursor) {
  if (!isKeyspaceCursor(cursor)) throw std::invalid_argument("not a keyspace cursor");
  auto dash = cursor.find('-');
  if (dash == std::string::npos) return {0, cursor};
  return {static_cast<std::size_t>(std::stoull(cursor.substr(0, dash))), cursor.substr(dash + 1)};
}

std::string format(const Position& at) {
  return at.node == 0 ? at.cursor : std::to_string(at.node) + "-" + at.cursor;
}

}  // namespace

bool isKeyspaceCursor(std::string_view cursor) {
  auto dash = cursor.find('-');
  if (dash == std::string_view::npos) return allDigits(cursor);
  return dash <= 4 && allDigits(cursor.substr(0, dash)) && allDigits(cursor.substr(dash + 1));
}

ScanStep scanKeyspace(Connection& redis, const std::string& cursor,
                      const std::vector<std::string>& options) {
  Position at = parse(cursor);
  std::vector<std::string> nodes = redis.nodes();
  ScanStep step;
  if (at.node >= nodes.size()) {  // the cluster lost a node meanwhile
    step.next_cursor = "0";
    return step;
  }
  std::vector<std::string_view> argv{"SCAN", at.cursor};
  argv.insert(argv.end(), options.begin(), options.end());
  Reply reply = redis.commandOnNode(nodes[at.node], argv);
  if (reply.isError()) throw RedisUnavailable("SCAN: " + std::string(reply.str()));
  if (!reply.isArray() || reply.size() != 2) throw RedisUnavailable("SCAN: unexpected reply");
  Reply keys = reply.element(1);
  for (std::size_t i = 0; i < keys.size(); ++i) step.keys.emplace_back(keys.element(i).str());
  at.cursor = std::string(reply.element(0).str());
  if (at.cursor == "0" && ++at.node >= nodes.size()) at.node = 0;  // this node done: the next
  step.next_cursor = format(at);
  return step;
}

}  // namespace sipwake::redis
