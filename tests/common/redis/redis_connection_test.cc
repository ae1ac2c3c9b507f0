#include "common/redis/redis_connection.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "common/redis/redis_health.h"

using namespace sipwake;
using namespace sipwake::redis;

namespace {

// A loopback TCP server that answers every read with the LOADING error, as
// redis-server does while it loads its AOF after a restart.
class LoadingRedis {
 public:
  LoadingRedis() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 4) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoadingRedis() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  void serve() {
    int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    char buffer[4096];
    const std::string answer = "-LOADING Redis is loading the dataset in memory\r\n";
    while (true) {
      ssize_t n = ::read(client, buffer, sizeof buffer);
      if (n <= 0) break;
      // One answer per command: count the RESP arrays that begin in this read.
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] == '*' && (i == 0 || buffer[i - 1] == '\n')) {
          if (::write(client, answer.data(), answer.size()) < 0) break;
        }
      }
    }
    ::close(client);
  }
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("a server still loading its data is unavailable, not an answer", "[redis]") {
  LoadingRedis server;
  RedisUrl url = parseRedisUrl("redis://127.0.0.1:" + std::to_string(server.port()) + "/0");
  Connection connection(url, 1000, 1000);
  std::uint64_t io_before = RedisHealth::instance().errors(RedisFailure::Io);

  CHECK_THROWS_AS(connection.command({"SET", "k", "v"}), RedisUnavailable);
  // A pipeline of writes (status and trace flushes): none of it ran.
  CHECK_THROWS_AS(connection.pipeline({{"LPUSH", "l", "a"}, {"PEXPIRE", "l", "1000"}}), RedisUnavailable);
  CHECK(RedisHealth::instance().errors(RedisFailure::Io) == io_before + 2);
  CHECK_FALSE(RedisHealth::instance().up(SystemClock::instance().now()));
  CHECK(isLoadingError("LOADING Redis is loading the dataset in memory"));
  CHECK_FALSE(isLoadingError("ERR unknown command"));
}
