#include "registrar/sip/sip_target_resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>

#include <algorithm>
#include <iterator>
#include <mutex>
#include <thread>

#include "registrar/sip/sip_thread.h"

namespace sipwake::registrar {
namespace {

int defaultPort(SipTransport transport) { return transport == SipTransport::Tls ? 5061 : 5060; }

struct SrvTarget {
  std::string host;
  int port = 0;
};

// RFC 3263 4.2 with the transport known: the SRV record of the lowest
// priority (highest weight among equals; no weighted draw, one target is
// enough to check and pin).
std::optional<SrvTarget> lookupSrv(const std::string& host, SipTransport transport) {
  std::string name = transport == SipTransport::Tls   ? "_sips._tcp." + host
                     : transport == SipTransport::Udp ? "_sip._udp." + host
                                                      : "_sip._tcp." + host;
  struct __res_state state{};
  if (res_ninit(&state) != 0) return std::nullopt;
  unsigned char answer[4096];
  int len = res_nquery(&state, name.c_str(), ns_c_in, ns_t_srv, answer, sizeof answer);
  std::optional<SrvTarget> best;
  int best_priority = 0x10000, best_weight = -1;
  ns_msg msg;
  if (len > 0 && ns_initparse(answer, len, &msg) == 0) {
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
      ns_rr rr;
      if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv ||
          ns_rr_rdlen(rr) < 7) {
        continue;
      }
      const unsigned char* rd = ns_rr_rdata(rr);
      int priority = ns_get16(rd), weight = ns_get16(rd + 2), port = ns_get16(rd + 4);
      char target[NS_MAXDNAME];
      if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 6, target, sizeof target) < 0) {
        continue;
      }
      if (std::string(target).empty() || std::string(target) == ".") continue;
      if (priority < best_priority || (priority == best_priority && weight > best_weight)) {
        best = SrvTarget{target, port};
        best_priority = priority;
        best_weight = weight;
      }
    }
  }
  res_nclose(&state);
  return best;
}

}  // namespace

// Lets lookup threads post back only while the resolver (and so the SIP
// thread) is there.
struct SipTargetResolver::Gate {
  std::mutex mutex;
  SipThread* thread = nullptr;
  SipTargetResolver* resolver = nullptr;
};

SipTargetResolver::SipTargetResolver(SipThread& thread, std::chrono::milliseconds cache_for)
    : thread_(thread), cache_for_(cache_for), gate_(std::make_shared<Gate>()) {
  gate_->thread = &thread;
  gate_->resolver = this;
}

SipTargetResolver::~SipTargetResolver() {
  std::lock_guard<std::mutex> lock(gate_->mutex);
  gate_->thread = nullptr;
  gate_->resolver = nullptr;
}

TargetResolver::Result SipTargetResolver::lookup(const std::string& host, int port,
                                                 SipTransport transport) {
  Result result;
  std::string name = host;
  result.port = port != 0 ? port : defaultPort(transport);
  if (port == 0) {
    if (auto srv = lookupSrv(host, transport)) {
      name = srv->host;
      result.port = srv->port;
    }
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = transport == SipTransport::Udp ? SOCK_DGRAM : SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(name.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    result.error = "cannot resolve '" + name + "': " + gai_strerror(rc);
    return result;
  }
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = ai->ai_family == AF_INET
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    inet_ntop(ai->ai_family, raw, text, sizeof text);
    if (auto a = IpAddress::parse(text)) result.addresses.push_back(*a);
  }
  freeaddrinfo(list);
  if (result.addresses.empty()) result.error = "'" + name + "' has no address";
  return result;
}

void SipTargetResolver::resolve(const SipUri& target, SipTransport transport, Callback cb) {
  if (auto literal = IpAddress::parse(target.host)) {
    Result r;
    r.addresses.push_back(*literal);
    r.port = target.port != 0 ? target.port : defaultPort(transport);
    thread_.post([gate = gate_, r = std::move(r), cb = std::move(cb)]() mutable {
      if (gate->resolver) cb(std::move(r));
    });
    return;
  }
  if (target.host.empty()) {
    thread_.post([gate = gate_, cb = std::move(cb)] {
      if (gate->resolver) cb(Result{{}, 0, "no host"});
    });
    return;
  }
  std::string key = target.host + "|" + std::to_string(target.port) + "|" +
                    std::string(toString(transport));
  auto now = std::chrono::steady_clock::now();
  if (cache_.size() > 4096) {  // names come from tenants: keep the cache bounded
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = !it->second.pending && it->second.until <= now ? cache_.erase(it) : std::next(it);
    }
  }
  Entry& e = cache_[key];
  if (!e.pending && e.until > now) {
    thread_.post([gate = gate_, r = e.result, cb = std::move(cb)]() mutable {
      if (gate->resolver) cb(std::move(r));
    });
    return;
  }
  e.waiters.push_back(std::move(cb));
  if (e.pending) return;
  e.pending = true;
  if (running_ >= kMaxLookups) {
    queued_.push_back({key, target.host, target.port, transport});
    return;
  }
  startLookup(key, target.host, target.port, transport);
}

void SipTargetResolver::startLookup(const std::string& key, const std::string& host, int port,
                                    SipTransport transport) {
  ++running_;
  std::thread([gate = gate_, key, host, port, transport] {
    Result r = lookup(host, port, transport);
    std::lock_guard<std::mutex> lock(gate->mutex);
    if (!gate->thread) return;
    gate->thread->post([gate, key, r = std::move(r)]() mutable {
      if (gate->resolver) gate->resolver->finish(key, std::move(r));
    });
  }).detach();
}

void SipTargetResolver::finish(const std::string& key, Result result) {
  --running_;
  if (!queued_.empty()) {
    Queued next = std::move(queued_.front());
    queued_.pop_front();
    startLookup(next.key, next.host, next.port, next.transport);
  }
  auto it = cache_.find(key);
  if (it == cache_.end()) return;
  Entry& e = it->second;
  e.pending = false;
  e.result = result;
  // Failures are not kept: the engine's back-off decides when to ask again.
  e.until = result.addresses.empty() ? std::chrono::steady_clock::time_point{}
                                     : std::chrono::steady_clock::now() + cache_for_;
  std::vector<Callback> waiters = std::move(e.waiters);
  e.waiters.clear();
  if (result.addresses.empty()) cache_.erase(it);
  for (auto& cb : waiters) cb(result);
}

}  // namespace sipwake::registrar
