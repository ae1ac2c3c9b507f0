// Incoming-call benchmarks. Not tests: they assert only that the run itself
// worked, and print figures. Everything runs on 127.0.0.1.
//
//   call_bench "[latency]"     INVITE -> push and INVITE -> first 180, through
//                              Kamailio, beside a bare UA that rings at once
//   call_bench "[throughput]"  pushgw draining a preloaded stream into nghttpd,
//                              beside h2load's rate to the same server
//
// Knobs (environment): BENCH_RATES (calls/s, default "100,500,1000"),
// BENCH_SECONDS per rate (default 3), BENCH_PUSHES (default 200000),
// BENCH_SAMPLES_DIR (when set: every measured latency, one millisecond value a
// line, in <dir>/latency-<series>-<rate>.txt, and the throughput figures in
// <dir>/throughput.txt; bench/report.sh plots them).
// BENCH_TRACE (default true: the per-binding trace on).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/process.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"
#include "tests/support/test_certs.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::vector<int> envRates() {
  const char* v = std::getenv("BENCH_RATES");
  std::stringstream in(v && *v ? v : "100,500,1000");
  std::vector<int> rates;
  for (std::string item; std::getline(in, item, ',');) {
    int rate = std::atoi(item.c_str());
    if (rate > 0 && rate <= 2000) rates.push_back(rate);  // bounded load
  }
  return rates;
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Summary {
  std::size_t count = 0;
  double p50 = 0, p99 = 0, max = 0;  // milliseconds
};

Summary summarize(std::vector<double> ms) {
  Summary s;
  s.count = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))]; };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.max = ms.back();
  return s;
}

void printRow(const char* what, int rate, const Summary& s, std::size_t expected) {
  std::printf("%-34s %6d %7zu/%-7zu %8.3f %8.3f %8.3f\n", what, rate, s.count, expected, s.p50, s.p99,
              s.max);
  std::fflush(stdout);
}

// Raw samples for bench/report.sh, when BENCH_SAMPLES_DIR is set.
void dumpSamples(const std::string& series, int rate, const std::vector<double>& ms) {
  const char* dir = std::getenv("BENCH_SAMPLES_DIR");
  if (!dir || !*dir) return;
  std::ofstream out(std::string(dir) + "/latency-" + series + "-" + std::to_string(rate) + ".txt");
  for (double v : ms) out << v << "\n";
}

void dumpFigures(const std::string& name, const std::map<std::string, double>& figures) {
  const char* dir = std::getenv("BENCH_SAMPLES_DIR");
  if (!dir || !*dir) return;
  std::ofstream out(std::string(dir) + "/" + name + ".txt");
  for (const auto& [key, value] : figures) out << key << " " << value << "\n";
}

// One command in the Redis protocol, for redis-cli --pipe.
std::string respCommand(const std::vector<std::string>& argv) {
  std::string out = "*" + std::to_string(argv.size()) + "\r\n";
  for (const auto& a : argv) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// A hex APNs token that matches none of the mock's scripted prefixes.
std::string apnsToken(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "f%063x", i + 1);
  return buf;
}

// Sends `count` INVITEs at `rate` per second to the users from `user_of`;
// returns each call's handle and send time.
struct SentCall {
  int handle;
  double sent_at;
};

// When some calls had no 180: how they ended, to see where they were lost.
void printFinals(SipTestUa& caller, const std::vector<SentCall>& calls) {
  std::map<int, int> finals;
  for (const auto& c : calls) ++finals[caller.finalStatus(c.handle)];
  for (const auto& [status, n] : finals) std::printf("    final %d: %d calls\n", status, n);
  for (const auto& c : calls) {
    auto responses = caller.responses(c.handle);
    if (responses.empty() || responses.back().status < 500) continue;
    const auto& r = responses.back();
    std::printf("    e.g. %d %s (server: %s, local: %d)\n", r.status, r.reason.c_str(), r.header("server").c_str(),
                r.local ? 1 : 0);
    break;
  }
}

template <typename UserOf>
std::vector<SentCall> placeCalls(SipTestUa& caller, const std::string& proxy, int rate, int count,
                                 UserOf user_of) {
  const std::string sdp =
      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
  std::vector<SentCall> sent;
  sent.reserve(count);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    std::this_thread::sleep_until(start + std::chrono::microseconds(1000000LL * i / rate));
    double at = nowSeconds();
    int handle = caller.invite("sip:" + user_of(i) + "@127.0.0.1", proxy, "sip:alice@127.0.0.1", "Alice", sdp);
    sent.push_back({handle, at});
  }
  return sent;
}

std::vector<double> firstRingingMs(SipTestUa& caller, const std::vector<SentCall>& sent) {
  std::vector<double> ms;
  for (const auto& c : sent) {
    for (const auto& r : caller.responses(c.handle)) {
      if (r.status == 180 && !r.local) {
        ms.push_back((r.at - c.sent_at) * 1000);
        break;
      }
    }
  }
  return ms;
}

}  // namespace

TEST_CASE("INVITE to push and INVITE to first 180 at bounded call rates", "[latency]") {
  const int kBindings = 20;
  const int seconds = std::clamp(envInt("BENCH_SECONDS", 3), 1, 30);
  RedisServerOptions redis_options;
  redis_options.appendfsync = "everysec";
  RedisServer redis(redis_options);
  KamailioPbxOptions pbx_options;
  pbx_options.log_registers = false;
  pbx_options.shm_mb = 512;
  KamailioPbx pbx(pbx_options);
  PushTestSetup push;
  // T1 short, so ringing calls end (480) between the rates.
  // BENCH_TRACE=false: the per-binding trace off, to see what it costs the INVITE path.
  const char* trace = std::getenv("BENCH_TRACE");
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "1s"},
                                           {"REGISTRAR_LOG_LEVEL", "warn"},
                                           {"REGISTRAR_TRACE_ENABLED", trace && *trace ? trace : "true"}});
  PushgwProcess pushgw(redis.url(), push.apps_file, "pushgw-bench", {{"PUSHGW_LOG_LEVEL", "warn"}});

  for (int i = 0; i < kBindings; ++i) {
    std::string user = std::to_string(2000 + i);
    json body = bindingBody(user, pbx.port(), "udp");
    body["devices"] = json::array({{{"id", "phone"}, {"provider", "apns"}, {"token", apnsToken(i)},
                                    {"app", push.apns_app}}});
    REQUIRE(registrar.put("bench-" + user, body).status / 100 == 2);
  }
  for (int i = 0; i < kBindings; ++i) {
    REQUIRE(registrar.waitForState("bench-" + std::to_string(2000 + i), "registered", 20000));
  }
  // The bare UA: rings at once, busy a second later.
  SipTestUa bare;
  REQUIRE(bare.registerTo("sip:" + pbx.hostPort(), "2999", "pw-2999", 600) == 200);
  SipInviteAnswer ring;
  ring.ring_first = true;
  ring.status = 486;
  ring.final_delay_ms = 1000;
  bare.setInviteAnswer(ring);

  SipTestUa caller;
  const std::string proxy = "sip:" + pbx.hostPort() + ";transport=udp";
  std::printf("\n%-34s %6s %15s %8s %8s %8s\n", "latency (ms)", "calls/s", "measured", "p50", "p99",
              "max");
  std::size_t pushes_before = 0;
  for (int rate : envRates()) {
    const int count = rate * seconds;
    auto calls = placeCalls(caller, proxy, rate, count,
                            [&](int i) { return std::to_string(2000 + i % kBindings); });
    bool all_pushed = waitUntil([&] { return push.apns->pushCount() >= pushes_before + count; }, 10000);
    if (!all_pushed) {
      printFinals(caller, calls);
      std::printf("  pushes received %zu of %d; pushgw delivered %.0f, queue depth %.0f\n",
                  push.apns->pushCount() - pushes_before, count,
                  pushgw.metric("pushgw_pushes_total", "result=\"delivered\""), pushgw.metric("pushgw_queue_depth"));
    }
    std::map<std::string, double> sent_by_call_id;
    for (const auto& c : calls) sent_by_call_id[caller.callId(c.handle)] = c.sent_at;
    std::vector<double> to_push;
    auto pushes = push.apns->pushes();
    for (std::size_t i = pushes_before; i < pushes.size(); ++i) {
      auto it = sent_by_call_id.find(pushes[i].body.value("call_id", ""));
      if (it != sent_by_call_id.end()) to_push.push_back((pushes[i].at - it->second) * 1000);
    }
    pushes_before = pushes.size();
    printRow("sipwake INVITE -> push received", rate, summarize(to_push), count);
    dumpSamples("invite-push", rate, to_push);
    REQUIRE(waitUntil([&] {
      for (const auto& c : calls) if (caller.finalStatus(c.handle) == 0) return false;
      return true;
    }, 20000));
    auto ringing = firstRingingMs(caller, calls);
    printRow("sipwake INVITE -> first 180", rate, summarize(ringing), count);
    dumpSamples("invite-180", rate, ringing);

    auto bare_calls = placeCalls(caller, proxy, rate, count, [](int) { return std::string("2999"); });
    REQUIRE(waitUntil([&] {
      for (const auto& c : bare_calls) if (caller.finalStatus(c.handle) == 0) return false;
      return true;
    }, 20000));
    auto bare_ringing = firstRingingMs(caller, bare_calls);
    printRow("bare UA INVITE -> first 180", rate, summarize(bare_ringing), count);
    dumpSamples("bare-180", rate, bare_ringing);
    if (bare_ringing.size() < bare_calls.size()) printFinals(caller, bare_calls);
  }
  std::printf("pushgw: %.0f pushes delivered, invite_to_push_seconds sum %.3f s over %.0f\n",
              pushgw.metric("pushgw_pushes_total", "result=\"delivered\""),
              pushgw.metric("invite_to_push_seconds_sum"), pushgw.metric("invite_to_push_seconds_count"));
}

TEST_CASE("pushgw throughput from a preloaded stream beside h2load", "[throughput]") {
  const int kPushes = std::clamp(envInt("BENCH_PUSHES", 200000), 1000, 1000000);
  const TestCertificates& certs = sharedTestCertificates();
  TempDir dir("sipwake-bench");
  const std::string token = apnsToken(7);
  runCommand("mkdir -p " + shellQuote(dir.file("docroot/3/device")) + " && touch " +
             shellQuote(dir.file("docroot/3/device/" + token)));
  // nghttpd: the C server from nghttp2, TLS, answers 200 to every POST.
  std::uint16_t port = freePort();
  ChildProcess server({"nghttpd", "-a", "127.0.0.1", "-d", dir.file("docroot"), std::to_string(port),
                       certs.server_key_file, certs.server_cert_file},
                      dir.file("nghttpd.log"));
  REQUIRE(waitUntil([&] {
    int listening = 1;
    runCommand("ss -ltnH 'sport = :" + std::to_string(port) + "' | grep -q LISTEN", &listening);
    return listening == 0;
  }, 5000));
  const std::string url = "https://127.0.0.1:" + std::to_string(port);

  // The plain nghttp2 client: h2load, one connection, 100 streams in flight.
  json payload = {{"aps", json::object()}, {"type", "message"}, {"from", "sip:bob@127.0.0.1"},
                  {"body", "bench"}};
  writeFile(dir.file("body.json"), payload.dump());
  std::string h2load = runCommand(
      "h2load -n " + std::to_string(kPushes) + " -c 1 -m 100 -d " + shellQuote(dir.file("body.json")) +
      " -H 'apns-topic: com.example.talk' -H 'apns-push-type: alert' -H 'authorization: bearer x' " +
      url + "/3/device/" + token + " 2>&1");
  double h2load_rate = 0;
  auto at = h2load.find("req/s");
  if (at != std::string::npos) {
    auto start = h2load.rfind(", ", at);
    h2load_rate = std::atof(h2load.substr(start + 2, at - start - 2).c_str());
  }
  INFO(h2load);
  REQUIRE(h2load.find(std::to_string(kPushes) + " succeeded") != std::string::npos);

  // pushgw: the same server as its APNs endpoint, the stream preloaded.
  RedisServerOptions redis_options;
  redis_options.appendfsync = "everysec";
  RedisServer redis(redis_options);
  PushTestSetup keys;
  json apps = {{"apps",
                {{{"app", "com.example.talk"}, {"provider", "apns"}, {"team_id", keys.team_id},
                  {"key_id", keys.key_id}, {"key_file", keys.apns_key_file}, {"url", url},
                  {"sandbox_url", url}, {"ca_file", certs.ca_file}}}}};
  writeFile(dir.file("apps.json"), apps.dump());
  std::string protocol;
  {
    json job = {{"type", "message"}, {"tenant", "bench"}, {"binding", "b1"},
                {"device", {{"id", "phone"}, {"provider", "apns"}, {"token", token},
                            {"app", "com.example.talk"}, {"environment", "production"}}},
                {"from", "sip:bob@127.0.0.1"}, {"to", "sip:1000@127.0.0.1"}, {"body", "bench"},
                {"sent_at", 0}, {"received_at", 0}, {"expires_at", 0}, {"instance", "bench"}};
    std::string entry = respCommand({"XADD", "sipwake:push:jobs", "*", "job", job.dump()});
    protocol.reserve(entry.size() * kPushes);
    for (int i = 0; i < kPushes; ++i) protocol += entry;
  }
  writeFile(dir.file("load.resp"), protocol);
  int status = 0;
  runCommand("redis-cli -p " + std::to_string(redis.port()) + " --pipe < " + shellQuote(dir.file("load.resp")),
             &status);
  REQUIRE(status == 0);

  PushgwProcess pushgw(redis.url(), dir.file("apps.json"), "pushgw-bench", {{"PUSHGW_LOG_LEVEL", "warn"}});
  // Rate between the first delivered push and the last, sampled every 10 ms.
  double first_at = 0, first_count = 0, done_at = 0, done = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    done = pushgw.metric("pushgw_pushes_total");
    double t = nowSeconds();
    if (done > 0 && first_at == 0) first_at = t, first_count = done;
    if (done >= kPushes) {
      done_at = t;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO(pushgw.log());
  REQUIRE(done_at > 0);
  double delivered = pushgw.metric("pushgw_pushes_total", "result=\"delivered\"");
  double rate = (done - first_count) / std::max(1e-6, done_at - first_at);
  std::printf("\n%-40s %12s\n", "pushes to nghttpd (TLS, loopback)", "pushes/s");
  std::printf("%-40s %12.0f\n", "h2load (plain nghttp2 client)", h2load_rate);
  std::printf("%-40s %12.0f   (%.0f of %d delivered, %.0f %% of h2load)\n", "pushgw (stream -> APNs provider)",
              rate, delivered, kPushes, 100 * rate / std::max(1.0, h2load_rate));
  std::fflush(stdout);
  dumpFigures("throughput", {{"pushes", kPushes}, {"delivered", delivered}, {"h2load_per_s", h2load_rate},
                             {"pushgw_per_s", rate}});
  CHECK(delivered == kPushes);
}
