#include "common/http2/http2_client.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "common/event/event_loop.h"
#include "common/http/http_server.h"
#include "common/http/tls_server_context.h"
#include "tests/support/loop_helpers.h"
#include "tests/support/http2_test_server.h"
#include "tests/support/process.h"
#include "tests/support/test_certs.h"

using namespace sipwake;
using namespace sipwake::http2;
using sipwake::testing::Http2ServerRequest;
using sipwake::testing::Http2ServerResponse;
using sipwake::testing::Http2TestServer;
using sipwake::testing::Http2TestServerOptions;
using sipwake::testing::sharedTestCertificates;
using namespace std::chrono_literals;
using sipwake::testing::eventually;
using sipwake::testing::onLoop;

namespace {

Http2TestServerOptions serverOptions(std::uint32_t max_streams = 100) {
  const auto& certs = sharedTestCertificates();
  Http2TestServerOptions o;
  o.cert_file = certs.server_cert_file;
  o.key_file = certs.server_key_file;
  o.max_concurrent_streams = max_streams;
  return o;
}

ClientOptions clientOptions(std::uint16_t port) {
  ClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.ca_file = sharedTestCertificates().ca_file;
  return o;
}

Request post(const std::string& path, std::string body = "{}",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
  Request r;
  r.method = "POST";
  r.path = path;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

// A Client on its own loop thread; results are collected per request id and
// every callback is counted, so a double answer shows.
class ClientHarness {
 public:
  explicit ClientHarness(ClientOptions options) {
    onLoop(loop(), [&] { client_ = std::make_unique<Client>(loop(), options); });
  }
  ~ClientHarness() {
    destroy();
    thread_.stop();
  }

  EventLoop& loop() { return thread_.loop(); }

  // Submits (id, request) pairs in one loop task. Checks that no callback
  // runs inside submit().
  void submit(std::vector<std::pair<int, Request>> requests) {
    onLoop(loop(), [&] {
      for (auto& [id, request] : requests) {
        auto guard = std::make_shared<bool>(false);
        client_->submit(std::move(request), [this, id, guard](Response&& r) {
          if (!*guard) inside_submit_ = true;
          record(id, std::move(r));
        });
        *guard = true;
      }
      max_in_flight_ = std::max(max_in_flight_.load(), client_->inFlight());
    });
  }
  void submit(int id, Request request) {
    std::vector<std::pair<int, Request>> v;
    v.emplace_back(id, std::move(request));
    submit(std::move(v));
  }

  bool waitForResults(std::size_t n, std::chrono::milliseconds timeout = 20s) {
    return eventually([&] { return callbacks() >= n; }, timeout);
  }

  std::size_t callbacks() {
    std::lock_guard lock(mutex_);
    return callbacks_;
  }
  std::map<int, Response> results() {
    std::lock_guard lock(mutex_);
    return results_;
  }
  Response result(int id) {
    std::lock_guard lock(mutex_);
    return results_.at(id);
  }
  std::size_t duplicates() {
    std::lock_guard lock(mutex_);
    return duplicates_;
  }
  bool calledInsideSubmit() const { return inside_submit_; }
  std::size_t maxInFlight() const { return max_in_flight_; }

  template <typename Fn>
  auto withClient(Fn fn) {
    return onLoop(loop(), [&] { return fn(*client_); });
  }
  void destroy() {
    onLoop(loop(), [&] { client_.reset(); });
  }

 private:
  void record(int id, Response&& r) {
    // Runs on the loop thread: sample the stream count as responses arrive.
    if (client_) max_in_flight_ = std::max(max_in_flight_.load(), client_->inFlight());
    std::lock_guard lock(mutex_);
    ++callbacks_;
    if (!results_.emplace(id, std::move(r)).second) ++duplicates_;
  }

  LoopThread thread_{"h2-client-test"};
  std::unique_ptr<Client> client_;
  std::mutex mutex_;
  std::map<int, Response> results_;
  std::size_t callbacks_ = 0;
  std::size_t duplicates_ = 0;
  std::atomic<bool> inside_submit_{false};
  std::atomic<std::size_t> max_in_flight_{0};
};

Http2ServerResponse ok(const Http2ServerRequest&) {
  return {};
}

// A port with nothing listening on it.
std::uint16_t closedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("http2 client: requests with bodies and headers arrive intact", "[http2]") {
  Http2TestServer server(serverOptions(), [](const Http2ServerRequest& r) {
    Http2ServerResponse resp;
    resp.status = r.path == "/created" ? 201 : 200;
    resp.headers = {{"X-Echo-Length", std::to_string(r.body.size())}, {"apns-id", "abc-123"}};
    resp.body =
        r.path == "/big-response" ? std::string(60000, 'r') : "echo:" + r.body.substr(0, 10);
    return resp;
  });
  ClientHarness h(clientOptions(server.port()));

  std::string json = R"({"aps":{"alert":"hello","sound":"default"}})";
  std::string large(300 * 1024, 'x');  // beyond every initial flow-control window
  for (std::size_t i = 0; i < large.size(); i += 97) large[i] = static_cast<char>('a' + i % 26);
  std::vector<std::pair<int, Request>> batch;
  batch.emplace_back(1, post("/created", json,
                             {{"apns-topic", "com.example.app"},
                              {"Apns-Push-Type", "alert"},
                              {"authorization", "bearer secret-token"}}));
  batch.emplace_back(2, post("/large", large));
  Request get;
  get.method = "GET";
  get.path = "/big-response";
  batch.emplace_back(3, get);
  h.submit(std::move(batch));
  REQUIRE(h.waitForResults(3));
  CHECK_FALSE(h.calledInsideSubmit());

  Response r1 = h.result(1);
  CHECK(r1.error.empty());
  CHECK(r1.status == 201);
  REQUIRE(r1.header("x-echo-length") != nullptr);
  CHECK(*r1.header("x-echo-length") == std::to_string(json.size()));
  REQUIRE(r1.header("apns-id") != nullptr);
  CHECK(*r1.header("apns-id") == "abc-123");
  CHECK(r1.body == "echo:" + json.substr(0, 10));

  Response r2 = h.result(2);
  CHECK(r2.error.empty());
  CHECK(r2.status == 200);
  CHECK(*r2.header("x-echo-length") == std::to_string(large.size()));

  Response r3 = h.result(3);
  CHECK(r3.error.empty());
  CHECK(r3.body == std::string(60000, 'r'));

  auto received = server.received();
  REQUIRE(received.size() == 3);
  std::map<std::string, Http2ServerRequest> by_path;
  for (auto& r : received) by_path[r.path] = r;
  const auto& first = by_path.at("/created");
  CHECK(first.method == "POST");
  CHECK(first.authority == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(first.body == json);
  std::map<std::string, std::string> headers(first.headers.begin(), first.headers.end());
  CHECK(headers["apns-topic"] == "com.example.app");
  CHECK(headers["apns-push-type"] == "alert");  // lower-cased on the way out
  CHECK(headers["authorization"] == "bearer secret-token");
  CHECK(headers["content-length"] == std::to_string(json.size()));
  CHECK(by_path.at("/large").body == large);
  CHECK(by_path.at("/big-response").method == "GET");
  CHECK(by_path.at("/big-response").body.empty());
  CHECK(server.connectionsAccepted() == 1);
  CHECK(h.withClient([](Client& c) { return c.connected(); }));
}

TEST_CASE("http2 client: 10,000 requests within the server's stream limit", "[http2]") {
  Http2TestServer server(serverOptions(100), ok);
  ClientHarness h(clientOptions(server.port()));
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < 10000; ++i) batch.emplace_back(i, post("/3/device/" + std::to_string(i)));
  h.submit(std::move(batch));
  REQUIRE(h.waitForResults(10000, 60s));
  auto results = h.results();
  std::size_t ok_count = 0;
  for (auto& [id, r] : results) ok_count += r.error.empty() && r.status == 200;
  CHECK(ok_count == 10000);
  CHECK(h.duplicates() == 0);
  CHECK(server.streamLimitViolations() == 0);
  CHECK(server.streamResetsReceived() == 0);  // never RST_STREAM after a response
  CHECK(server.maxOpenStreams() <= 100);
  CHECK(server.maxOpenStreams() > 1);
  CHECK(h.maxInFlight() <= 100);
  CHECK(server.connectionsAccepted() == 1);
  CHECK(h.withClient([](Client& c) { return c.peerMaxConcurrentStreams(); }) == 100);
  CHECK(h.withClient([](Client& c) { return c.queued() + c.inFlight(); }) == 0);
}

TEST_CASE("http2 client: a stream limit of 1 raised after the first success (APNs)", "[http2]") {
  auto options = serverOptions(1);
  options.max_concurrent_streams_after_first_success = 50;
  Http2TestServer server(options, ok);
  ClientHarness h(clientOptions(server.port()));
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < 500; ++i) batch.emplace_back(i, post("/3/device/x"));
  h.submit(std::move(batch));
  REQUIRE(h.waitForResults(500));
  auto results = h.results();
  std::size_t ok_count = 0;
  for (auto& [id, r] : results) ok_count += r.error.empty() && r.status == 200;
  // Nothing refused: the first burst was not sent at once.
  CHECK(ok_count == 500);
  CHECK(server.streamLimitViolations() == 0);
  // ...and the queue drained in parallel once the limit rose.
  CHECK(server.maxOpenStreams() > 1);
  CHECK(server.maxOpenStreams() <= 50);
  CHECK(h.withClient([](Client& c) { return c.peerMaxConcurrentStreams(); }) == 50);
  auto received = server.received();
  REQUIRE(received.size() == 500);
  CHECK(server.connectionsAccepted() == 1);
}

TEST_CASE("http2 client: GOAWAY mid-load loses and duplicates nothing", "[http2]") {
  const int total = 3000;
  std::promise<void> halfway;
  std::atomic<int> seen{0};
  std::atomic<bool> from_handler{false};
  Http2TestServer* server_ptr = nullptr;
  Http2TestServer server(serverOptions(20), [&](const Http2ServerRequest&) {
    if (++seen == 510) {
      if (from_handler) {
        server_ptr->sendGoaway();  // mid-batch: later streams are refused
      } else {
        halfway.set_value();
      }
    }
    std::this_thread::sleep_for(20us);  // keep the load going while GOAWAY lands
    return Http2ServerResponse{};
  });
  server_ptr = &server;
  ClientHarness h(clientOptions(server.port()));

  std::string method;
  SECTION("GOAWAY between reads, POST requests") {
    method = "POST";
  }
  SECTION("GOAWAY in the middle of a read, GET requests") {
    // A GET is complete with its HEADERS, so the GOAWAY's last stream id
    // falls inside a batch of requests the client has in flight.
    method = "GET";
    from_handler = true;
  }
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < total; ++i) {
    Request r = post("/3/device/x", method == "POST" ? "{}" : "", {{"x-id", std::to_string(i)}});
    r.method = method;
    batch.emplace_back(i, std::move(r));
  }
  h.submit(std::move(batch));
  if (!from_handler) {
    halfway.get_future().wait();
    server.sendGoaway();
  }
  REQUIRE(h.waitForResults(total, 60s));
  CHECK(h.duplicates() == 0);

  std::set<int> succeeded, retryable;
  for (auto& [id, r] : h.results()) {
    if (r.error.empty()) {
      CHECK(r.status == 200);
      succeeded.insert(id);
    } else {
      INFO(r.error);
      CHECK(r.retry_safe);
      CHECK(r.error == "not processed: the server sent GOAWAY");
      retryable.insert(id);
    }
  }
  CHECK(succeeded.size() + retryable.size() == static_cast<std::size_t>(total));
  if (from_handler) CHECK_FALSE(retryable.empty());
  // The server processed exactly the successes: a retry_safe failure was
  // never processed, and no success was invented.
  std::set<int> processed;
  for (auto& r : server.received()) {
    for (auto& [k, v] : r.headers) {
      if (k == "x-id") processed.insert(std::stoi(v));
    }
  }
  CHECK(processed == succeeded);
  CHECK(server.connectionsAccepted() == 2);
  CHECK(server.streamLimitViolations() == 0);
  CHECK(server.streamResetsReceived() == 0);

  // The caller resends what was refused; it goes through on the new connection.
  std::vector<std::pair<int, Request>> again;
  for (int id : retryable) again.emplace_back(total + id, post("/3/device/x"));
  h.submit(std::move(again));
  REQUIRE(h.waitForResults(total + retryable.size()));
  for (int id : retryable) CHECK(h.result(total + id).status == 200);
}

TEST_CASE("http2 client: a dropped connection fails in-flight requests, queued ones go on",
          "[http2]") {
  Http2TestServer server(serverOptions(5), [](const Http2ServerRequest& r) {
    Http2ServerResponse resp;
    if (r.path == "/hang") resp.status = 0;  // never answered
    return resp;
  });
  ClientHarness h(clientOptions(server.port()));
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < 5; ++i) batch.emplace_back(i, post("/hang"));
  for (int i = 5; i < 25; ++i) batch.emplace_back(i, post("/ok"));
  h.submit(std::move(batch));
  REQUIRE(eventually([&] { return server.receivedCount() == 5; }));
  CHECK(h.withClient([](Client& c) { return c.inFlight(); }) == 5);
  CHECK(h.withClient([](Client& c) { return c.queued(); }) == 20);

  server.dropConnections();
  REQUIRE(h.waitForResults(25));
  for (int i = 0; i < 5; ++i) {
    Response r = h.result(i);
    INFO(r.error);
    CHECK(r.status == 0);
    CHECK(r.error.find("connection lost") != std::string::npos);
    CHECK_FALSE(r.retry_safe);  // sent: the server may have acted on it
  }
  for (int i = 5; i < 25; ++i) {
    Response r = h.result(i);
    INFO(r.error);
    CHECK(r.status == 200);
  }
  CHECK(server.connectionsAccepted() == 2);
  CHECK(h.duplicates() == 0);
}

TEST_CASE("http2 client: request timeout resets the stream, the connection stays", "[http2]") {
  Http2TestServer server(serverOptions(1), [](const Http2ServerRequest& r) {
    Http2ServerResponse resp;
    if (r.path == "/hang") resp.status = 0;
    return resp;
  });
  auto options = clientOptions(server.port());
  options.request_timeout = 300;
  ClientHarness h(options);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<int, Request>> batch;
  batch.emplace_back(1, post("/hang"));  // takes the only stream
  batch.emplace_back(2, post("/ok"));    // waits in the queue behind it
  h.submit(std::move(batch));
  REQUIRE(h.waitForResults(2, 5s));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 300ms);
  CHECK(elapsed < 3s);
  Response r1 = h.result(1);
  CHECK(r1.error == kErrorTimeout);
  CHECK_FALSE(r1.retry_safe);
  Response r2 = h.result(2);
  CHECK(r2.error == kErrorTimeout);
  CHECK(r2.retry_safe);  // never left the queue

  // The reset freed the stream; the same connection serves the next request.
  h.submit(3, post("/ok"));
  REQUIRE(h.waitForResults(3, 5s));
  CHECK(h.result(3).status == 200);
  CHECK(server.connectionsAccepted() == 1);
}

TEST_CASE("http2 client: queue full fails fast, never inside submit", "[http2]") {
  Http2TestServer server(serverOptions(), ok);
  auto options = clientOptions(server.port());
  options.max_queued = 10;
  ClientHarness h(options);
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < 15; ++i) batch.emplace_back(i, post("/x"));
  h.submit(std::move(batch));  // all in one loop task: nothing connected yet
  REQUIRE(h.waitForResults(15));
  CHECK_FALSE(h.calledInsideSubmit());
  int full = 0, fine = 0;
  for (auto& [id, r] : h.results()) {
    if (r.error == kErrorQueueFull) {
      CHECK(r.retry_safe);
      CHECK(id >= 10);
      ++full;
    } else if (r.status == 200) {
      ++fine;
    }
  }
  CHECK(full == 5);
  CHECK(fine == 10);
}

TEST_CASE("http2 client: an untrusted server certificate fails clearly", "[http2]") {
  const auto& certs = sharedTestCertificates();
  std::string cert, key, expected;
  SECTION("self-signed") {
    cert = certs.untrusted_cert_file;
    key = certs.untrusted_key_file;
    expected = "certificate verify failed: self-signed certificate";
  }
  SECTION("signed by the CA for another name") {
    cert = certs.misnamed_cert_file;
    key = certs.misnamed_key_file;
    expected = "certificate verify failed: IP address mismatch";
  }
  auto options = serverOptions();
  options.cert_file = cert;
  options.key_file = key;
  Http2TestServer server(options, ok);
  ClientHarness h(clientOptions(server.port()));
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  Response r = h.result(1);
  INFO(r.error);
  CHECK(r.status == 0);
  CHECK(r.error.find("connect failed") != std::string::npos);
  CHECK(r.error.find(expected) != std::string::npos);
  CHECK(r.retry_safe);
  CHECK(server.receivedCount() == 0);
  CHECK_FALSE(h.withClient([](Client& c) { return c.connected(); }));
}

TEST_CASE("http2 client: only the configured CA file or else the system store is trusted", "[http2]") {
  // The server's certificate is valid under the test CA, which the client
  // is not given: an APNs/FCM ca_file naming another CA, or none (the
  // system store) must fail; an empty ca_file never means "do not verify".
  std::string ca_file;
  SECTION("another CA file") { ca_file = sharedTestCertificates().untrusted_cert_file; }
  SECTION("no CA file: the system store") { ca_file.clear(); }
  Http2TestServer server(serverOptions(), ok);
  auto options = clientOptions(server.port());
  options.ca_file = ca_file;
  ClientHarness h(options);
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  Response r = h.result(1);
  INFO(r.error);
  CHECK(r.status == 0);
  CHECK(r.error.find("certificate verify failed") != std::string::npos);
  CHECK(server.receivedCount() == 0);
}

TEST_CASE("http2 client: a host name is resolved and checked against the certificate", "[http2]") {
  // The server certificate names IP 127.0.0.1 only, not "localhost".
  Http2TestServer server(serverOptions(), ok);
  auto options = clientOptions(server.port());
  options.host = "localhost";
  ClientHarness h(options);
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  Response r = h.result(1);
  INFO(r.error);
  CHECK(r.error.find("certificate verify failed: hostname mismatch") != std::string::npos);
  CHECK(server.connectionsAccepted() == 1);  // resolved and connected
}

TEST_CASE("http2 client: a server without h2 ALPN fails clearly", "[http2]") {
  // An HTTP/1.1 server over TLS with a trusted certificate: it never selects h2.
  const auto& certs = sharedTestCertificates();
  http::TlsServerContext tls(certs.server_cert_file, certs.server_key_file);
  LoopThread server_thread("h1-server");
  std::unique_ptr<http::HttpServer> server;
  std::uint16_t port = onLoop(server_thread.loop(), [&] {
    server = std::make_unique<http::HttpServer>(
        server_thread.loop(), http::ServerLimits{},
        [](http::Request&&, http::Responder respond) { respond(http::Response{}); });
    server->listen("127.0.0.1:0", &tls);
    return server->port();
  });
  {
    ClientHarness h(clientOptions(port));
    h.submit(1, post("/x"));
    REQUIRE(h.waitForResults(1));
    Response r = h.result(1);
    INFO(r.error);
    CHECK(r.error.find("did not negotiate HTTP/2") != std::string::npos);
    CHECK(r.retry_safe);
  }
  onLoop(server_thread.loop(), [&] { server.reset(); });
}

TEST_CASE("http2 client: nothing listening fails the queued requests", "[http2]") {
  ClientHarness h(clientOptions(closedPort()));
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  Response r = h.result(1);
  INFO(r.error);
  CHECK(r.error.find("connect failed: TCP connect: Connection refused") != std::string::npos);
  CHECK(r.retry_safe);
}

TEST_CASE("http2 client: response bodies beyond 64 KiB are refused", "[http2]") {
  Http2TestServer server(serverOptions(), [](const Http2ServerRequest&) {
    return Http2ServerResponse{200, {}, std::string(70 * 1024, 'b')};
  });
  ClientHarness h(clientOptions(server.port()));
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  Response r = h.result(1);
  CHECK(r.error.find("larger than 65536") != std::string::npos);
  CHECK(r.body.empty());
  // The connection survives the reset.
  h.submit(2, post("/x"));
  REQUIRE(h.waitForResults(2));
  CHECK(h.result(2).error.find("larger than") != std::string::npos);
  CHECK(server.connectionsAccepted() == 1);
}

TEST_CASE("http2 client: invalid requests are refused without being sent", "[http2]") {
  Http2TestServer server(serverOptions(), ok);
  ClientHarness h(clientOptions(server.port()));
  std::vector<std::pair<int, Request>> batch;
  batch.emplace_back(1, post("/x", "{}", {{"connection", "close"}}));
  batch.emplace_back(2, post("/x", "{}", {{"bad name", "v"}}));
  batch.emplace_back(3, post("/x", "{}", {{"x-ok", "line\r\nbreak"}}));
  batch.emplace_back(4, post("no-slash"));
  h.submit(std::move(batch));
  REQUIRE(h.waitForResults(4));
  for (int i = 1; i <= 4; ++i) {
    Response r = h.result(i);
    INFO(i << ": " << r.error);
    CHECK(r.error.rfind("invalid request", 0) == 0);
    CHECK(r.error.find("line") == std::string::npos);  // values never echoed
  }
  CHECK(server.receivedCount() == 0);
}

TEST_CASE("http2 client: destruction fails outstanding requests synchronously", "[http2]") {
  Http2TestServer server(serverOptions(1), [](const Http2ServerRequest&) {
    Http2ServerResponse resp;
    resp.status = 0;
    return resp;
  });
  ClientHarness h(clientOptions(server.port()));
  std::vector<std::pair<int, Request>> batch;
  for (int i = 0; i < 3; ++i) batch.emplace_back(i, post("/hang"));
  h.submit(std::move(batch));
  REQUIRE(eventually([&] { return server.receivedCount() == 1; }));
  h.destroy();
  CHECK(h.callbacks() == 3);  // all ran inside the destructor
  Response in_flight = h.result(0);
  CHECK(in_flight.error == kErrorClientClosed);
  CHECK_FALSE(in_flight.retry_safe);
  CHECK(h.result(1).error == kErrorClientClosed);
  CHECK(h.result(1).retry_safe);
}

TEST_CASE("http2 client: idle connections are kept alive with PING", "[http2]") {
  Http2TestServer server(serverOptions(), ok);
  auto options = clientOptions(server.port());
  options.ping_interval = 50;
  options.connect_timeout = 200;
  ClientHarness h(options);
  h.submit(1, post("/x"));
  REQUIRE(h.waitForResults(1));
  std::this_thread::sleep_for(400ms);  // several PING rounds, each answered
  CHECK(h.withClient([](Client& c) { return c.connected(); }));
  h.submit(2, post("/x"));
  REQUIRE(h.waitForResults(2));
  CHECK(h.result(2).status == 200);
  CHECK(server.connectionsAccepted() == 1);
}

// ---------------------------------------------------------------------------
// Throughput self-check (hidden): ./tests/unit_tests "[.http2bench]"

namespace {

double threadCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double processCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Keeps `window` requests submitted (queued or in flight) until `total` are done.
struct BenchDriver {
  Client* client = nullptr;
  Request prototype;
  int total = 0;
  int submitted = 0;
  int done = 0;
  int failed = 0;
  std::promise<void> finished;

  void submitOne() {
    ++submitted;
    client->submit(prototype, [this](Response&& r) {
      ++done;
      if (!r.error.empty() || r.status != 200) ++failed;
      if (submitted < total) submitOne();
      if (done == total) finished.set_value();
    });
  }
};

void runClientBench(std::uint16_t port, const Request& prototype, const char* label) {
  const int total = 200000;
  auto options = clientOptions(port);
  options.max_queued = 1000000;
  ClientHarness h(options);
  // Warm up: connect and raise nothing but the TLS session.
  h.submit(0, prototype);
  REQUIRE(h.waitForResults(1));

  BenchDriver driver;
  driver.prototype = prototype;
  driver.total = total;
  auto finished = driver.finished.get_future();
  double cpu_start = 0, process_start = processCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  h.withClient([&](Client& c) {
    cpu_start = threadCpuSeconds();
    driver.client = &c;
    for (int i = 0; i < 1000; ++i) driver.submitOne();
    return 0;
  });
  finished.wait();
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = h.withClient([&](Client&) { return threadCpuSeconds() - cpu_start; });
  double process_cpu = processCpuSeconds() - process_start;
  CHECK(driver.failed == 0);
  std::printf(
      "[http2bench] client %-28s %d requests in %.3f s: %.0f req/s; client thread CPU %.3f s "
      "(%.2f us/req), process CPU (client + server) %.3f s\n",
      label, total, elapsed, total / elapsed, cpu, cpu * 1e6 / total, process_cpu);
}

void runH2load(std::uint16_t port, const std::string& extra, const char* label) {
  std::string cmd = "h2load -n 200000 -c 1 -m 100 " + extra +
                    " https://127.0.0.1:" + std::to_string(port) + "/3/device/bench 2>&1";
  int status = 0;
  std::string out = sipwake::testing::runCommand(cmd, &status);
  // "finished in 1.23s, 162000.00 req/s, 5.12MB/s"
  // "requests: 200000 total, 200000 started, 200000 done, 200000 succeeded, ..."
  auto field = [&](const std::string& before, const std::string& after) -> std::string {
    auto line = out.find(before);
    if (line == std::string::npos) return "?";
    auto end = out.find(after, line);
    auto from = out.rfind(' ', end == std::string::npos ? line : end - 1);
    if (end == std::string::npos || from == std::string::npos || from < line) return "?";
    return out.substr(from + 1, end - from - 1);
  };
  std::string rate = field("finished in", " req/s");
  if (status != 0 || rate == "?") {
    std::printf("[http2bench] h2load %s failed (%d):\n%s\n", label, status, out.c_str());
    return;
  }
  std::printf("[http2bench] h2load %-28s %s req/s (%s succeeded)\n", label, rate.c_str(),
              field("requests:", " succeeded").c_str());
}

}  // namespace

TEST_CASE("http2 client throughput against h2load", "[.http2bench]") {
  auto options = serverOptions(100);
  options.record = false;
  Http2TestServer server(options, ok);

  Request get;
  get.method = "GET";
  get.path = "/3/device/bench";
  runClientBench(server.port(), get, "GET, no body");
  runH2load(server.port(), "", "GET, no body");

  // APNs-like: POST, a few headers, a small JSON body.
  std::string payload =
      R"({"aps":{"alert":{"title":"Incoming call","body":"Alice"},"sound":"default"}})";
  Request apns = post("/3/device/bench", payload,
                      {{"apns-topic", "com.example.voip"},
                       {"apns-push-type", "voip"},
                       {"apns-priority", "10"},
                       {"apns-expiration", "0"}});
  runClientBench(server.port(), apns, "POST, APNs-like");
  sipwake::testing::TempDir dir("sipwake-h2bench");
  sipwake::testing::writeFile(dir.file("payload.json"), payload);
  runH2load(server.port(),
            "-d " + dir.file("payload.json") +
                " -H 'apns-topic: com.example.voip' -H 'apns-push-type: voip'"
                " -H 'apns-priority: 10' -H 'apns-expiration: 0'",
            "POST, APNs-like");
}
