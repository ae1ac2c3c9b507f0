#include "registrar/device/device_auth.h"

#include "common/crypto/random.h"

namespace sipwake::registrar {

NonceBook::NonceBook(Clock& clock, Millis lifetime, std::size_t capacity)
    : clock_(clock), lifetime_(lifetime), capacity_(capacity) {}

std::string NonceBook::issue() {
  Millis now = clock_.now();
  prune(now);
  while (expiry_.size() >= capacity_ && !by_expiry_.empty()) {
    expiry_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  std::string nonce = crypto::uniqueToken(128);
  expiry_[nonce] = now + lifetime_;
  by_expiry_.emplace(now + lifetime_, nonce);
  return nonce;
}

bool NonceBook::valid(const std::string& nonce) {
  prune(clock_.now());
  return expiry_.count(nonce) > 0;
}

void NonceBook::prune(Millis now) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
    expiry_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

FailureLimiter::FailureLimiter(Clock& clock, int max_failures, Millis window)
    : clock_(clock), max_failures_(max_failures), window_(window) {}

bool FailureLimiter::blocked(const std::string& source) {
  Millis now = clock_.now();
  prune(now);
  auto it = entries_.find(source);
  return it != entries_.end() && it->second.window_end > now && it->second.failures >= max_failures_;
}

void FailureLimiter::failed(const std::string& source) {
  Millis now = clock_.now();
  Entry& e = entries_[source];
  if (e.window_end <= now) e = Entry{0, now + window_};
  ++e.failures;
}

void FailureLimiter::prune(Millis now) {
  if (now < next_prune_) return;
  next_prune_ = now + window_;
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.window_end <= now ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace sipwake::registrar
