// The SIP test UA itself: two SipTestUa talking directly (UDP, TCP, a second
// loopback address), malformed input, then calls through the Kamailio test PBX.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <string>

#include "tests/support/kamailio_pbx.h"
#include "tests/support/process.h"
#include "tests/support/sip_test_ua.h"

using namespace sipwake::testing;

namespace {

const std::string kSdp =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n";

// Where to send requests for `ua` directly: its address as a proxy URI.
std::string directProxy(const SipTestUa& ua, const std::string& ip = "127.0.0.1") {
  return "sip:" + ip + ":" + std::to_string(ua.port());
}

auto statusIs(int status) {
  return [status](const SipMessageRecord& r) { return r.status == status; };
}

auto methodIs(const std::string& method) {
  return [method](const SipMessageRecord& r) { return r.method == method; };
}

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<int> statuses(const std::vector<SipMessageRecord>& records) {
  std::vector<int> out;
  for (const auto& r : records) out.push_back(r.status);
  return out;
}

const SipMessageRecord* find(const std::vector<SipMessageRecord>& records,
                             const std::string& method) {
  for (const auto& r : records) {
    if (r.method == method) return &r;
  }
  return nullptr;
}

// A UAS written by hand on a UDP socket, to send responses sofia's own UAS
// would not (several 180s from different forks, with different headers).
class RawUdpUas {
 public:
  RawUdpUas() : port_(freePort()) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("RawUdpUas: cannot bind");
    }
  }
  ~RawUdpUas() { close(fd_); }
  uint16_t port() const { return port_; }

  // Waits for one request; remembers its sender and headers to answer it.
  std::string receive(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return {};
    char buffer[65536];
    socklen_t len = sizeof peer_;
    ssize_t n = recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&peer_), &len);
    if (n <= 0) return {};
    request_.assign(buffer, static_cast<size_t>(n));
    return request_;
  }
  // Sends a response to the last request: its Via, From, Call-ID and CSeq,
  // its To with `to_tag`, and `extra` header lines.
  void respond(const std::string& status_line, const std::string& to_tag,
               const std::string& extra = "") {
    std::string response = "SIP/2.0 " + status_line + "\r\n";
    std::istringstream lines(request_);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) break;
      for (const char* name : {"Via:", "From:", "Call-ID:", "CSeq:"}) {
        if (line.rfind(name, 0) == 0) response += line + "\r\n";
      }
      if (line.rfind("To:", 0) == 0) {
        response += line + (to_tag.empty() ? "" : ";tag=" + to_tag) + "\r\n";
      }
    }
    response += extra + "Content-Length: 0\r\n\r\n";
    sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&peer_),
           sizeof peer_);
  }

 private:
  uint16_t port_;
  int fd_ = -1;
  sockaddr_in peer_{};
  std::string request_;
};

}  // namespace

TEST_CASE("SipTestUa records 180 and 486 of an INVITE with their headers", "[sipua]") {
  SipTestUa a, b;
  SipInviteAnswer answer;
  answer.ring_first = true;
  answer.status = 486;
  b.setInviteAnswer(answer);

  double before = now();
  int call = a.invite(b.contactUri(), directProxy(b), "sip:alice@127.0.0.1", "Alice \"A\"", kSdp,
                      {{"X-Sipwake-Test", "one"}, {"Subject", "hello"}});
  REQUIRE(a.waitForFinal(call, 5000));
  CHECK(a.finalStatus(call) == 486);
  auto responses = a.responses(call);
  REQUIRE(statuses(responses) == std::vector<int>{180, 486});

  const auto& ringing = responses[0];
  CHECK(ringing.method == "INVITE");
  CHECK(ringing.reason == "Ringing");
  CHECK_FALSE(ringing.local);
  CHECK(ringing.header("call-id") == a.callId(call));
  CHECK(ringing.header("to").find(";tag=") != std::string::npos);
  CHECK(ringing.header("contact") == "<" + b.contactUri() + ">");
  CHECK(ringing.header("cseq").find("INVITE") != std::string::npos);
  CHECK(ringing.headers.front().first == "via");
  CHECK(ringing.header("x-absent").empty());
  CHECK(ringing.at >= before);
  CHECK(ringing.at <= responses[1].at);
  CHECK(responses[1].at <= now());
  CHECK(responses[1].reason == "Busy Here");
  CHECK(responses[1].header("to") == ringing.header("to"));  // one To-tag

  // B saw the INVITE as sent, then the ACK of the 486.
  REQUIRE(b.waitForRequest(methodIs("ACK"), 5000));
  auto requests = b.requestsReceived();
  const auto* invite = find(requests, "INVITE");
  REQUIRE(invite);
  CHECK(invite->request_uri == b.contactUri());
  CHECK(invite->header("call-id") == a.callId(call));
  CHECK(invite->header("from").find("\"Alice \\\"A\\\"\" <sip:alice@127.0.0.1>;tag=") == 0);
  CHECK(invite->header("x-sipwake-test") == "one");
  CHECK(invite->header("subject") == "hello");
  CHECK(invite->header("content-type") == "application/sdp");
  CHECK(invite->header("contact") == "<" + a.contactUri() + ">");
  CHECK(invite->body == kSdp);
  CHECK(invite->at >= before);
  CHECK(invite->at <= ringing.at);
}

TEST_CASE("SipTestUa records every provisional response including repeated 180s", "[sipua]") {
  SipTestUa a, b;
  SipInviteAnswer answer;
  answer.ring_first = true;
  answer.status = 180;  // a second 180, then nothing
  b.setInviteAnswer(answer);
  int call = a.invite(b.contactUri(), directProxy(b), "sip:alice@127.0.0.1");
  REQUIRE(waitUntil([&] { return a.responses(call).size() >= 2; }, 5000));
  CHECK(statuses(a.responses(call)) == std::vector<int>{180, 180});
  CHECK(a.finalStatus(call) == 0);
  CHECK(a.cancel(call));
  REQUIRE(a.waitForFinal(call, 5000));
  CHECK(a.finalStatus(call) == 487);
}

TEST_CASE("SipTestUa records 180s from several forks and repeated ones", "[sipua]") {
  SipTestUa a;
  RawUdpUas uas;
  std::string target = "sip:raw@127.0.0.1:" + std::to_string(uas.port());
  int call = a.invite(target, target, "sip:alice@127.0.0.1");
  REQUIRE(uas.receive(5000).rfind("INVITE ", 0) == 0);
  uas.respond("100 Trying", "");
  uas.respond("180 Ringing", "fork1", "X-Seq: 1\r\n");
  uas.respond("180 Ringing", "fork1", "X-Seq: 2\r\n");  // same dialog, other headers
  uas.respond("180 Ringing", "fork1", "X-Seq: 2\r\n");  // an exact repeat
  uas.respond("180 Ringing", "fork2", "X-Seq: 3\r\nAlert-Info: <http://x/ring>\r\ns: compact\r\n");
  uas.respond("486 Busy Here", "fork1");
  REQUIRE(a.waitForFinal(call, 5000));
  auto responses = a.responses(call);
  REQUIRE(statuses(responses) == std::vector<int>{100, 180, 180, 180, 180, 486});
  CHECK(responses[1].header("x-seq") == "1");
  CHECK(responses[2].header("x-seq") == "2");
  CHECK(responses[3].header("x-seq") == "2");
  CHECK(responses[4].header("x-seq") == "3");
  CHECK(responses[4].header("to").find("tag=fork2") != std::string::npos);
  CHECK(responses[4].header("alert-info") == "<http://x/ring>");
  CHECK(responses[4].header("subject") == "compact");  // recorded under its long name
  for (size_t i = 1; i < responses.size(); ++i) CHECK(responses[i - 1].at <= responses[i].at);
  // nta ACKs the 486 itself, to the same place.
  CHECK(uas.receive(5000).rfind("ACK ", 0) == 0);
}

TEST_CASE("SipTestUa CANCELs a ringing INVITE with a Reason", "[sipua]") {
  SipTestUa a, b;
  SipInviteAnswer answer;
  answer.ring_first = true;
  answer.status = 0;  // ring until cancelled
  b.setInviteAnswer(answer);

  int call = a.invite(b.contactUri(), directProxy(b), "sip:alice@127.0.0.1");
  REQUIRE(a.waitForResponse(call, statusIs(180), 5000));
  const std::string reason = "SIP;cause=200;text=\"Call completed elsewhere\"";
  REQUIRE(a.cancel(call, reason));
  CHECK_FALSE(a.cancel(call, reason));  // once only
  REQUIRE(a.waitForFinal(call, 5000));
  CHECK(a.finalStatus(call) == 487);
  CHECK(waitUntil([&] { return a.cancelStatus(call) == 200; }, 5000));

  REQUIRE(b.waitForRequest(methodIs("CANCEL"), 5000));
  auto requests = b.requestsReceived();
  const auto* cancel = find(requests, "CANCEL");
  REQUIRE(cancel);
  CHECK(cancel->header("reason") == reason);
  CHECK(cancel->header("call-id") == a.callId(call));
  CHECK(cancel->header("cseq").find("CANCEL") != std::string::npos);

  // A CANCEL after the final answer is refused locally.
  CHECK_FALSE(a.cancel(call));
}

TEST_CASE("SipTestUa answers MESSAGE and OPTIONS as configured", "[sipua]") {
  SipTestUa a;
  SipTestUaOptions second;
  second.bind_ip = "127.0.0.2";  // a second local address
  SipTestUa b(second);
  CHECK(b.contactUri() == "sip:test@127.0.0.2:" + std::to_string(b.port()) + ";transport=udp");

  CHECK(a.message(b.contactUri(), directProxy(b, "127.0.0.2"), "sip:alice@127.0.0.1", "hi") == 405);
  b.setRequestAnswer("MESSAGE", 202);
  CHECK(a.message(b.contactUri(), directProxy(b, "127.0.0.2"), "sip:alice@127.0.0.1", "hello there",
                  "text/plain;charset=utf-8") == 202);
  auto last = a.lastRequestResponses();
  REQUIRE(last.size() == 1);
  CHECK(last[0].status == 202);
  CHECK(last[0].method == "MESSAGE");

  auto requests = b.requestsReceived();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].method == "MESSAGE");
  CHECK(requests[1].body == "hello there");
  CHECK(requests[1].header("content-type") == "text/plain;charset=utf-8");
  CHECK(requests[1].header("via").find("127.0.0.1") != std::string::npos);

  CHECK(a.options(b.contactUri(), directProxy(b, "127.0.0.2")) == 200);
  b.setRequestAnswer("OPTIONS", 503);
  CHECK(a.options(b.contactUri(), directProxy(b, "127.0.0.2")) == 503);
  // Nobody listening: sofia turns the ICMP port-unreachable into a local 503.
  std::string nowhere = "sip:127.0.0.1:" + std::to_string(freePort());
  CHECK(a.options(nowhere, nowhere, 2000) == 503);
  REQUIRE(a.lastRequestResponses().size() == 1);
  CHECK(a.lastRequestResponses()[0].local);
}

TEST_CASE("SipTestUa sets up and ends a call over UDP and TCP", "[sipua]") {
  std::string transport = GENERATE(std::string("udp"), std::string("tcp"));
  SipTestUaOptions options;
  options.transport = transport;
  SipTestUa a(options), b(options);
  b.setInviteAnswer(200, kSdp);

  int call = a.invite(b.contactUri(), directProxy(b), "sip:alice@127.0.0.1", "", kSdp);
  REQUIRE(a.waitForFinal(call, 5000));
  REQUIRE(a.finalStatus(call) == 200);
  auto ok = a.responses(call).back();
  CHECK(ok.body == kSdp);
  CHECK(ok.header("content-type") == "application/sdp");
  CHECK(ok.header("contact") == "<" + b.contactUri() + ">");
  a.ack(call);
  REQUIRE(b.waitForRequest(methodIs("ACK"), 5000));
  CHECK(a.bye(call) == 200);

  auto requests = b.requestsReceived();
  std::vector<std::string> methods;
  for (const auto& r : requests) methods.push_back(r.method);
  CHECK(methods == std::vector<std::string>{"INVITE", "ACK", "BYE"});
  std::string proto = transport == "udp" ? "SIP/2.0/UDP" : "SIP/2.0/TCP";
  for (const auto& r : requests) {
    CHECK(r.header("via").rfind(proto, 0) == 0);
    CHECK(r.header("call-id") == a.callId(call));
  }
  CHECK(requests[2].request_uri == b.contactUri());
}

TEST_CASE("SipTestUa survives malformed UDP input", "[sipua]") {
  SipTestUa a, b;
  // Binary bytes (sofia takes a first byte of 0 or 1 for STUN and drops it),
  // then text that is not SIP.
  std::string reply = SipTestUa::sendRawUdp("127.0.0.2", "127.0.0.1", b.port(),
                                            "\x01\x02garbage that is not SIP\r\n\r\n", 500);
  CHECK(reply.empty());
  reply = SipTestUa::sendRawUdp("127.0.0.2", "127.0.0.1", b.port(),
                                "hello, this is not SIP at all\r\n\r\n", 500);
  CHECK((reply.empty() || reply.rfind("SIP/2.0 400", 0) == 0));
  // A request line with nothing a SIP request needs.
  reply = SipTestUa::sendRawUdp("127.0.0.2", "127.0.0.1", b.port(),
                                "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCSeq: nonsense\r\n\r\n", 500);
  CHECK((reply.empty() || reply.rfind("SIP/2.0 400", 0) == 0));
  // A well-formed OPTIONS over the raw socket gets its 200.
  std::string port = std::to_string(b.port());
  reply = SipTestUa::sendRawUdp(
      "127.0.0.2", "127.0.0.1", b.port(),
      "OPTIONS sip:test@127.0.0.1:" + port +
          " SIP/2.0\r\n"
          "Via: SIP/2.0/UDP 127.0.0.2:5999;rport;branch=z9hG4bK-raw-1\r\n"
          "From: <sip:raw@127.0.0.2>;tag=raw\r\nTo: <sip:test@127.0.0.1>\r\n"
          "Call-ID: raw-1@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
          "Content-Length: 0\r\n\r\n",
      2000);
  CHECK(reply.rfind("SIP/2.0 200", 0) == 0);

  CHECK(a.options(b.contactUri(), directProxy(b)) == 200);
  int call = a.invite(b.contactUri(), directProxy(b), "sip:alice@127.0.0.1");
  REQUIRE(a.waitForFinal(call, 5000));
  CHECK(a.finalStatus(call) == 486);
}

TEST_CASE("SipTestUa registers at the test PBX and receives calls through it", "[sipua]") {
  KamailioPbx pbx;
  std::string transport = GENERATE(std::string("udp"), std::string("tcp"));
  SipTestUaOptions options;
  options.transport = transport;
  SipTestUa a(options), b(options);
  std::string pbx_uri = "sip:" + pbx.hostPort();
  std::string user = transport == "udp" ? "3000" : "3001";

  CHECK(b.registerTo(pbx_uri, user, "wrong", 300) == 401);
  REQUIRE(b.registerTo(pbx_uri, user, "pw-" + user, 300) == 200);
  auto reg = b.lastRequestResponses();
  REQUIRE(statuses(reg) == std::vector<int>{401, 200});
  CHECK(reg[0].header("www-authenticate").find("Digest") == 0);
  auto contacts = pbx.contacts(user);
  REQUIRE(contacts.size() == 1);
  CHECK(contacts[0].uri == b.contactUri());

  SECTION("busy") {
    SipInviteAnswer answer;
    answer.ring_first = true;
    // Kamailio forwards UDP responses from several workers: a final sent at
    // once may overtake the 180, which the caller then drops.
    answer.final_delay_ms = 50;
    b.setInviteAnswer(answer);
    int call = a.invite("sip:" + user + "@127.0.0.1", pbx_uri, "sip:alice@127.0.0.1", "Alice");
    REQUIRE(a.waitForFinal(call, 5000));
    CHECK(statuses(a.responses(call)) == std::vector<int>{100, 180, 486});
    auto requests = b.requestsReceived();
    const auto* invite = find(requests, "INVITE");
    REQUIRE(invite);
    CHECK(invite->request_uri == b.contactUri());
    CHECK(invite->header("call-id") == a.callId(call));
    CHECK(invite->headerValues("via").size() == 2);  // the PBX's and A's (one each)
    CHECK(invite->header("record-route").find(pbx.hostPort()) != std::string::npos);
  }
  SECTION("cancelled") {
    SipInviteAnswer answer;
    answer.ring_first = true;
    answer.status = 0;
    b.setInviteAnswer(answer);
    int call = a.invite("sip:" + user + "@127.0.0.1", pbx_uri, "sip:alice@127.0.0.1");
    REQUIRE(a.waitForResponse(call, statusIs(180), 5000));
    REQUIRE(a.cancel(call, "SIP;cause=200;text=\"Call completed elsewhere\""));
    REQUIRE(a.waitForFinal(call, 5000));
    CHECK(a.finalStatus(call) == 487);
    REQUIRE(b.waitForRequest(methodIs("CANCEL"), 5000));
    auto requests = b.requestsReceived();
    REQUIRE(find(requests, "CANCEL"));
    CHECK(find(requests, "CANCEL")->header("reason") ==
          "SIP;cause=200;text=\"Call completed elsewhere\"");
  }
  SECTION("answered, ACKed and ended through the Record-Route") {
    b.setInviteAnswer(200, kSdp);
    int call = a.invite("sip:" + user + "@127.0.0.1", pbx_uri, "sip:alice@127.0.0.1", "", kSdp);
    REQUIRE(a.waitForFinal(call, 5000));
    REQUIRE(a.finalStatus(call) == 200);
    a.ack(call);
    REQUIRE(b.waitForRequest(methodIs("ACK"), 5000));
    CHECK(a.bye(call) == 200);
    auto requests = b.requestsReceived();
    const auto* bye = find(requests, "BYE");
    REQUIRE(bye);
    CHECK(bye->headerValues("via").size() == 2);  // it went through the PBX
  }
}
