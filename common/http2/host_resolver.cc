#include "common/http2/host_resolver.h"

#include <event2/event.h>
#include <netdb.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/event/event_loop.h"

namespace sipwake::http2 {

// Lives until both the resolver and its lookup thread are done with it.
struct HostResolver::Shared {
  std::mutex mutex;
  std::vector<ResolvedAddress> addresses;
  std::string error;
  int fd = -1;  // eventfd: written once the answer is in

  ~Shared() {
    if (fd >= 0) close(fd);
  }

  void lookup(const std::string& host, std::uint16_t port, int flags) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // No AI_ADDRCONFIG: on a host with only loopback configured it hides
    // 127.0.0.1 itself.
    hints.ai_flags = flags;
    addrinfo* list = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    std::vector<ResolvedAddress> found;
    for (addrinfo* ai = rc == 0 ? list : nullptr; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      ResolvedAddress a;
      std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
      a.len = ai->ai_addrlen;
      found.push_back(a);
    }
    if (list != nullptr) freeaddrinfo(list);
    std::lock_guard lock(mutex);
    addresses = std::move(found);
    if (rc != 0) {
      error = "cannot resolve '" + host + "': " + gai_strerror(rc);
    } else if (addresses.empty()) {
      error = "cannot resolve '" + host + "': no usable address";
    }
  }

  void signal() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(fd, &one, sizeof one);
  }
};

HostResolver::HostResolver(EventLoop& loop) : shared_(std::make_shared<Shared>()) {
  shared_->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (shared_->fd < 0) throw std::runtime_error("eventfd failed");
  event_ = event_new(loop.base(), shared_->fd, EV_READ, &HostResolver::onEvent, this);
}

HostResolver::~HostResolver() {
  event_free(event_);
}

void HostResolver::resolve(const std::string& host, std::uint16_t port, Callback cb) {
  callback_ = std::move(cb);
  event_add(event_, nullptr);
  // A literal address needs no resolver and cannot block.
  shared_->lookup(host, port, AI_NUMERICHOST);
  if (shared_->error.empty()) {
    shared_->signal();
    return;
  }
  shared_->error.clear();
  try {
    std::thread([shared = shared_, host, port] {
      shared->lookup(host, port, 0);
      shared->signal();
    }).detach();
  } catch (const std::system_error& e) {
    shared_->error = std::string("cannot start a resolver thread: ") + e.what();
    shared_->signal();
  }
}

void HostResolver::onEvent(int fd, short, void* arg) {
  auto* self = static_cast<HostResolver*>(arg);
  std::uint64_t count;
  [[maybe_unused]] auto n = read(fd, &count, sizeof count);
  std::vector<ResolvedAddress> addresses;
  std::string error;
  {
    std::lock_guard lock(self->shared_->mutex);
    addresses = std::move(self->shared_->addresses);
    error = std::move(self->shared_->error);
  }
  Callback cb = std::move(self->callback_);
  if (cb) cb(std::move(addresses), std::move(error));
}

}  // namespace sipwake::http2
