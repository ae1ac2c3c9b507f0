#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "registrar/registration/target_checking_transport.h"

namespace sipwake::registrar {

class SipThread;

// TargetResolver with the system resolver: SRV (_sip._udp, _sip._tcp,
// _sips._tcp) when the target names no port, then getaddrinfo, so
// /etc/hosts and nsswitch apply. Lookups block, so each runs on a short-lived
// detached thread and posts its answer back; answers are cached briefly and
// concurrent lookups of one target share a thread. Literal addresses need
// no thread. Runs on the SIP thread (create and destroy it there, before the
// SipThread goes).
class SipTargetResolver final : public TargetResolver {
 public:
  explicit SipTargetResolver(SipThread& thread,
                             std::chrono::milliseconds cache_for = std::chrono::seconds(30));
  ~SipTargetResolver() override;
  SipTargetResolver(const SipTargetResolver&) = delete;
  SipTargetResolver& operator=(const SipTargetResolver&) = delete;

  void resolve(const SipUri& target, SipTransport transport, Callback cb) override;

  // The blocking lookup itself (SRV when port is 0, then A/AAAA).
  static Result lookup(const std::string& host, int port, SipTransport transport);

 private:
  struct Gate;
  struct Entry {
    Result result;
    std::chrono::steady_clock::time_point until;
    bool pending = false;
    std::vector<Callback> waiters;
  };
  void finish(const std::string& key, Result result);
  void startLookup(const std::string& key, const std::string& host, int port, SipTransport transport);

  // Lookups run at most this many at once (a start-up with thousands of
  // distinct names must not start thousands of threads); the rest queue.
  static constexpr int kMaxLookups = 8;
  struct Queued {
    std::string key, host;
    int port;
    SipTransport transport;
  };
  std::deque<Queued> queued_;
  int running_ = 0;

  SipThread& thread_;
  std::chrono::milliseconds cache_for_;
  std::shared_ptr<Gate> gate_;
  std::unordered_map<std::string, Entry> cache_;
};

}  // namespace sipwake::registrar
