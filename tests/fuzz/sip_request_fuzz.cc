// Fuzzes the SIP request entries: a whole SIP message, parsed by sofia-sip
// as it comes off the wire (no agent, no network), read by the code the nta
// wrappers use, and answered through a transaction that records our answers:
// - requests to our Contacts (nta_incoming) go to CallManager, then the call
//   goes on (push delivered, device ack, CANCEL or timeouts, shutdown);
// - REGISTERs (device_listener) go to DeviceSignIn, and a 401 is answered
//   the way an app knowing the password would.
// Properties: no crash; every request gets exactly one final answer; no
// answer after it; header values we send carry no CR/LF; an app answering
// our challenge with the right password is signed in.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "registrar/binding/device_contact.h"
#include "registrar/call/call_manager.h"
#include "registrar/registration/digest_auth.h"
#include "registrar/sip/incoming_request_reader.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sipwake;
using namespace sipwake::registrar;

namespace {

// The binding behind Contact user "tok1" (its PBX at 192.0.2.5); "tok2" failed.
struct Directory : ContactDirectory {
  std::optional<Owner> findByContact(std::string_view user) const override {
    if (user == "tok1") return Owner{"acme/phone", RegistrationState::Registered, "192.0.2.5"};
    if (user == "tok2") return Owner{"acme/old", RegistrationState::Failed, "192.0.2.5"};
    return std::nullopt;
  }
};

struct Pushes : PushSink {
  void enqueue(PushRequest r) override { FUZZ_CHECK(!r.binding_key.empty()); ++count; }
  void callEnded(const std::string&, const std::string&) override {}
  int count = 0;
};

struct Wakeup : WakeupScheduler {
  void wakeAt(Millis when) override { next = std::min(next, when); }
  Millis next = std::numeric_limits<Millis>::max();
};

struct Recorder : ServerTransaction {
  struct Log {
    std::vector<int> statuses;
    SipHeaders headers;  // of the last answer
    std::function<void(bool)> cancel;
  };
  explicit Recorder(std::shared_ptr<Log> log) : log(std::move(log)) {}
  void respond(int status, std::string_view reason, const SipHeaders& headers) override {
    FUZZ_CHECK(status >= 100 && status <= 699);
    FUZZ_CHECK(log->statuses.empty() || log->statuses.back() < 200);  // nothing after a final
    FUZZ_CHECK(reason.find_first_of("\r\n") == std::string_view::npos);
    for (const auto& [name, value] : headers) {
      FUZZ_CHECK(name.find_first_of("\r\n:") == std::string::npos);
      FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
    }
    log->statuses.push_back(status);
    log->headers = headers;
  }
  void onCancel(std::function<void(bool)> handler) override { log->cancel = std::move(handler); }
  std::shared_ptr<Log> log;
};

bool answered(const Recorder::Log& log) {
  return !log.statuses.empty() && log.statuses.back() >= 200;
}

// The binding behind "tok1" for apps signing in: user 1000, password below.
constexpr const char* kAppPassword = "fuzz-only-password";
struct Secrets : DeviceSecrets {
  std::optional<DeviceSecret> deviceSecret(std::string_view user, std::string_view realm) override {
    if (user != "tok1") return std::nullopt;
    DigestChallenge c;
    c.realm = std::string(realm);
    return DeviceSecret{"acme/phone", "1000", digestHa1(c, "1000", kAppPassword)};
  }
};

struct Connection : DeviceConnection {
  bool alive() const override { return true; }
  std::string peer() const override { return "192.0.2.9:40000"; }
};

std::shared_ptr<Recorder::Log> registerOnce(DeviceSignIn& sign_in, const DeviceRegister& request) {
  auto log = std::make_shared<Recorder::Log>();
  Recorder transaction(log);
  sign_in.onRegister(request, transaction);
  FUZZ_CHECK(log->statuses.size() == 1 && log->statuses[0] >= 200);
  return log;
}

void signIn(DeviceRegister request, const std::string& source) {
  ManualClock clock;
  DeviceRegistry registry(clock);
  Secrets secrets;
  DeviceSignIn sign_in(DeviceSignInPolicy{}, clock, secrets, registry, nullptr);
  request.source_ip = source;
  request.connection = std::make_shared<Connection>();
  auto first = registerOnce(sign_in, request);
  if (first->statuses[0] != 401) return;
  // Answer the challenge as an app knowing the password does.
  std::string challenge_text;
  for (const auto& [name, value] : first->headers) {
    if (name == "WWW-Authenticate") challenge_text = value;
  }
  auto challenge = parseDigestChallenge(challenge_text, false);
  FUZZ_CHECK(challenge.has_value());
  DigestInput input{"1000", kAppPassword, "REGISTER", "sip:tok1@192.0.2.1", "", 1, "fuzzcnonce", ""};
  request.authorization = buildDigestAuthorization(*challenge, input);
  auto second = registerOnce(sign_in, request);
  FUZZ_CHECK(second->statuses[0] == 200 ||
             (second->statuses[0] == 400 && !isDeviceContactUri(request.contact)));
  if (second->statuses[0] == 200 && request.expires != 0) {
    FUZZ_CHECK(registry.live("acme/phone").size() == 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static prometheus::Registry registry;
  static CallMetrics metrics(registry);
  static const bool quiet = (fuzz::captureLogs(), true);
  (void)quiet;
  fuzz::loggedText().clear();
  if (size == 0) return 0;

  msg_t* msg = msg_make(sip_default_mclass(), 0, data, static_cast<ssize_t>(size));
  if (!msg) return 0;
  // nta answers messages sofia could not parse itself; they never reach us.
  sip_t const* sip = msg_has_error(msg) ? nullptr : sip_object(msg);
  auto request = readIncomingRequest(sip);
  // The transport's part, where it came from: here, the top Via's host (the
  // binding's PBX is 192.0.2.5; anything else is a stranger).
  if (request && sip->sip_via && sip->sip_via->v_host) request->source_ip = sip->sip_via->v_host;
  if (request && sip->sip_request->rq_method == sip_method_register) {
    DeviceRegister device = readDeviceRegister(sip);
    msg_destroy(msg);
    signIn(std::move(device), request->source_ip);
    return 0;
  }
  msg_destroy(msg);
  if (!request) return 0;

  CallPolicy policy;
  policy.redirect = size % 2 == 0;
  policy.message_body_limit = 64;
  ManualClock clock;
  Directory directory;
  Pushes pushes;
  Wakeup wakeup;
  CallManager calls(policy, clock, directory, pushes, &metrics, wakeup);

  auto log = std::make_shared<Recorder::Log>();
  const std::string call_id = request->call_id;
  const std::string contact = request->to_uri;
  calls.onRequest(std::move(*request), std::make_unique<Recorder>(log));
  FUZZ_CHECK(!log->statuses.empty());

  // The call goes on, in an order picked from the input.
  const std::uint8_t plan = data[size / 2];
  calls.onPushDelivered("acme/phone", call_id);
  if (plan & 1) calls.onDeviceAck("acme/phone", "dev1", call_id, plan & 2 ? contact : "");
  if ((plan & 4) && log->cancel && !answered(*log)) log->cancel(plan & 8);
  if (plan & 16) {
    clock.advance(policy.device_ack_timeout + policy.device_connect_timeout);
    calls.runDue();
  }
  calls.endAll();
  FUZZ_CHECK(answered(*log));
  FUZZ_CHECK(calls.ringing() == 0);
  return 0;
}
