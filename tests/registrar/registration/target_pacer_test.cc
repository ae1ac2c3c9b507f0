#include "registrar/registration/target_pacer.h"

#include <algorithm>
#include <map>
#include <string>

#include <catch2/catch.hpp>

using namespace sipwake;
using namespace sipwake::registrar;

TEST_CASE("pacer spaces sends at the configured rate per target", "[pacer]") {
  TargetPacer pacer({100, 1000});
  for (std::uint32_t i = 0; i < 300; ++i) pacer.enqueue("a", i, 1, false);
  for (std::uint32_t i = 0; i < 300; ++i) pacer.enqueue("b", i, 1, false);
  int sent_a = 0, sent_b = 0;
  Millis now = 1'000'000;
  for (int step = 0; step <= 1000; ++step, ++now) {
    pacer.dispatch(now, [&](std::uint32_t, std::uint64_t) { return true; });
    if (step == 999) {
      sent_a = 300 - static_cast<int>(pacer.queued()) / 2;
    }
  }
  (void)sent_b;
  // Over one second: at most rate + 1 (the first one goes at once).
  CHECK(sent_a <= 101);
  CHECK(sent_a >= 99);
}

TEST_CASE("pacer never sends a stale entry and frees places on release", "[pacer]") {
  TargetPacer pacer({1e6, 2});
  pacer.enqueue("a", 1, 1, false);
  pacer.enqueue("a", 2, 1, false);
  pacer.enqueue("a", 3, 1, false);
  std::vector<std::uint32_t> sent;
  auto send = [&](std::uint32_t slot, std::uint64_t) {
    if (slot == 2) return false;  // stale
    sent.push_back(slot);
    return true;
  };
  pacer.dispatch(1000, send);
  CHECK(sent == std::vector<std::uint32_t>{1, 3});
  CHECK(pacer.inFlight("a") == 2);
  pacer.enqueue("a", 4, 1, true);
  pacer.dispatch(1001, send);
  CHECK(sent.size() == 2);
  pacer.release("a");
  pacer.dispatch(1002, send);
  CHECK(sent.back() == 4);
}

TEST_CASE("pacer bursts at most 10 ms worth and keeps the per-second cap", "[pacer]") {
  TargetPacer pacer({4000, 100000});
  for (std::uint32_t i = 0; i < 20000; ++i) pacer.enqueue("pbx", i, 1, false);
  std::vector<Millis> sent_at;
  Millis now = 5'000'000;
  for (int step = 0; step < 3000; ++step, ++now) {
    pacer.dispatch(now, [&](std::uint32_t, std::uint64_t) {
      sent_at.push_back(now);
      return true;
    });
  }
  // At the start, one burst of 10 ms worth (40) goes at once.
  CHECK(std::count(sent_at.begin(), sent_at.end(), 5'000'000) <= 41);
  // Any one-second window: at most the rate plus the burst.
  std::size_t worst = 0;
  for (std::size_t i = 0, j = 0; i < sent_at.size(); ++i) {
    while (sent_at[i] - sent_at[j] >= 1000) ++j;
    worst = std::max(worst, i - j + 1);
  }
  CHECK(worst <= 4041);
  CHECK(worst >= 3990);
}

TEST_CASE("pacer holds the global cap across targets and shares it fairly", "[pacer]") {
  TargetPacer::Limits limits;
  limits.rate_per_second = 1000;
  limits.max_in_flight = 100000;
  limits.global_rate_per_second = 300;
  TargetPacer pacer(limits);
  const char* targets[] = {"a", "b", "c"};
  for (const char* t : targets) {
    for (std::uint32_t i = 0; i < 1000; ++i) pacer.enqueue(t, i, 1, false);
  }
  int total = 0;
  Millis now = 2'000'000;
  for (int step = 0; step < 1000; ++step, ++now) {
    pacer.dispatch(now, [&](std::uint32_t, std::uint64_t) {
      ++total;
      return true;
    });
  }
  // Each target alone may send 1000/s; together only 300/s (+ the burst).
  CHECK(total <= 305);
  CHECK(total >= 297);
  CHECK(pacer.queued() == 3000u - static_cast<std::size_t>(total));

  // Round robin: no target starves the others under the global cap.
  std::map<std::string, int> sent;
  TargetPacer fair(limits);
  for (const char* t : targets) {
    for (std::uint32_t i = 0; i < 1000; ++i) fair.enqueue(t, (t[0] - 'a') * 10000 + i, 1, false);
  }
  now = 3'000'000;
  for (int step = 0; step < 1000; ++step, ++now) {
    fair.dispatch(now, [&](std::uint32_t slot, std::uint64_t) {
      ++sent[std::string(1, static_cast<char>('a' + slot / 10000))];
      return true;
    });
  }
  int fewest = 1000, most = 0;
  for (const auto& [_, n] : sent) {
    fewest = std::min(fewest, n);
    most = std::max(most, n);
  }
  CHECK(sent.size() == 3);
  CHECK(most - fewest <= 2);
  CHECK(fair.stats().delayed_by_global > 0);
}
