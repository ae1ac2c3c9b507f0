#include "registrar/registration/target_checking_transport.h"

#include <deque>
#include <functional>
#include <map>

#include <catch2/catch.hpp>

using namespace sipwake::registrar;

namespace {

// Answers lookups from a table, later (when run() is called).
struct TableResolver : TargetResolver {
  void resolve(const SipUri& target, SipTransport, Callback cb) override {
    Result r;
    if (auto literal = IpAddress::parse(target.host)) {
      r.addresses.push_back(*literal);
      r.port = target.port ? target.port : 5060;
    } else if (auto it = names.find(target.host); it != names.end()) {
      for (const auto& a : it->second) r.addresses.push_back(*IpAddress::parse(a));
      r.port = target.port ? target.port : 5060;
    } else {
      r.error = "no such name";
    }
    ++lookups;
    pending.push_back([cb = std::move(cb), r]() mutable { cb(std::move(r)); });
  }
  void run() {
    while (!pending.empty()) {
      auto fn = std::move(pending.front());
      pending.pop_front();
      fn();
    }
  }
  std::map<std::string, std::vector<std::string>> names;
  std::deque<std::function<void()>> pending;
  int lookups = 0;
};

struct RecordingTransport : RegisterTransport {
  void send(const RegisterRequest& request, std::string_view, ResponseHandler handler) override {
    sent.push_back(request.destination);
    RegisterResponse ok;
    ok.status = 200;
    handler(ok);
  }
  std::vector<std::string> sent;
};

RegisterResponse sendTo(TargetCheckingTransport& t, TableResolver& resolver,
                        const std::string& destination, const std::string& tenant = "acme") {
  RegisterRequest req;
  req.destination = destination;
  req.tenant = tenant;
  std::optional<RegisterResponse> got;
  t.send(req, "tok", [&](const RegisterResponse& r) { got = r; });
  CHECK_FALSE(got);  // never from inside send
  resolver.run();
  REQUIRE(got);
  return *got;
}

}  // namespace

TEST_CASE("target check: nothing is sent to a forbidden address whether literal or resolved", "[target]") {
  TargetPolicy policy(TargetPolicy::parseConfig("127.0.0.0/8", "", ""));
  TableResolver resolver;
  resolver.names["internal.example"] = {"10.0.0.7"};
  resolver.names["mixed.example"] = {"198.51.100.20", "192.168.1.1"};
  resolver.names["pbx.example"] = {"198.51.100.10"};
  resolver.names["v6.example"] = {"2001:db8::10"};
  RecordingTransport inner;
  TargetCheckingTransport t(policy, resolver, inner);

  for (const char* dest : {"sip:10.1.1.1:5060;transport=udp", "sip:169.254.169.254;transport=tcp",
                           "sip:[::1]:5060;transport=udp", "sip:internal.example;transport=udp",
                           "sip:mixed.example:5070;transport=tcp"}) {
    INFO(dest);
    RegisterResponse r = sendTo(t, resolver, dest);
    CHECK(r.target_forbidden);
    CHECK(r.local);
    CHECK(r.status == 403);
    CHECK(r.reason.rfind("target forbidden: ", 0) == 0);
  }
  CHECK(inner.sent.empty());

  RegisterResponse bad_dns = sendTo(t, resolver, "sip:nowhere.example;transport=udp");
  CHECK(bad_dns.local);
  CHECK_FALSE(bad_dns.target_forbidden);
  CHECK(bad_dns.reason.find("no such name") != std::string::npos);
  CHECK(inner.sent.empty());

  // Allowed: UDP and TCP go to the checked address itself (no second lookup).
  CHECK(sendTo(t, resolver, "sip:pbx.example:5070;transport=udp").status == 200);
  CHECK(sendTo(t, resolver, "sip:127.0.0.1:5080;transport=tcp").status == 200);
  CHECK(sendTo(t, resolver, "sip:v6.example;transport=udp").status == 200);
  // TLS keeps the name its certificate must carry.
  CHECK(sendTo(t, resolver, "sip:pbx.example:5061;transport=tls").status == 200);
  CHECK(inner.sent == std::vector<std::string>{"sip:198.51.100.10:5070;transport=udp",
                                               "sip:127.0.0.1:5080;transport=tcp",
                                               "sip:[2001:db8::10]:5060;transport=udp",
                                               "sip:pbx.example:5061;transport=tls"});
}
