#include "common/redis/redis_url.h"

#include <stdexcept>

namespace sipwake::redis {
namespace {

int parseNumber(const std::string& text, int min, int max, const char* what) {
  try {
    std::size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= min && v <= max) return v;
  } catch (const std::logic_error&) {
  }
  throw std::invalid_argument(std::string("redis URL has an invalid ") + what);
}

}  // namespace

std::string RedisUrl::redacted() const {
  std::string out = "redis://";
  if (!password.empty()) out += username + ":***@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisUrl parseRedisUrl(const std::string& text) {
  const std::string scheme = "redis://";
  if (text.rfind(scheme, 0) != 0) throw std::invalid_argument("redis URL must start with redis://");
  RedisUrl url;
  std::string rest = text.substr(scheme.size());
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string::npos) {
      url.password = userinfo;
    } else {
      url.username = userinfo.substr(0, colon);
      url.password = userinfo.substr(colon + 1);
    }
  }
  std::string hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    hostport = rest.substr(0, slash);
    std::string db = rest.substr(slash + 1);
    if (!db.empty()) url.db = parseNumber(db, 0, 15, "database number");
  }
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) throw std::invalid_argument("redis URL has an invalid host");
    url.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') throw std::invalid_argument("redis URL has an invalid host");
      url.port = parseNumber(hostport.substr(close + 2), 1, 65535, "port");
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    url.host = hostport.substr(0, colon);
    url.port = parseNumber(hostport.substr(colon + 1), 1, 65535, "port");
  } else if (!hostport.empty()) {
    url.host = hostport;
  }
  if (url.host.empty()) throw std::invalid_argument("redis URL has no host");
  return url;
}

}  // namespace sipwake::redis
