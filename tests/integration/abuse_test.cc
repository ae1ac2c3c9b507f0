// Hostile input and abuse (issue 7): the registrar must not become a weapon
// against a network it can reach, a spam cannon toward phones, or an API
// that one flooding key can drown. Real registrar, redis-server, Kamailio,
// pushgw and APNs/FCM mocks, all on loopback; every load is bounded.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/push_mocks.h"
#include "tests/support/pushgw_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/registrar_process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;
using nlohmann::json;

namespace {

constexpr const char* kApnsToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
constexpr const char* kOtherApnsToken = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

int boundSocket(int type, const std::string& ip, std::uint16_t port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  if (type == SOCK_STREAM) REQUIRE(listen(fd, 16) == 0);
  return fd;
}

// Counts every datagram and every connection that reaches ip:port (UDP and
// TCP), on a thread, until destroyed.
class CountingListener {
 public:
  CountingListener(const std::string& ip, std::uint16_t port)
      : udp_(boundSocket(SOCK_DGRAM, ip, port)), tcp_(boundSocket(SOCK_STREAM, ip, port)) {
    thread_ = std::thread([this] { run(); });
  }
  ~CountingListener() {
    stop_ = true;
    thread_.join();
    close(udp_);
    close(tcp_);
  }
  int datagrams() const { return datagrams_; }
  int connections() const { return connections_; }

 private:
  void run() {
    while (!stop_) {
      pollfd fds[2] = {{udp_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      char buf[65536];
      if (fds[0].revents & POLLIN && recv(udp_, buf, sizeof buf, 0) >= 0) ++datagrams_;
      if (fds[1].revents & POLLIN) {
        int c = accept(tcp_, nullptr, nullptr);
        if (c >= 0) {
          ++connections_;
          close(c);
        }
      }
    }
  }
  int udp_, tcp_;
  std::atomic<int> datagrams_{0}, connections_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

json devices(const std::string& token) {
  return json::array({{{"id", "iphone"}, {"provider", "apns"}, {"token", token}, {"app", "com.example.talk"}}});
}

json bodyTo(const std::string& registrar_uri, const std::string& user = "1000") {
  return {{"aor", "sip:" + user + "@pbx.example.com"},
          {"auth", {{"username", user}, {"password", "Target-Secret-1"}}},
          {"registrar", registrar_uri},
          {"devices", devices(kApnsToken)}};
}

// A PBX spoofer: raw INVITEs over UDP from 127.0.0.2 to one Contact,
// counting the final answers (and ACKing them, as a UA would, so the
// registrar does not retransmit them for 32 s).
class ForeignInviter {
 public:
  ForeignInviter(std::uint16_t registrar_port, std::string request_uri)
      : fd_(boundSocket(SOCK_DGRAM, "127.0.0.2", 0)), request_uri_(std::move(request_uri)) {
    sockaddr_in local{};
    socklen_t len = sizeof local;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len);
    port_ = ntohs(local.sin_port);
    int big = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    to_.sin_family = AF_INET;
    to_.sin_port = htons(registrar_port);
    inet_pton(AF_INET, "127.0.0.1", &to_.sin_addr);
  }
  ~ForeignInviter() { close(fd_); }

  // Sends `count` INVITEs at about `per_second`, reading answers meanwhile.
  void flood(int count, int per_second) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) {
      send(request("INVITE", i, ""));
      if (i % 20 == 19) {
        auto due = start + std::chrono::microseconds(static_cast<long long>(i + 1) * 1'000'000 / per_second);
        while (std::chrono::steady_clock::now() < due) drain(1);
      }
    }
  }
  // Reads answers until `count` distinct calls got a final one, or timeout.
  bool waitForFinals(int count, int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (static_cast<int>(finals_.size()) < count && std::chrono::steady_clock::now() < end) drain(20);
    return static_cast<int>(finals_.size()) >= count;
  }
  int finalsWith(int status) const {
    int n = 0;
    for (const auto& [_, s] : finals_) n += s == status;
    return n;
  }
  int provisionals() const { return provisionals_; }

 private:
  std::string request(const std::string& method, int n, const std::string& to_tag) {
    std::string via_port = std::to_string(port_);
    return method + " " + request_uri_ + " SIP/2.0\r\n" +
           "Via: SIP/2.0/UDP 127.0.0.2:" + via_port + ";branch=z9hG4bK-flood-" + std::to_string(n) + "\r\n" +
           "Max-Forwards: 70\r\n"
           "From: <sip:mallory@127.0.0.2>;tag=fl" + std::to_string(n) + "\r\n" +
           "To: <sip:1000@127.0.0.1>" + (to_tag.empty() ? "" : ";tag=" + to_tag) + "\r\n" +
           "Call-ID: flood-" + std::to_string(n) + "@127.0.0.2\r\n" +
           "CSeq: 1 " + method + "\r\n" +
           (method == "INVITE" ? "Contact: <sip:mallory@127.0.0.2:" + via_port + ">\r\n" : "") +
           "Content-Length: 0\r\n\r\n";
  }
  void send(const std::string& text) {
    sendto(fd_, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&to_), sizeof to_);
  }
  static std::string header(const std::string& msg, const std::string& name) {
    auto at = msg.find("\r\n" + name + ":");
    if (at == std::string::npos) return "";
    at += name.size() + 3;
    while (at < msg.size() && msg[at] == ' ') ++at;
    return msg.substr(at, msg.find("\r\n", at) - at);
  }
  void drain(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, timeout_ms) > 0) {
      timeout_ms = 0;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return;
      std::string msg(buf, static_cast<std::size_t>(n));
      if (msg.rfind("SIP/2.0 ", 0) != 0) continue;
      int status = std::atoi(msg.c_str() + 8);
      std::string call_id = header(msg, "Call-ID");
      if (status < 200) {
        ++provisionals_;
        continue;
      }
      finals_.emplace(call_id, status);
      std::string to = header(msg, "To");
      auto tag = to.find("tag=");
      int number = std::atoi(call_id.c_str() + 6);  // "flood-<n>@..."
      send(request("ACK", number, tag == std::string::npos ? "" : to.substr(tag + 4)));
    }
  }

  int fd_;
  std::uint16_t port_ = 0;
  std::string request_uri_;
  sockaddr_in to_{};
  std::map<std::string, int> finals_;  // call id -> first final status
  int provisionals_ = 0;
};

struct CallScenario {
  explicit CallScenario(RegistrarProcess::Env env)
      : registrar(redis.url(), std::move(env)), pushgw(redis.url(), push.apps_file, "pushgw-1") {}

  void bind(const std::string& id, const std::string& user, const std::string& token) {
    json body = bindingBody(user, pbx.port(), "udp");
    body["devices"] = devices(token);
    REQUIRE(registrar.put(id, body).status / 100 == 2);
    REQUIRE(registrar.waitForState(id, "registered", 10000));
  }
  int call(const std::string& user) {
    return caller.invite("sip:" + user + "@127.0.0.1",
                         "sip:127.0.0.1:" + std::to_string(pbx.port()) + ";transport=udp",
                         "sip:alice@127.0.0.1", "Alice", "");
  }
  bool waitFor180(int call, const std::string& status, int timeout_ms = 5000) {
    return caller.waitForPushStatus(call, status, timeout_ms);
  }
  std::size_t callPushes(const std::string& token) {
    std::size_t n = 0;
    for (const auto& p : push.apns->pushesFor(token)) n += p.body.value("type", "") == "call";
    return n;
  }

  RedisServer redis;
  KamailioPbx pbx;
  PushTestSetup push;
  RegistrarProcess registrar;
  PushgwProcess pushgw;
  SipTestUa caller;
};

// The lines of a PEM private key's body, and the base64 key of each line
// of a keys file: what must never show up anywhere.
std::vector<std::string> secretsIn(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("-----", 0) == 0) continue;  // PEM armour
    auto space = line.find(' ');               // "<name> <key>" lines
    std::string secret = space == std::string::npos ? line : line.substr(space + 1);
    if (secret.size() >= 16) out.push_back(secret);
  }
  return out;
}

}  // namespace

TEST_CASE("a forbidden registrar target is refused and no packet reaches it", "[abuse][target]") {
  RedisServer redis;
  // No loopback allow: loopback is as forbidden as any internal network.
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_TARGET_ALLOW", ""}});
  const std::uint16_t port = freePort();
  CountingListener on_127_0_0_2("127.0.0.2", port);
  CountingListener on_127_0_0_1("127.0.0.1", port);

  // A literal forbidden address: refused at once, nothing stored.
  for (const std::string transport : {"udp", "tcp"}) {
    auto r = registrar.put("lit-" + transport,
                           bodyTo("sip:127.0.0.2:" + std::to_string(port) + ";transport=" + transport));
    CHECK(r.status == 403);
    json error = json::parse(r.body)["error"];
    CHECK(error["code"] == "target_forbidden");
    CHECK(error["message"].get<std::string>().find("127.0.0.2 is a loopback address") != std::string::npos);
    CHECK(registrar.get("lit-" + transport).status == 404);
  }
  for (const char* other : {"sip:10.0.0.1", "sip:169.254.169.254:80;transport=tcp", "sip:[::1]:5060",
                            "sip:[fd00::1]", "sip:224.0.0.1", "sip:0.0.0.0"}) {
    INFO(other);
    CHECK(registrar.put("other", bodyTo(other)).status == 403);
  }
  // The AOR's domain is the default target: judged the same way.
  json by_aor = bodyTo("");
  by_aor.erase("registrar");
  by_aor["aor"] = "sip:1000@192.168.0.1";
  CHECK(registrar.put("by-aor", by_aor).status == 403);

  // A name that resolves to a forbidden address: accepted (names may change),
  // refused when resolved, before any packet; the binding says why.
  for (const std::string transport : {"udp", "tcp"}) {
    std::string id = "name-" + transport;
    auto r = registrar.put(id, bodyTo("sip:localhost:" + std::to_string(port) + ";transport=" + transport));
    REQUIRE(r.status == 201);
    REQUIRE(waitUntil([&] { return registrar.binding(id)["last_response"].is_object(); }, 10000));
    json b = registrar.binding(id);
    INFO(b.dump());
    CHECK(b["state"] == "retrying");
    CHECK(b["last_response"]["error"] == "target_forbidden");
    CHECK(b["last_response"]["reason"].get<std::string>().find("127.0.0.1 is a loopback address") !=
          std::string::npos);
  }
  CHECK(registrar.metric("registrar_register_refused_total", "reason=\"target_forbidden\"") >= 2);
  CHECK(registrar.metric("registrar_register_requests_total") == 0);  // none sent
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a first retry (1 s back-off)
  CHECK(on_127_0_0_2.datagrams() == 0);
  CHECK(on_127_0_0_2.connections() == 0);
  CHECK(on_127_0_0_1.datagrams() == 0);
  CHECK(on_127_0_0_1.connections() == 0);
  CHECK(registrar.log().find("REGISTER not sent: target forbidden") != std::string::npos);
}

TEST_CASE("the same listener does get REGISTERs once its range is allowed", "[abuse][target]") {
  // The counterpart of the test above: proves the listener would have seen them.
  RedisServer redis;
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_TARGET_ALLOW", "127.0.0.2/32"}});
  const std::uint16_t port = freePort();
  CountingListener listener("127.0.0.2", port);
  REQUIRE(registrar.put("allowed", bodyTo("sip:127.0.0.2:" + std::to_string(port) + ";transport=udp")).status == 201);
  CHECK(waitUntil([&] { return listener.datagrams() >= 1; }, 5000));
  // 127.0.0.1 stays forbidden: the allow names one address.
  CHECK(registrar.put("still-not", bodyTo("sip:127.0.0.1:" + std::to_string(port))).status == 403);
}

TEST_CASE("a tenant's target policy file restricts it to its domains and CIDRs", "[abuse][target]") {
  RedisServer redis;
  TempDir dir("sipwake-tenants");
  writeFile(dir.file("tenants.json"),
            R"({"tenants": {"acme": {"domains": ["pbx.acme.example"], "cidrs": ["127.0.0.3/32"]}}})");
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_TARGET_ALLOW", ""},
                                           {"REGISTRAR_TARGET_TENANT_POLICY_FILE", dir.file("tenants.json")}});
  // acme: its CIDR (loopback, vouched for by the operator) and its domain only.
  CHECK(registrar.put("a1", bodyTo("sip:127.0.0.3:5099;transport=udp")).status == 201);
  CHECK(registrar.put("a2", bodyTo("sip:8.8.8.8;transport=udp")).status == 403);
  CHECK(registrar.put("a3", bodyTo("sip:pbx.other.example;transport=udp")).status == 201);  // may resolve into its CIDR
  // globex has no rule: the global policy (no loopback).
  CHECK(registrar.put("g1", bodyTo("sip:127.0.0.3:5099;transport=udp"), kOtherTenantKey).status == 403);
}

TEST_CASE("5000 INVITEs from a foreign source get 403s and no push while real calls still ring and push",
          "[abuse][calls]") {
  CallScenario s(RegistrarProcess::Env{{"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "3s"}});
  s.bind("phone", "1000", kApnsToken);
  std::string contact = s.registrar.binding("phone")["contact"];  // sip:<token>@127.0.0.1:port;transport=udp
  ForeignInviter spoofer(s.registrar.sipPort(), contact);

  constexpr int kFlood = 5000;
  constexpr int kLegit = 5;
  std::atomic<bool> flooding{true};
  auto started = std::chrono::steady_clock::now();
  std::thread flood([&] {
    spoofer.flood(kFlood, 1000);  // about 5 s
    flooding = false;
  });
  int rang = 0, pushed = 0;
  std::vector<int> calls;
  for (int i = 0; i < kLegit; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    int call = s.call("1000");
    calls.push_back(call);
    rang += s.waitFor180(call, "Alerting-Device", 3000);
    pushed += s.waitFor180(call, "Push-Notification-Sent", 3000);
  }
  bool legit_during_flood = flooding;
  flood.join();
  double flood_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  INFO("flood took " << flood_seconds << " s");
  CHECK(legit_during_flood);
  CHECK(spoofer.waitForFinals(kFlood, 15000));
  CHECK(spoofer.finalsWith(403) == kFlood);
  CHECK(rang == kLegit);
  CHECK(pushed == kLegit);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"foreign_source\"") == kFlood);
  // Exactly the legitimate calls were pushed, nothing from the flood.
  CHECK(s.callPushes(kApnsToken) == kLegit);
  CHECK(s.pushgw.metric("pushgw_pushes_total", "provider=\"apns\",result=\"delivered\"") == kLegit);
  for (int call : calls) CHECK(s.caller.waitForFinal(call, 8000));
  // Nothing of the flood reached Redis: no call marker, no push job.
  std::string everything = RedisClient(s.redis.port()).dumpEverything();
  CHECK(everything.find("flood-") == std::string::npos);
  CHECK(everything.find("mallory") == std::string::npos);
}

TEST_CASE("a binding's push cap holds under a call storm and other bindings are unaffected",
          "[abuse][calls]") {
  CallScenario s(RegistrarProcess::Env{{"REGISTRAR_CALL_PUSH_CALLS_PER_MINUTE", "3"},
                  {"REGISTRAR_CALL_DEVICE_ACK_TIMEOUT", "3s"}});
  s.bind("stormed", "1000", kApnsToken);
  s.bind("quiet", "1001", kOtherApnsToken);
  constexpr int kStorm = 20;
  std::vector<int> calls;
  for (int i = 0; i < kStorm; ++i) calls.push_back(s.call("1000"));
  int capped = 0, rung = 0;
  for (int call : calls) {
    REQUIRE(s.caller.waitForFinal(call, 10000));
    auto responses = s.caller.responses(call);
    bool alerted = false;
    for (const auto& r : responses) alerted |= r.status == 180;
    rung += alerted;
    if (s.caller.finalStatus(call) == 480 && responses.back().header("x-push-reason") == "Push-Rate-Limited") {
      ++capped;
      CHECK_FALSE(alerted);  // no ringing without a push behind it
    }
  }
  CHECK(rung == 3);
  CHECK(capped == kStorm - 3);
  REQUIRE(waitUntil([&] { return s.callPushes(kApnsToken) >= 3; }, 5000));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(s.callPushes(kApnsToken) == 3);
  CHECK(s.registrar.metric("registrar_pushes_capped_total", "type=\"call\"") == kStorm - 3);
  CHECK(s.registrar.metric("registrar_invites_total", "result=\"push_capped\"") == kStorm - 3);

  // The other binding rings and pushes as usual.
  int other = s.call("1001");
  CHECK(s.waitFor180(other, "Push-Notification-Sent"));
  CHECK(s.callPushes(kOtherApnsToken) == 1);

  // After all that: no private key, credential key, API key or SIP password
  // in Redis, either service's logs or metrics.
  std::vector<std::string> secrets = secretsIn(readFile(s.push.apns_key_file));
  json account = json::parse(readFile(s.push.service_account_file));
  for (const auto& line : secretsIn(account["private_key"].get<std::string>())) secrets.push_back(line);
  for (const auto& key : secretsIn(readFile(s.registrar.credentialKeysFile()))) secrets.push_back(key);
  for (const auto& key : secretsIn(readFile(s.registrar.apiKeysFile()))) secrets.push_back(key);
  secrets.push_back("pw-1000");  // bindingBody's passwords
  secrets.push_back("pw-1001");
  REQUIRE(secrets.size() >= 8);
  std::string everything = RedisClient(s.redis.port()).dumpEverything();
  std::string logs = s.registrar.log() + s.pushgw.log();
  std::string metrics = s.registrar.metricsText() + s.pushgw.metricsText();
  for (const auto& secret : secrets) {
    INFO(secret);
    CHECK(everything.find(secret) == std::string::npos);
    CHECK(logs.find(secret) == std::string::npos);
    CHECK(metrics.find(secret) == std::string::npos);
  }
}

TEST_CASE("an API request flood gets 429 for the flooding key while the other key is served", "[abuse][api]") {
  RedisServer redis;
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_API_RATE_PER_KEY", "20"},
                                           {"REGISTRAR_API_RATE_BURST", "20"}});
  HttpClient flooder("127.0.0.1", registrar.apiPort());
  HttpClient other("127.0.0.1", registrar.apiPort());
  const std::vector<std::pair<std::string, std::string>> flood_auth = {
      {"Authorization", std::string("Bearer ") + kTenantKey}};
  const std::vector<std::pair<std::string, std::string>> other_auth = {
      {"Authorization", std::string("Bearer ") + kOtherTenantKey}};
  int ok = 0, limited = 0, other_served = 0, other_limited = 0;
  std::string retry_after;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 500; ++i) {
    auto r = flooder.request("GET", "/v1/bindings/nope", "", flood_auth);
    if (r.status == 404) ++ok;
    if (r.status == 429) {
      ++limited;
      json error = json::parse(r.body)["error"];
      CHECK(error["code"] == "rate_limited");
      retry_after = r.header("retry-after");
    }
    if (i % 50 == 0) {
      auto o = other.request("GET", "/v1/bindings/nope", "", other_auth);
      other_served += o.status == 404;
      other_limited += o.status == 429;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("500 requests in " << seconds << " s: " << ok << " served, " << limited << " limited");
  // At most the burst plus the rate over the time taken went through.
  CHECK(ok <= 20 + static_cast<int>(seconds * 20) + 1);
  CHECK(limited >= 500 - 20 - static_cast<int>(seconds * 20) - 1);
  CHECK(retry_after == "1");
  CHECK(other_served == 10);
  CHECK(other_limited == 0);
  // Health and metrics are not keyed: never limited.
  HttpClient probe("127.0.0.1", registrar.apiPort());
  CHECK(probe.request("GET", "/healthz").status == 200);
  // Operators see the flood: every answer counted by route and status.
  // (prometheus-cpp writes the labels in name order: code, route.)
  const std::string route = R"(,route="GET /v1/bindings/{id}")";
  CHECK(registrar.metric("registrar_api_requests_total", R"(code="429")" + route) == limited);
  CHECK(registrar.metric("registrar_api_requests_total", R"(code="404")" + route) == ok + other_served);
  CHECK(registrar.metric("registrar_api_requests_total", R"(code="200",route="GET /healthz")") >= 1);
}

TEST_CASE("another tenant's binding is indistinguishable from an unknown one", "[abuse][api]") {
  RedisServer redis;
  KamailioPbx pbx;
  RegistrarProcess registrar(redis.url());
  REQUIRE(registrar.put("mine", bindingBody("1000", pbx.port())).status == 201);
  auto theirs = registrar.get("mine", kOtherTenantKey);
  auto unknown = registrar.get("never-was", kOtherTenantKey);
  CHECK(theirs.status == 404);
  CHECK(theirs.status == unknown.status);
  CHECK(theirs.body == unknown.body);
  CHECK(registrar.del("mine", kOtherTenantKey).status == 404);
  CHECK(registrar.put("mine", bindingBody("1000", pbx.port()), kOtherTenantKey).status == 201);  // its own
  CHECK(registrar.binding("mine")["aor"] == bindingBody("1000", pbx.port())["aor"]);
}

TEST_CASE("a credential keys file readable by its group is refused at start", "[abuse][secrets]") {
  TempDir dir("sipwake-keys");
  writeFile(dir.file("keys"), "k1 " + std::string(43, 'A') + "=\n");
  runCommand("chmod 640 " + shellQuote(dir.file("keys")));
  int status = 0;
  std::string out = runCommand("timeout 10 env REGISTRAR_CREDENTIAL_KEYS_FILE=" + shellQuote(dir.file("keys")) +
                                   " " + std::string(SIPWAKE_BINARY_DIR) + "/registrar 2>&1",
                               &status);
  CHECK(status != 0);
  CHECK(out.find("readable by other users or its group; chmod 600 it") != std::string::npos);
}

TEST_CASE("the API cuts off slow clients and refuses oversized requests", "[abuse][api]") {
  RedisServer redis;
  RegistrarProcess registrar(redis.url(), {{"REGISTRAR_API_REQUEST_TIMEOUT", "1s"},
                                           {"REGISTRAR_API_MAX_BODY_BYTES", "2048"},
                                           {"REGISTRAR_API_MAX_HEADER_BYTES", "2048"}});
  HttpClient raw("127.0.0.1", registrar.apiPort());
  // Headers that never end: 408 after the request timeout, connection closed.
  auto started = std::chrono::steady_clock::now();
  std::string slow = raw.sendRaw("GET /v1/bindings/x HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n");
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(slow.rfind("HTTP/1.1 408", 0) == 0);
  CHECK(slow.find("request_timeout") != std::string::npos);
  CHECK(waited < 5);
  // Too many header bytes, too large a body: refused with a JSON error.
  std::string big_header = raw.sendRaw("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " +
                                       std::string(4096, 'x') + "\r\n\r\n");
  CHECK(big_header.rfind("HTTP/1.1 431", 0) == 0);
  CHECK(big_header.find("headers_too_large") != std::string::npos);
  auto r = registrar.request("PUT", "/v1/bindings/big", std::string(4096, ' ') + "{}",
                             {{"Authorization", std::string("Bearer ") + kTenantKey},
                              {"Content-Type", "application/json"}});
  CHECK(r.status == 413);
  CHECK(registrar.running());
}
