#include "common/http/http_server.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/event/event_loop.h"
#include "common/http/tls_server_context.h"
#include "tests/support/loop_helpers.h"
#include "tests/support/http_client.h"

using namespace sipwake;
using namespace sipwake::http;
using sipwake::testing::HttpClient;
using sipwake::testing::HttpClientOptions;
using namespace std::chrono_literals;
using sipwake::testing::eventually;
using sipwake::testing::onLoop;

namespace {

// An HttpServer on its own loop thread, listening on 127.0.0.1:0.
class TestServer {
 public:
  TestServer(ServerLimits limits, Handler handler, const TlsServerContext* tls = nullptr) {
    onLoop(loop(), [&] {
      server_ = std::make_unique<HttpServer>(loop(), limits, std::move(handler));
      server_->listen("127.0.0.1:0", tls);
    });
    port_ = onLoop(loop(), [&] { return server_->port(); });
  }
  ~TestServer() {
    destroy();
    thread_.stop();
  }

  EventLoop& loop() { return thread_.loop(); }
  HttpServer& server() { return *server_; }
  std::uint16_t port() const { return port_; }
  std::size_t connections() {
    return onLoop(loop(), [&] { return server_ ? server_->connectionCount() : 0; });
  }
  void destroy() {
    onLoop(loop(), [&] { server_.reset(); });
  }

 private:
  LoopThread thread_{"http-test"};
  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
};

Response jsonOk(const nlohmann::json& body) {
  Response response;
  response.body = body.dump();
  return response;
}

// Answers with what it saw, so tests can check parsing end to end.
void echoHandler(Request&& request, Responder respond) {
  const std::string* probe = request.header("x-probe");
  respond(jsonOk({{"method", request.method},
                  {"path", request.path},
                  {"query", request.query},
                  {"body", request.body},
                  {"remote", request.remote_addr},
                  {"tls", request.tls},
                  {"probe", probe != nullptr ? *probe : ""}}));
}

// The JSON body of the first response in raw bytes, cut by its Content-Length.
nlohmann::json bodyOf(const std::string& raw) {
  auto start = raw.find("\r\n\r\n");
  auto length_at = raw.find("Content-Length: ");
  REQUIRE(start != std::string::npos);
  REQUIRE(length_at < start);
  auto length = std::stoul(raw.substr(length_at + 16));
  return nlohmann::json::parse(raw.substr(start + 4, length));
}

// A self-signed certificate for 127.0.0.1 and localhost, made at test time.
class TestCertificate {
 public:
  TestCertificate() {
    char pattern[] = "/tmp/sipwake-http-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    cert_file = dir_ / "cert.pem";
    key_file = dir_ / "key.pem";
    other_key_file = dir_ / "other_key.pem";
    EVP_PKEY* key = EVP_EC_gen("P-256");
    EVP_PKEY* other_key = EVP_EC_gen("P-256");
    REQUIRE(key != nullptr);
    REQUIRE(other_key != nullptr);
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    addExtension(cert, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost");
    addExtension(cert, NID_basic_constraints, "critical,CA:TRUE");
    REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
    writePem(cert_file, [&](FILE* f) { return PEM_write_X509(f, cert); });
    writePem(key_file, [&](FILE* f) {
      return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    writePem(other_key_file, [&](FILE* f) {
      return PEM_write_PrivateKey(f, other_key, nullptr, nullptr, 0, nullptr, nullptr);
    });
    X509_free(cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
  }
  ~TestCertificate() { std::filesystem::remove_all(dir_); }

  std::string cert_file;
  std::string key_file;
  std::string other_key_file;

 private:
  static void addExtension(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    REQUIRE(ext != nullptr);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  template <typename Write>
  static void writePem(const std::filesystem::path& path, Write write) {
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    int ok = write(f);
    std::fclose(f);
    REQUIRE(ok == 1);
  }

  std::filesystem::path dir_;
};

// A plain socket for byte-level tests the client does not cover.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawSocket() { closeNow(); }
  void send(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // Reads until `until` appears in what was read, EOF, or the timeout.
  std::string readUntil(const std::string& until, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(until) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) != 1) break;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      received_.append(chunk, static_cast<std::size_t>(n));
    }
    return received_;
  }
  void halfClose() { ::shutdown(fd_, SHUT_WR); }
  // Closes with RST rather than FIN, like a crashed client.
  void reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    closeNow();
  }
  void closeNow() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string received_;
};

}  // namespace

TEST_CASE("HttpServer answers plain HTTP requests", "[http]") {
  TestServer server({}, &echoHandler);
  HttpClient client("127.0.0.1", server.port());

  auto reply = client.request("POST", "/v1/echo?x=1", "{\"a\":1}", {{"X-Probe", "yes"}});
  CHECK(reply.status == 200);
  CHECK(reply.header("content-type") == "application/json");
  CHECK(reply.header("content-length") == std::to_string(reply.body.size()));
  CHECK(reply.header("connection").empty());
  auto body = nlohmann::json::parse(reply.body);
  CHECK(body["method"] == "POST");
  CHECK(body["path"] == "/v1/echo");
  CHECK(body["query"] == "x=1");
  CHECK(body["body"] == "{\"a\":1}");
  CHECK(body["probe"] == "yes");
  CHECK(body["tls"] == false);
  CHECK(body["remote"].get<std::string>().rfind("127.0.0.1:", 0) == 0);

  auto head = client.request("HEAD", "/v1/echo");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(std::stoul(head.header("content-length")) > 0);
}

TEST_CASE("HttpServer serves TLS with a certificate made at test time", "[http]") {
  TestCertificate cert;
  TlsServerContext tls(cert.cert_file, cert.key_file);
  TestServer server({}, &echoHandler, &tls);

  HttpClientOptions options;
  options.tls = true;
  options.ca_file = cert.cert_file;
  HttpClient client("127.0.0.1", server.port(), options);
  for (int i = 0; i < 3; ++i) {
    auto reply = client.request("GET", "/secure?i=" + std::to_string(i));
    REQUIRE(reply.status == 200);
    auto body = nlohmann::json::parse(reply.body);
    CHECK(body["tls"] == true);
    CHECK(body["query"] == "i=" + std::to_string(i));
  }
  CHECK(server.connections() == 1);

  SECTION("a client that does not trust the certificate fails the handshake") {
    TestCertificate stranger;
    HttpClientOptions untrusting = options;
    untrusting.ca_file = stranger.cert_file;
    HttpClient wary("127.0.0.1", server.port(), untrusting);
    CHECK_THROWS_WITH(wary.request("GET", "/"), Catch::Contains("TLS handshake"));
    CHECK(client.request("GET", "/still").status == 200);
  }
  SECTION("server errors are JSON over TLS too") {
    HttpClient raw("127.0.0.1", server.port(), options);
    auto bytes = raw.sendRaw("NOT HTTP\r\n\r\n");
    CHECK(bytes.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(bodyOf(bytes)["error"]["code"] == "bad_request");
  }
  SECTION("a plain-text client gets nowhere and the server survives") {
    HttpClientOptions plain;
    plain.timeout_ms = 2000;
    HttpClient wrong("127.0.0.1", server.port(), plain);
    CHECK(wrong.sendRaw("GET / HTTP/1.1\r\n\r\n").find("200 OK") == std::string::npos);
    CHECK(client.request("GET", "/still").status == 200);
  }
}

TEST_CASE("TlsServerContext reports bad files clearly without key material", "[http]") {
  TestCertificate cert;
  auto messageOf = [](const std::string& cert_file, const std::string& key_file) -> std::string {
    try {
      TlsServerContext context(cert_file, key_file);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  std::ifstream key_stream(cert.key_file);
  std::string key_pem((std::istreambuf_iterator<char>(key_stream)),
                      std::istreambuf_iterator<char>());
  std::string key_line = key_pem.substr(key_pem.find('\n') + 1, 40);  // some base64 of the key

  auto missing = messageOf("/nonexistent/cert.pem", cert.key_file);
  CHECK(missing.find("/nonexistent/cert.pem") != std::string::npos);
  auto missing_key = messageOf(cert.cert_file, "/nonexistent/key.pem");
  CHECK(missing_key.find("/nonexistent/key.pem") != std::string::npos);

  // The key file given as the certificate: a parse error, not the key's bytes.
  auto swapped = messageOf(cert.key_file, cert.key_file);
  CHECK(swapped.find(cert.key_file) != std::string::npos);
  CHECK(swapped.find(key_line) == std::string::npos);
  CHECK(swapped.find("PRIVATE KEY-----") == std::string::npos);

  auto not_a_key = messageOf(cert.cert_file, cert.cert_file);
  CHECK(not_a_key.find("private key") != std::string::npos);

  auto mismatch = messageOf(cert.cert_file, cert.other_key_file);
  INFO(mismatch);
  CHECK(mismatch.find("does not match") != std::string::npos);
  CHECK(mismatch.find(cert.other_key_file) != std::string::npos);

  CHECK_NOTHROW(TlsServerContext(cert.cert_file, cert.key_file));
}

TEST_CASE("HttpServer lets a handler answer later from a posted task", "[http]") {
  std::vector<std::thread> workers;
  std::mutex workers_mutex;
  EventLoop* loop = nullptr;
  TestServer server({}, [&](Request&& request, Responder respond) {
    if (request.path == "/posted") {
      loop->post([respond] { respond(jsonOk({{"answered", "posted"}})); });
      return;
    }
    // Answer from another thread: work there, post the answer back.
    std::lock_guard lock(workers_mutex);
    workers.emplace_back([loop, respond] {
      std::this_thread::sleep_for(30ms);
      loop->post([respond] { respond(jsonOk({{"answered", "worker"}})); });
    });
  });
  loop = &server.loop();

  HttpClient client("127.0.0.1", server.port());
  auto posted = client.request("GET", "/posted");
  CHECK(posted.status == 200);
  CHECK(nlohmann::json::parse(posted.body)["answered"] == "posted");
  auto worker = client.request("GET", "/worker");
  CHECK(worker.status == 200);
  CHECK(nlohmann::json::parse(worker.body)["answered"] == "worker");

  SECTION("pipelined responses keep request order even when the first is slower") {
    HttpClient raw("127.0.0.1", server.port());
    auto bytes = raw.sendRaw(
        "GET /worker HTTP/1.1\r\n\r\nGET /posted HTTP/1.1\r\nConnection: close\r\n\r\n");
    auto first = bytes.find("\"worker\"");
    auto second = bytes.find("\"posted\"");
    REQUIRE(first != std::string::npos);
    REQUIRE(second != std::string::npos);
    CHECK(first < second);
  }
  for (auto& t : workers) t.join();
}

TEST_CASE("HttpServer refuses an oversized body with JSON 413 and never calls the handler",
          "[http]") {
  std::atomic<int> calls{0};
  TestServer server({}, [&](Request&& request, Responder respond) {
    ++calls;
    echoHandler(std::move(request), std::move(respond));
  });
  HttpClient client("127.0.0.1", server.port());

  auto reply = client.request("POST", "/big", std::string(100 * 1024, 'x'));
  CHECK(reply.status == 413);
  CHECK(reply.header("connection") == "close");
  CHECK(reply.header("content-type") == "application/json");
  CHECK(nlohmann::json::parse(reply.body)["error"]["code"] == "body_too_large");

  // Decided from Content-Length alone, before any body byte is sent.
  RawSocket socket(server.port());
  socket.send("POST /big HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n");
  auto bytes = socket.readUntil("}}");
  CHECK(bytes.rfind("HTTP/1.1 413 ", 0) == 0);
  CHECK(bodyOf(bytes)["error"]["code"] == "body_too_large");

  CHECK(calls == 0);
  CHECK(client.request("POST", "/small", std::string(1000, 'y')).status == 200);
  CHECK(calls == 1);
}

TEST_CASE("HttpServer answers 408 to a client that sends half a request", "[http]") {
  ServerLimits limits;
  limits.header_timeout = 300;
  std::atomic<int> calls{0};
  TestServer server(limits, [&](Request&& request, Responder respond) {
    ++calls;
    echoHandler(std::move(request), std::move(respond));
  });
  HttpClient client("127.0.0.1", server.port());

  std::string half;
  SECTION("half the headers") {
    half = "GET / HTTP/1.1\r\nHost: x\r\n";
  }
  SECTION("half the body") {
    half = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
  }
  SECTION("nothing at all") {
    half = "";
  }

  auto start = std::chrono::steady_clock::now();
  auto bytes = client.sendRaw(half);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(bytes.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK(bytes.find("Connection: close\r\n") != std::string::npos);
  CHECK(bodyOf(bytes)["error"]["code"] == "request_timeout");
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 5s);
  CHECK(calls == 0);
  CHECK(eventually([&] { return server.connections() == 0; }));
}

TEST_CASE("HttpServer refuses connections over the limit with JSON 503", "[http]") {
  ServerLimits limits;
  limits.max_connections = 2;
  TestServer server(limits, &echoHandler);
  HttpClient a("127.0.0.1", server.port());
  HttpClient b("127.0.0.1", server.port());
  REQUIRE(a.request("GET", "/a").status == 200);
  REQUIRE(b.request("GET", "/b").status == 200);
  CHECK(server.connections() == 2);

  HttpClient c("127.0.0.1", server.port());
  auto refused = c.request("GET", "/c");
  CHECK(refused.status == 503);
  CHECK(refused.header("connection") == "close");
  CHECK(nlohmann::json::parse(refused.body)["error"]["code"] == "too_many_connections");
  CHECK(server.connections() == 2);

  a.disconnect();
  REQUIRE(eventually([&] { return server.connections() == 1; }));
  CHECK(c.request("GET", "/c").status == 200);
  CHECK(b.request("GET", "/b").status == 200);
}

TEST_CASE("HttpServer refuses over-limit TLS connections after the handshake", "[http]") {
  TestCertificate cert;
  TlsServerContext tls(cert.cert_file, cert.key_file);
  ServerLimits limits;
  limits.max_connections = 1;
  TestServer server(limits, &echoHandler, &tls);
  HttpClientOptions options;
  options.tls = true;
  options.ca_file = cert.cert_file;
  HttpClient a("127.0.0.1", server.port(), options);
  REQUIRE(a.request("GET", "/a").status == 200);
  HttpClient b("127.0.0.1", server.port(), options);
  auto refused = b.request("GET", "/b");
  CHECK(refused.status == 503);
  CHECK(nlohmann::json::parse(refused.body)["error"]["code"] == "too_many_connections");
  CHECK(a.request("GET", "/a").status == 200);
}

TEST_CASE("HttpServer reuses one keep-alive connection for 100 requests", "[http]") {
  std::set<std::string> remotes;  // touched on the loop thread only
  TestServer server({}, [&](Request&& request, Responder respond) {
    remotes.insert(request.remote_addr);
    echoHandler(std::move(request), std::move(respond));
  });
  HttpClient client("127.0.0.1", server.port());
  for (int i = 0; i < 100; ++i) {
    auto reply = client.request("POST", "/n", std::to_string(i));
    REQUIRE(reply.status == 200);
    REQUIRE(nlohmann::json::parse(reply.body)["body"] == std::to_string(i));
  }
  CHECK(onLoop(server.loop(), [&] { return remotes.size(); }) == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("HttpServer closes idle keep-alive connections and the client reconnects", "[http]") {
  ServerLimits limits;
  limits.idle_timeout = 200;
  TestServer server(limits, &echoHandler);
  HttpClient client("127.0.0.1", server.port());
  auto first = nlohmann::json::parse(client.request("GET", "/1").body)["remote"];
  CHECK(server.connections() == 1);
  REQUIRE(eventually([&] { return server.connections() == 0; }));
  auto second = nlohmann::json::parse(client.request("GET", "/2").body)["remote"];
  CHECK(first != second);
}

TEST_CASE("HttpServer responders outlive connections and the server harmlessly", "[http]") {
  std::vector<Responder> held;  // loop thread only
  std::promise<void> got_request;
  TestServer server({}, [&](Request&&, Responder respond) {
    held.push_back(std::move(respond));
    got_request.set_value();
  });

  SECTION("client resets while the handler holds the responder") {
    RawSocket socket(server.port());
    socket.send("GET /hold HTTP/1.1\r\n\r\n");
    REQUIRE(got_request.get_future().wait_for(5s) == std::future_status::ready);
    socket.reset();
    REQUIRE(eventually([&] { return server.connections() == 0; }));
    onLoop(server.loop(), [&] { held.front()(jsonOk({{"late", true}})); });
    onLoop(server.loop(), [&] { held.front()(jsonOk({{"twice", true}})); });
    CHECK(server.connections() == 0);
  }
  SECTION("client closes; the late answer is written to nobody") {
    RawSocket socket(server.port());
    socket.send("GET /hold HTTP/1.1\r\n\r\n");
    REQUIRE(got_request.get_future().wait_for(5s) == std::future_status::ready);
    socket.closeNow();
    std::this_thread::sleep_for(50ms);
    onLoop(server.loop(), [&] { held.front()(jsonOk({{"late", true}})); });
    CHECK(eventually([&] { return server.connections() == 0; }));
  }
  SECTION("the server is destroyed first") {
    RawSocket socket(server.port());
    socket.send("GET /hold HTTP/1.1\r\n\r\n");
    REQUIRE(got_request.get_future().wait_for(5s) == std::future_status::ready);
    server.destroy();
    onLoop(server.loop(), [&] { held.front()(jsonOk({{"late", true}})); });
  }
  onLoop(server.loop(), [&] { held.clear(); });
}

TEST_CASE("HttpServer answers malformed requests with JSON errors and closes", "[http]") {
  ServerLimits limits;
  limits.max_header_bytes = 1024;
  TestServer server(limits, &echoHandler);
  HttpClient client("127.0.0.1", server.port());

  struct Case {
    std::string bytes;
    std::string status_line;
    std::string code;
  };
  for (const auto& c :
       {Case{"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"},
        Case{"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported",
             "http_version_not_supported"},
        Case{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             "HTTP/1.1 411 Length Required", "length_required"},
        Case{"GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n",
             "HTTP/1.1 431 Request Header Fields Too Large", "headers_too_large"},
        Case{"GET http://x/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad_request"}}) {
    INFO(c.bytes.substr(0, 40));
    auto bytes = client.sendRaw(c.bytes);  // returns because the server closes
    CHECK(bytes.rfind(c.status_line + "\r\n", 0) == 0);
    CHECK(bytes.find("Connection: close\r\n") != std::string::npos);
    CHECK(bytes.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(bodyOf(bytes)["error"]["code"] == c.code);
  }
  // A good request pipelined before a bad one is still answered first.
  auto bytes = client.sendRaw("GET /ok HTTP/1.1\r\n\r\nBAD\r\n\r\n");
  CHECK(bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(bytes.find("HTTP/1.1 400 Bad Request\r\n") != std::string::npos);
}

TEST_CASE("HttpServer follows HTTP/1.0 connection rules", "[http]") {
  TestServer server({}, &echoHandler);
  HttpClientOptions options;
  options.timeout_ms = 500;
  HttpClient client("127.0.0.1", server.port(), options);

  auto closed = client.sendRaw("GET /old HTTP/1.0\r\n\r\n");
  CHECK(closed.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(closed.find("Connection: close\r\n") != std::string::npos);

  RawSocket socket(server.port());
  socket.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto kept = socket.readUntil("}");
  CHECK(kept.find("Connection: keep-alive\r\n") != std::string::npos);
  socket.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(socket.readUntil("/again").find("/again") != std::string::npos);
}

TEST_CASE("HttpServer answers a client that half-closes after its requests", "[http]") {
  EventLoop* loop = nullptr;
  TestServer server({}, [&](Request&& request, Responder respond) {
    // Answer later, so the EOF arrives while the handler holds the request.
    loop->post([request = std::move(request), respond] { echoHandler(Request(request), respond); });
  });
  loop = &server.loop();
  RawSocket socket(server.port());
  socket.send("GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n");
  socket.halfClose();
  auto bytes = socket.readUntil("never-appears");  // reads until the server closes
  CHECK(bytes.find("/one") != std::string::npos);
  CHECK(bytes.find("/two") != std::string::npos);
  CHECK(bytes.find("/one") < bytes.find("/two"));
  CHECK(eventually([&] { return server.connections() == 0; }));
}

TEST_CASE("HttpServer turns handler mistakes into clean responses", "[http]") {
  TestServer server({}, [](Request&& request, Responder respond) {
    if (request.path == "/throw") throw std::runtime_error("boom");
    Response response;
    if (request.path == "/nocontent") response.status = 204;
    if (request.path == "/badstatus") response.status = 42;
    response.headers = {
        {"X-Good", "yes"}, {"X-Evil", "a\r\nSet-Cookie: x"}, {"Content-Length", "999"}};
    response.body = "{}";
    respond(response);
    respond(response);  // a second call is ignored
  });
  HttpClient client("127.0.0.1", server.port());

  auto thrown = client.request("GET", "/throw");
  CHECK(thrown.status == 500);
  CHECK(nlohmann::json::parse(thrown.body)["error"]["code"] == "internal_error");

  auto ok = client.request("GET", "/ok");
  CHECK(ok.status == 200);
  CHECK(ok.header("x-good") == "yes");
  CHECK(ok.header("x-evil").empty());
  CHECK(ok.header("set-cookie").empty());
  CHECK(ok.header("content-length") == "2");

  auto none = client.request("GET", "/nocontent");
  CHECK(none.status == 204);
  CHECK(none.header("content-length").empty());

  CHECK(client.request("GET", "/badstatus").status == 500);
  CHECK(client.request("GET", "/ok").status == 200);
  CHECK(server.connections() == 1);
}

TEST_CASE("HttpServer sends 100 Continue before reading an expected body", "[http]") {
  TestServer server({}, &echoHandler);
  RawSocket socket(server.port());
  socket.send("POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  CHECK(socket.readUntil("\r\n\r\n") == "HTTP/1.1 100 Continue\r\n\r\n");
  socket.send("hello");
  CHECK(socket.readUntil("}").find("\"body\":\"hello\"") != std::string::npos);
}

TEST_CASE("HttpServer listens on several addresses and reports failures", "[http]") {
  TestServer server({}, &echoHandler);
  onLoop(server.loop(), [&] { server.server().listen("[::1]:0", nullptr); });
  auto second_port = onLoop(server.loop(), [&] { return server.server().port(1); });
  CHECK(second_port != server.port());
  HttpClient v6("::1", second_port);
  auto body = nlohmann::json::parse(v6.request("GET", "/six").body);
  CHECK(body["remote"].get<std::string>().rfind("[::1]:", 0) == 0);

  CHECK_THROWS_WITH(
      onLoop(server.loop(), [&] { server.server().listen("not-an-address", nullptr); }),
      Catch::Contains("not-an-address"));
  CHECK_THROWS_WITH(
      onLoop(
          server.loop(),
          [&] { server.server().listen("127.0.0.1:" + std::to_string(server.port()), nullptr); }),
      Catch::Contains("cannot listen"));
  CHECK_THROWS(onLoop(server.loop(), [&] { return server.server().port(5); }));
}
