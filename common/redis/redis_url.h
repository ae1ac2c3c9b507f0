#pragma once

#include <string>

namespace sipwake::redis {

// redis://[[user]:password@]host[:port][/db]
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;
  std::string password;
  // For logs: never includes the password.
  std::string redacted() const;
};

RedisUrl parseRedisUrl(const std::string& text);  // throws std::invalid_argument

}  // namespace sipwake::redis
