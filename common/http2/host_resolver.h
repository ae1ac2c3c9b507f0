#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct event;

namespace sipwake {
class EventLoop;
}

namespace sipwake::http2 {

struct ResolvedAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// Looks up the TCP addresses of a host with getaddrinfo.
//
// getaddrinfo blocks (for seconds when a resolver is slow), so a name is
// looked up on a short-lived detached thread, and the answer comes back to
// the loop through an eventfd: a resolver destroyed meanwhile simply never
// calls back, and the thread finishes on its own. A literal address is
// answered without a thread. We use getaddrinfo rather than evdns so that
// /etc/hosts, nsswitch and the system resolver configuration apply.
//
// Runs on the thread of the EventLoop it is given.
class HostResolver {
 public:
  // addresses in getaddrinfo's order; error non-empty when there are none.
  using Callback = std::function<void(std::vector<ResolvedAddress> addresses, std::string error)>;

  explicit HostResolver(EventLoop& loop);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // One lookup per resolver. cb runs on the loop thread, never inside resolve().
  void resolve(const std::string& host, std::uint16_t port, Callback cb);

 private:
  struct Shared;
  static void onEvent(int fd, short what, void* arg);

  std::shared_ptr<Shared> shared_;
  event* event_ = nullptr;
  Callback callback_;
};

}  // namespace sipwake::http2
