#include "tests/support/sip_test_ua.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <sofia-sip/auth_client.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>
#pragma GCC diagnostic pop

#include "common/crypto/random.h"
#include "registrar/sip/sip_thread.h"
#include "tests/support/process.h"

namespace sipwake::testing {
namespace {

// nta marks responses it made itself (timeouts, transport errors) with this
// msg flag (NTA_INTERNAL_MSG in sofia's private nta_internal.h).
constexpr unsigned kNtaInternalMessage = 1u << 15;

// nta_outgoing_mcreate() builds the message itself when given NONE (sofia's
// (void*)-1, not in its public headers).
msg_t* newMessage() {
  return reinterpret_cast<msg_t*>(static_cast<intptr_t>(-1));
}

double nowSeconds() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return static_cast<double>(us.count()) / 1e6;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// A header value spread over continuation lines becomes one line.
std::string unfold(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      while (i + 1 < s.size() && (s[i + 1] == '\r' || s[i + 1] == '\n')) ++i;
      if (!out.empty() && out.back() != ' ') out += ' ';
      while (i + 1 < s.size() && (s[i + 1] == ' ' || s[i + 1] == '\t')) ++i;
      continue;
    }
    out += s[i];
  }
  return trim(out);
}

std::string text(const char* s) {
  return s ? s : "";
}

std::string urlText(const url_t* url) {
  if (!url) return {};
  char buffer[1024];
  isize_t n = url_e(buffer, sizeof buffer, url);
  if (n < 0 || static_cast<size_t>(n) >= sizeof buffer) return {};
  return std::string(buffer, static_cast<size_t>(n));
}

// One header's text: the bytes received when sofia kept them (we create
// messages with MSG_FLG_EXTRACT_COPY), else sofia's encoding of it.
bool headerText(msg_header_t* h, std::string& out) {
  if (h->sh_data) {
    // Later fields of a comma-separated line point past it with length 0.
    if (h->sh_len == 0) return false;
    out.assign(static_cast<const char*>(h->sh_data), h->sh_len);
    return true;
  }
  std::string buffer(512, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    issize_t n = msg_header_e(buffer.data(), static_cast<isize_t>(buffer.size()), h, 0);
    if (n <= 0) return false;
    if (static_cast<size_t>(n) < buffer.size()) {
      out.assign(buffer.data(), static_cast<size_t>(n));
      return true;
    }
    buffer.assign(static_cast<size_t>(n) + 1, '\0');
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> headersOf(msg_t* msg) {
  std::vector<std::pair<std::string, std::string>> headers;
  msg_header_t** head = msg ? msg_chain_head(msg) : nullptr;
  for (msg_header_t* h = head ? *head : nullptr; h; h = h->sh_succ) {
    msg_hclass_t const* hc = h->sh_class;
    if (hc == sip_request_class || hc == sip_status_class || hc == sip_separator_class ||
        hc == sip_payload_class) {
      continue;
    }
    std::string line;
    if (!headerText(h, line)) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = trim(std::string_view(line).substr(0, colon));
    // The class name turns compact forms ("i", "v") into long ones.
    if (hc != sip_unknown_class && hc != sip_error_class && hc->hc_name && *hc->hc_name) {
      name = hc->hc_name;
    }
    headers.emplace_back(lower(name), unfold(std::string_view(line).substr(colon + 1)));
  }
  return headers;
}

SipMessageRecord recordOf(msg_t* msg, const sip_t* sip, double at) {
  SipMessageRecord r;
  r.at = at;
  if (!sip) {
    r.local = true;
    return r;
  }
  r.local = (sip->sip_flags & kNtaInternalMessage) != 0;
  if (sip->sip_status) {
    r.status = sip->sip_status->st_status;
    r.reason = text(sip->sip_status->st_phrase);
    if (sip->sip_cseq) r.method = text(sip->sip_cseq->cs_method_name);
  }
  if (sip->sip_request) {
    r.method = text(sip->sip_request->rq_method_name);
    r.request_uri = urlText(sip->sip_request->rq_url);
  }
  if (sip->sip_payload && sip->sip_payload->pl_data) {
    r.body.assign(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  }
  r.headers = headersOf(msg);
  return r;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string headerLines(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string lines;
  for (const auto& [name, value] : headers) lines += name + ": " + value + "\r\n";
  return lines;
}

}  // namespace

// ------------------------------------------------------------------ records

std::string SipMessageRecord::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

std::vector<std::string> SipMessageRecord::headerValues(std::string_view lower_name) const {
  std::vector<std::string> values;
  for (const auto& [name, value] : headers) {
    if (name == lower_name) values.push_back(value);
  }
  return values;
}

// --------------------------------------------------------------------- impl

struct SipTestUa::Impl {
  // One INVITE we sent, and the dialog it may create. Runs on the SIP thread.
  struct Call {
    Impl* ua = nullptr;
    int id = 0;
    nta_leg_t* leg = nullptr;
    nta_outgoing_t* invite = nullptr;
    nta_outgoing_t* cancel = nullptr;
    nta_outgoing_t* ack = nullptr;
    bool routed = false;  // the leg follows the first 2xx (tag, route set, target)
  };
  // What tests read about a Call. Guarded by mutex.
  struct CallRecord {
    std::string call_id;
    std::vector<SipMessageRecord> responses;
    int final_status = 0;
    int cancel_status = 0;
  };
  // One non-INVITE client transaction (or a REGISTER and its retry). Its
  // results are guarded by mutex; the object lives until teardown.
  struct Request {
    Impl* ua = nullptr;
    std::vector<nta_outgoing_t*> orqs;
    std::vector<SipMessageRecord> responses;
    int status = 0;
    // REGISTER with digest auth.
    su_home_t* home = nullptr;
    auth_client_t* auc = nullptr;
    std::string user, password, request_uri, proxy, call_id, from_tag;
    std::string aor_user;  // To/From user; "" means `user`
    int expires = 0;
    uint32_t cseq = 1;
    bool challenged = false;
  };
  // One INVITE we received. Runs on the SIP thread.
  struct ServerInvite {
    Impl* ua = nullptr;
    nta_incoming_t* irq = nullptr;
    su_timer_t* timer = nullptr;
    SipInviteAnswer answer;
    bool in_dialog = false;  // a re-INVITE, not a call
  };

  explicit Impl(SipTestUaOptions o) : options(std::move(o)) {}

  template <class F>
  std::invoke_result_t<F&> onThread(F fn);

  // SIP thread.
  void start();
  void teardown();
  std::string route(const std::string& proxy) const;
  Call& call(int id);
  void recordReceived(SipMessageRecord record);
  int answerFor(const std::string& method, int fallback);
  void answerInvite(nta_incoming_t* irq);
  void sendFinal(ServerInvite& si);
  bool sendRegister(Request& r);
  Request* newRequest();
  void finishRequest(Request& r, int status);

  // Thread-safe.
  int waitRequest(Request* r, int timeout_ms);

  // C callbacks.
  static int onRequest(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                       const sip_t* sip);
  static int onDialogRequest(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                             const sip_t* sip);
  static int onServerInviteEvent(nta_incoming_magic_t* magic, nta_incoming_t* irq,
                                 const sip_t* sip);
  static void onFinalTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg);
  static int onInviteResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  static int onCancelResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  static int onRequestResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  static int onRegisterResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);

  SipTestUaOptions options;
  std::string contact;
  registrar::SipThread thread;

  // SIP thread only.
  nta_agent_t* agent = nullptr;
  nta_leg_t* default_leg = nullptr;
  std::map<int, std::unique_ptr<Call>> calls;
  std::vector<std::unique_ptr<Request>> requests;
  std::vector<std::unique_ptr<ServerInvite>> server_invites;
  std::map<ServerInvite*, nta_leg_t*> uas_dialogs;  // our side of answered INVITEs' dialogs

  // Shared with test threads.
  mutable std::mutex mutex;
  std::condition_variable changed;
  int next_call = 1;
  std::map<int, CallRecord> call_records;
  std::vector<SipMessageRecord> received;
  Request* last_request = nullptr;
  SipInviteAnswer invite_answer;
  std::map<std::string, int> request_answers;
};

template <class F>
std::invoke_result_t<F&> SipTestUa::Impl::onThread(F fn) {
  using R = std::invoke_result_t<F&>;
  if (thread.inThread()) return fn();
  std::packaged_task<R()> task(std::move(fn));
  auto result = task.get_future();
  thread.post([&task] { task(); });
  return result.get();
}

void SipTestUa::Impl::start() {
  auto* root = static_cast<su_root_t*>(thread.root());
  std::string base = "sip:" + options.bind_ip + ":" + std::to_string(options.port) + ";transport=";
  std::string udp = base + "udp", tcp = base + "tcp";
  // NTATAG_UA: act as a UA (2xx retransmissions absorbed, ACK for 2xx
  // matched to our INVITE, automatic 487 after a CANCEL). PASS_100: tests
  // want to see 100 Trying too. EXTRACT_COPY: keep each header's bytes as
  // received, for SipMessageRecord::headers.
  agent = nta_agent_create(root, URL_STRING_MAKE(udp.c_str()), nullptr, nullptr, NTATAG_UA(1),
                           NTATAG_PASS_100(1), NTATAG_CLIENT_RPORT(1), NTATAG_USE_NAPTR(0),
                           NTATAG_USE_SRV(0), NTATAG_SIPFLAGS(MSG_DO_CANONIC | MSG_DO_EXTRACT_COPY),
                           TAG_END());
  if (agent && nta_agent_add_tport(agent, URL_STRING_MAKE(tcp.c_str()), TAG_END()) != 0) {
    nta_agent_destroy(agent);
    agent = nullptr;
  }
  if (!agent) {
    throw std::runtime_error("SipTestUa: cannot bind " + options.bind_ip + ":" +
                             std::to_string(options.port));
  }
  // A dialog-less leg without a URL is nta's default leg: every request that
  // matches no transaction or dialog comes to onRequest.
  default_leg = nta_leg_tcreate(agent, onRequest, reinterpret_cast<nta_leg_magic_t*>(this),
                                NTATAG_NO_DIALOG(1), TAG_END());
  if (!default_leg) {
    nta_agent_destroy(agent);
    agent = nullptr;
    throw std::runtime_error("SipTestUa: cannot create the default leg");
  }
}

void SipTestUa::Impl::teardown() {
  for (auto& si : server_invites) {
    if (si->timer) su_timer_destroy(si->timer);
    nta_incoming_destroy(si->irq);  // sends 500 to an INVITE still unanswered
  }
  server_invites.clear();
  for (auto& [id, c] : calls) {
    nta_outgoing_destroy(c->cancel);
    nta_outgoing_destroy(c->ack);
    nta_outgoing_destroy(c->invite);
    if (c->leg) nta_leg_destroy(c->leg);
  }
  calls.clear();
  for (auto& r : requests) {
    for (auto* orq : r->orqs) nta_outgoing_destroy(orq);
    if (r->home) su_home_unref(r->home);
  }
  {
    std::lock_guard lock(mutex);
    last_request = nullptr;
  }
  requests.clear();
  for (auto& [si, leg] : uas_dialogs) nta_leg_destroy(leg);
  uas_dialogs.clear();
  if (default_leg) nta_leg_destroy(default_leg);
  default_leg = nullptr;
  if (agent) nta_agent_destroy(agent);
  agent = nullptr;
}

// Requests to a proxy URI without a transport go over options.transport.
std::string SipTestUa::Impl::route(const std::string& proxy) const {
  if (options.transport == "udp" || proxy.find("transport=") != std::string::npos) return proxy;
  return proxy + ";transport=" + options.transport;
}

SipTestUa::Impl::Call& SipTestUa::Impl::call(int id) {
  auto it = calls.find(id);
  if (it == calls.end()) throw std::invalid_argument("SipTestUa: no call " + std::to_string(id));
  return *it->second;
}

void SipTestUa::Impl::recordReceived(SipMessageRecord record) {
  std::lock_guard lock(mutex);
  received.push_back(std::move(record));
  changed.notify_all();
}

int SipTestUa::Impl::answerFor(const std::string& method, int fallback) {
  std::lock_guard lock(mutex);
  auto it = request_answers.find(method);
  return it != request_answers.end() ? it->second : fallback;
}

SipTestUa::Impl::Request* SipTestUa::Impl::newRequest() {
  requests.push_back(std::make_unique<Request>());
  Request* r = requests.back().get();
  r->ua = this;
  std::lock_guard lock(mutex);
  last_request = r;
  return r;
}

void SipTestUa::Impl::finishRequest(Request& r, int status) {
  std::lock_guard lock(mutex);
  if (r.status == 0) r.status = status;
  changed.notify_all();
}

int SipTestUa::Impl::waitRequest(Request* r, int timeout_ms) {
  std::unique_lock lock(mutex);
  changed.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return r->status != 0; });
  return r->status;
}

// ------------------------------------------------------------ server side

int SipTestUa::Impl::onRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                               const sip_t* sip) {
  double at = nowSeconds();
  auto* ua = reinterpret_cast<Impl*>(magic);
  if (!sip || !sip->sip_request) return 400;
  msg_t* msg = nta_incoming_getrequest(irq);
  SipMessageRecord record = recordOf(msg, sip, at);
  msg_destroy(msg);
  std::string method = record.method;
  ua->recordReceived(std::move(record));
  switch (sip->sip_request->rq_method) {
    case sip_method_ack:
      nta_incoming_destroy(irq);  // an ACK gets no answer
      return 0;
    case sip_method_invite:
      ua->answerInvite(irq);
      return 0;
    case sip_method_cancel:
      return 481;  // nta answers CANCELs of transactions it knows itself
    case sip_method_options:
      return ua->answerFor(method, 200);
    case sip_method_bye:
      return ua->answerFor(method, 200);
    default:
      return ua->answerFor(method, 405);
  }
}

// Requests inside a dialog we created with an INVITE (a BYE from the callee).
int SipTestUa::Impl::onDialogRequest(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                                     const sip_t* sip) {
  auto* c = reinterpret_cast<Call*>(magic);
  return onRequest(reinterpret_cast<nta_leg_magic_t*>(c->ua), leg, irq, sip);
}

void SipTestUa::Impl::answerInvite(nta_incoming_t* irq) {
  SipInviteAnswer answer;
  {
    std::lock_guard lock(mutex);
    answer = invite_answer;
  }
  server_invites.push_back(std::make_unique<ServerInvite>());
  ServerInvite& si = *server_invites.back();
  si.ua = this;
  si.irq = irq;
  si.answer = answer;
  if (msg_t* msg = nta_incoming_getrequest(irq)) {
    sip_t const* sip = sip_object(msg);
    si.in_dialog = sip && sip->sip_to && sip->sip_to->a_tag;
    msg_destroy(msg);
  }
  // CANCEL and ACK of this INVITE come to onServerInviteEvent.
  nta_incoming_bind(irq, onServerInviteEvent, reinterpret_cast<nta_incoming_magic_t*>(&si));
  nta_incoming_tag(irq, nullptr);  // one To-tag for the 180 and the final answer
  std::string contact_header = "<" + contact + ">";
  if (answer.ring_first) {
    nta_incoming_treply(irq, SIP_180_RINGING, SIPTAG_CONTACT_STR(contact_header.c_str()),
                        TAG_END());
  }
  if (!answer.early_sdp.empty()) {
    nta_incoming_treply(irq, SIP_183_SESSION_PROGRESS, SIPTAG_CONTACT_STR(contact_header.c_str()),
                        SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                        SIPTAG_PAYLOAD_STR(answer.early_sdp.c_str()), TAG_END());
  }
  if (answer.status < 200) {
    if (answer.status >= 100) {
      nta_incoming_treply(irq, answer.status, nullptr, SIPTAG_CONTACT_STR(contact_header.c_str()),
                          TAG_END());
    }
    return;  // no final answer: rings until CANCELled
  }
  if (answer.final_delay_ms > 0) {
    si.timer = su_timer_create(su_root_task(static_cast<su_root_t*>(thread.root())), 0);
    su_timer_set_interval(si.timer, onFinalTimer, reinterpret_cast<su_timer_arg_t*>(&si),
                          answer.final_delay_ms);
    return;
  }
  sendFinal(si);
}

void SipTestUa::Impl::sendFinal(ServerInvite& si) {
  if (nta_incoming_status(si.irq) >= 200) return;  // CANCELled meanwhile: nta sent 487
  int status = si.answer.status;
  bool success = status >= 200 && status < 300;
  bool sdp = success && !si.answer.sdp.empty();
  std::string contact_header = "<" + contact + ">";
  nta_incoming_treply(si.irq, status, nullptr,
                      TAG_IF(success, SIPTAG_CONTACT_STR(contact_header.c_str())),
                      TAG_IF(sdp, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                      TAG_IF(sdp, SIPTAG_PAYLOAD_STR(si.answer.sdp.c_str())), TAG_END());
}

void SipTestUa::Impl::onFinalTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
  auto* si = reinterpret_cast<ServerInvite*>(arg);
  si->ua->sendFinal(*si);
}

int SipTestUa::Impl::onServerInviteEvent(nta_incoming_magic_t* magic, nta_incoming_t* irq,
                                         const sip_t* sip) {
  double at = nowSeconds();
  auto* si = reinterpret_cast<ServerInvite*>(magic);
  if (!sip || !sip->sip_request) return 0;  // timer H: the ACK never came
  msg_t* msg = nta_incoming_getrequest_ackcancel(irq);
  SipMessageRecord record = recordOf(msg, sip, at);
  if (msg) msg_destroy(msg);
  si->ua->recordReceived(std::move(record));
  return 0;
}

// ------------------------------------------------------------ client side

namespace {

// A response as received; a local one (timeout, transport error) has no status line.
SipMessageRecord responseRecord(nta_outgoing_t* orq, const sip_t* sip) {
  double at = nowSeconds();
  msg_t* msg = nta_outgoing_getresponse(orq);
  SipMessageRecord record = recordOf(msg, sip, at);
  if (msg) msg_destroy(msg);
  if (!sip || !sip->sip_status) record.status = nta_outgoing_status(orq);
  return record;
}

// ACKs a re-INVITE's 2xx within `leg` (the CSeq is the re-INVITE's).
void ackReInvite(nta_leg_t* leg, const std::string& invite_cseq) {
  std::string ack_cseq = invite_cseq.substr(0, invite_cseq.find(' ')) + " ACK";
  nta_outgoing_t* ack = nta_outgoing_tcreate(leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
                                             SIPTAG_CSEQ_STR(ack_cseq.c_str()), TAG_END());
  if (ack) nta_outgoing_destroy(ack);
}

}  // namespace

int SipTestUa::Impl::onInviteResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                                      const sip_t* sip) {
  auto* c = reinterpret_cast<Call*>(magic);
  SipMessageRecord record = responseRecord(orq, sip);
  int status = record.status;
  if (status >= 200 && status < 300 && sip && !record.local && !c->routed) {
    // The dialog: remote tag, route set from Record-Route, target from Contact.
    c->routed = true;
    if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(c->leg, sip->sip_to->a_tag);
    nta_leg_client_route(c->leg, sip->sip_record_route, sip->sip_contact);
  }
  std::lock_guard lock(c->ua->mutex);
  CallRecord& rec = c->ua->call_records[c->id];
  rec.responses.push_back(std::move(record));
  if (status >= 200 && rec.final_status == 0) rec.final_status = status;
  c->ua->changed.notify_all();
  return 0;
}

int SipTestUa::Impl::onCancelResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                                      const sip_t* sip) {
  auto* c = reinterpret_cast<Call*>(magic);
  int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
  if (status < 200) return 0;
  std::lock_guard lock(c->ua->mutex);
  c->ua->call_records[c->id].cancel_status = status;
  c->ua->changed.notify_all();
  return 0;
}

int SipTestUa::Impl::onRequestResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                                       const sip_t* sip) {
  auto* r = reinterpret_cast<Request*>(magic);
  SipMessageRecord record = responseRecord(orq, sip);
  int status = record.status;
  {
    std::lock_guard lock(r->ua->mutex);
    r->responses.push_back(std::move(record));
  }
  if (status >= 200) r->ua->finishRequest(*r, status);
  return 0;
}

int SipTestUa::Impl::onRegisterResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                                        const sip_t* sip) {
  auto* r = reinterpret_cast<Request*>(magic);
  int status = sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
  bool local = !sip || (sip->sip_flags & kNtaInternalMessage) != 0;
  if ((status == 401 || status == 407) && !local && !r->challenged) {
    {
      double at = nowSeconds();
      msg_t* msg = nta_outgoing_getresponse(orq);
      SipMessageRecord record = recordOf(msg, sip, at);
      if (msg) msg_destroy(msg);
      std::lock_guard lock(r->ua->mutex);
      r->responses.push_back(std::move(record));
    }
    r->challenged = true;
    const msg_auth_t* challenge =
        status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate;
    msg_hclass_t* credentials_class =
        status == 401 ? sip_authorization_class : sip_proxy_authorization_class;
    if (auc_challenge(&r->auc, r->home, challenge, credentials_class) > 0 &&
        auc_all_credentials(&r->auc, "Digest", nullptr, r->user.c_str(), r->password.c_str()) > 0) {
      ++r->cseq;
      if (r->ua->sendRegister(*r)) return 0;
    }
    r->ua->finishRequest(*r, status);  // cannot answer the challenge
    return 0;
  }
  return onRequestResponse(magic, orq, sip);
}

bool SipTestUa::Impl::sendRegister(Request& r) {
  std::string request_line = "REGISTER " + r.request_uri + " SIP/2.0";
  std::string aor = "<sip:" + (r.aor_user.empty() ? r.user : r.aor_user) + "@" + r.request_uri.substr(4) + ">";
  std::string from = aor + ";tag=" + r.from_tag;
  std::string cseq = std::to_string(r.cseq) + " REGISTER";
  std::string contact_header = "<" + contact + ">";
  std::string expires = std::to_string(r.expires);
  msg_t* msg = nta_msg_create(agent, 0);
  if (!msg) return false;
  sip_t* sip = sip_object(msg);
  if (sip_add_tl(msg, sip, SIPTAG_REQUEST_STR(request_line.c_str()), SIPTAG_FROM_STR(from.c_str()),
                 SIPTAG_TO_STR(aor.c_str()), SIPTAG_CALL_ID_STR(r.call_id.c_str()),
                 SIPTAG_CSEQ_STR(cseq.c_str()), SIPTAG_CONTACT_STR(contact_header.c_str()),
                 SIPTAG_EXPIRES_STR(expires.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                 SIPTAG_USER_AGENT_STR("sipwake-test-ua"), TAG_END()) < 0 ||
      (r.auc && auc_authorize(&r.auc, msg, sip) < 0)) {
    msg_destroy(msg);
    return false;
  }
  nta_outgoing_t* orq =
      nta_outgoing_mcreate(agent, onRegisterResponse, reinterpret_cast<nta_outgoing_magic_t*>(&r),
                           URL_STRING_MAKE(r.proxy.c_str()), msg, TAG_END());
  if (!orq) {
    msg_destroy(msg);
    return false;
  }
  r.orqs.push_back(orq);
  return true;
}

// ------------------------------------------------------------------ public

SipTestUa::SipTestUa(SipTestUaOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  auto& o = impl_->options;
  if (o.transport != "udp" && o.transport != "tcp") {
    throw std::invalid_argument("SipTestUa: transport must be udp or tcp");
  }
  if (o.port == 0) o.port = freePort();
  impl_->contact = "sip:" + o.contact_user + "@" + o.bind_ip + ":" + std::to_string(o.port) +
                   ";transport=" + o.transport;
  impl_->thread.start([this] { impl_->start(); });
}

SipTestUa::~SipTestUa() {
  impl_->thread.stop([this] { impl_->teardown(); });
}

uint16_t SipTestUa::port() const {
  return impl_->options.port;
}

std::string SipTestUa::contactUri() const {
  return impl_->contact;
}

int SipTestUa::invite(const std::string& request_uri, const std::string& proxy,
                      const std::string& from_uri, const std::string& from_display,
                      const std::string& sdp,
                      std::vector<std::pair<std::string, std::string>> extra_headers) {
  return impl_->onThread([&]() -> int {
    Impl& ua = *impl_;
    int id;
    {
      std::lock_guard lock(ua.mutex);
      id = ua.next_call++;
    }
    std::string call_id = crypto::uniqueToken(96) + "@sipwake-test-ua";
    std::string from = (from_display.empty() ? "" : quoted(from_display) + " ") + "<" + from_uri +
                       ">;tag=" + crypto::uniqueToken(64);
    std::string to = "<" + request_uri + ">";
    std::string contact_header = "<" + ua.contact + ">";
    std::string extra = headerLines(extra_headers);
    std::string destination = ua.route(proxy);

    auto c = std::make_unique<Impl::Call>();
    c->ua = &ua;
    c->id = id;
    c->leg = nta_leg_tcreate(ua.agent, Impl::onDialogRequest,
                             reinterpret_cast<nta_leg_magic_t*>(c.get()),
                             SIPTAG_CALL_ID_STR(call_id.c_str()), SIPTAG_FROM_STR(from.c_str()),
                             SIPTAG_TO_STR(to.c_str()), TAG_END());
    if (!c->leg) throw std::invalid_argument("SipTestUa::invite: bad From or To");
    {
      std::lock_guard lock(ua.mutex);
      ua.call_records[id].call_id = call_id;
    }
    Impl::Call* raw = c.get();
    ua.calls.emplace(id, std::move(c));
    raw->invite = nta_outgoing_tcreate(
        raw->leg, Impl::onInviteResponse, reinterpret_cast<nta_outgoing_magic_t*>(raw),
        URL_STRING_MAKE(destination.c_str()), SIP_METHOD_INVITE,
        URL_STRING_MAKE(request_uri.c_str()), SIPTAG_CONTACT_STR(contact_header.c_str()),
        SIPTAG_USER_AGENT_STR("sipwake-test-ua"),
        TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())),
        TAG_IF(!sdp.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
        TAG_IF(!sdp.empty(), SIPTAG_PAYLOAD_STR(sdp.c_str())), TAG_END());
    if (!raw->invite) {
      throw std::invalid_argument("SipTestUa::invite: cannot send to " + request_uri + " via " +
                                  destination);
    }
    return id;
  });
}

std::string SipTestUa::callId(int call) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->call_records.find(call);
  return it == impl_->call_records.end() ? "" : it->second.call_id;
}

std::vector<SipMessageRecord> SipTestUa::responses(int call) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->call_records.find(call);
  return it == impl_->call_records.end() ? std::vector<SipMessageRecord>{} : it->second.responses;
}

bool SipTestUa::waitForResponse(int call, std::function<bool(const SipMessageRecord&)> pred,
                                int timeout_ms) {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    auto it = impl_->call_records.find(call);
    if (it == impl_->call_records.end()) return false;
    return std::any_of(it->second.responses.begin(), it->second.responses.end(), pred);
  });
}

bool SipTestUa::waitForFinal(int call, int timeout_ms) {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    auto it = impl_->call_records.find(call);
    return it != impl_->call_records.end() && it->second.final_status != 0;
  });
}

int SipTestUa::finalStatus(int call) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->call_records.find(call);
  return it == impl_->call_records.end() ? 0 : it->second.final_status;
}

bool SipTestUa::cancel(int call, const std::string& reason) {
  return impl_->onThread([&]() -> bool {
    Impl::Call& c = impl_->call(call);
    if (c.cancel || !c.invite) return false;
    // Sent at once after a provisional response, else nta holds it until one
    // comes (RFC 3261 9.1).
    c.cancel = nta_outgoing_tcancel(
        c.invite, Impl::onCancelResponse, reinterpret_cast<nta_outgoing_magic_t*>(&c),
        TAG_IF(!reason.empty(), SIPTAG_REASON_STR(reason.c_str())), TAG_END());
    return c.cancel != nullptr;
  });
}

int SipTestUa::cancelStatus(int call) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->call_records.find(call);
  return it == impl_->call_records.end() ? 0 : it->second.cancel_status;
}

void SipTestUa::ack(int call) {
  impl_->onThread([&] {
    Impl::Call& c = impl_->call(call);
    if (!c.routed) throw std::logic_error("SipTestUa::ack: no 2xx to acknowledge");
    if (c.ack) return;
    // The leg gives the CSeq of the INVITE, the route set and the target.
    c.ack = nta_outgoing_tcreate(c.leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
                                 SIPTAG_USER_AGENT_STR("sipwake-test-ua"), TAG_END());
    if (!c.ack) throw std::runtime_error("SipTestUa::ack: nta refused the ACK");
  });
}

int SipTestUa::bye(int call, int timeout_ms) {
  Impl::Request* r = impl_->onThread([&] {
    Impl::Call& c = impl_->call(call);
    if (!c.routed) throw std::logic_error("SipTestUa::bye: no dialog");
    Impl::Request* request = impl_->newRequest();
    nta_outgoing_t* orq = nta_outgoing_tcreate(
        c.leg, Impl::onRequestResponse, reinterpret_cast<nta_outgoing_magic_t*>(request), nullptr,
        SIP_METHOD_BYE, nullptr, SIPTAG_USER_AGENT_STR("sipwake-test-ua"), TAG_END());
    if (!orq) throw std::runtime_error("SipTestUa::bye: nta refused the BYE");
    request->orqs.push_back(orq);
    return request;
  });
  return impl_->waitRequest(r, timeout_ms);
}

int SipTestUa::inDialog(int call, const std::string& method, const std::string& body,
                        const std::string& content_type, int timeout_ms) {
  nta_leg_t* leg = impl_->onThread([&] {
    Impl::Call& c = impl_->call(call);
    if (!c.routed) throw std::logic_error("SipTestUa::inDialog: no dialog");
    return c.leg;
  });
  return requestInDialog(leg, method, body, content_type, timeout_ms);
}

int SipTestUa::inReceivedDialog(const std::string& method, const std::string& body,
                                const std::string& content_type, int timeout_ms) {
  nta_leg_t* dialog = impl_->onThread([&] {
    Impl& ua = *impl_;
    Impl::ServerInvite* answered = nullptr;
    for (auto& si : ua.server_invites) {
      int st = nta_incoming_status(si->irq);
      if (st >= 200 && st < 300 && !si->in_dialog) answered = si.get();
    }
    if (!answered) throw std::logic_error("SipTestUa::inReceivedDialog: no answered INVITE");
    nta_leg_t*& leg = ua.uas_dialogs[answered];
    if (leg) return leg;
    msg_t* msg = nta_incoming_getrequest(answered->irq);
    sip_t const* sip = msg ? sip_object(msg) : nullptr;
    if (!sip) throw std::runtime_error("SipTestUa::inReceivedDialog: the INVITE is gone");
    // Our side of its dialog: our To-tag, its route set and Contact.
    leg = nta_leg_tcreate(ua.agent, nullptr, nullptr, SIPTAG_CALL_ID(sip->sip_call_id),
                          SIPTAG_FROM(sip->sip_to), SIPTAG_TO(sip->sip_from), TAG_END());
    if (leg) {
      nta_leg_tag(leg, nta_incoming_gettag(answered->irq));
      nta_leg_server_route(leg, sip->sip_record_route, sip->sip_contact);
    }
    msg_destroy(msg);
    if (!leg) throw std::runtime_error("SipTestUa::inReceivedDialog: no dialog leg");
    return leg;
  });
  return requestInDialog(dialog, method, body, content_type, timeout_ms);
}

int SipTestUa::requestInDialog(nta_leg_t* leg, const std::string& method, const std::string& body,
                               const std::string& content_type, int timeout_ms) {
  Impl::Request* r = impl_->onThread([&] {
    Impl::Request* request = impl_->newRequest();
    std::string contact_header = "<" + impl_->contact + ">";
    bool has_body = !body.empty();
    nta_outgoing_t* orq = nta_outgoing_tcreate(
        leg, Impl::onRequestResponse, reinterpret_cast<nta_outgoing_magic_t*>(request), nullptr,
        sip_method_code(method.c_str()), method.c_str(), nullptr, SIPTAG_CONTACT_STR(contact_header.c_str()),
        TAG_IF(has_body, SIPTAG_CONTENT_TYPE_STR(content_type.c_str())),
        TAG_IF(has_body, SIPTAG_PAYLOAD_STR(body.c_str())), SIPTAG_USER_AGENT_STR("sipwake-test-ua"),
        TAG_END());
    if (!orq) throw std::runtime_error("SipTestUa: nta refused the in-dialog " + method);
    request->orqs.push_back(orq);
    return request;
  });
  int status = impl_->waitRequest(r, timeout_ms);
  if (method == "INVITE" && status >= 200 && status < 300) {
    std::string cseq = lastRequestResponses().back().header("cseq");
    impl_->onThread([&] { ackReInvite(leg, cseq); });
  }
  return status;
}

int SipTestUa::message(const std::string& request_uri, const std::string& proxy,
                       const std::string& from_uri, const std::string& body,
                       const std::string& content_type, int timeout_ms) {
  Impl::Request* r = impl_->onThread([&] {
    Impl& ua = *impl_;
    std::string request_line = "MESSAGE " + request_uri + " SIP/2.0";
    std::string from = "<" + from_uri + ">;tag=" + crypto::uniqueToken(64);
    std::string to = "<" + request_uri + ">";
    std::string call_id = crypto::uniqueToken(96) + "@sipwake-test-ua";
    std::string destination = ua.route(proxy);
    Impl::Request* request = ua.newRequest();
    nta_outgoing_t* orq = nta_outgoing_mcreate(
        ua.agent, Impl::onRequestResponse, reinterpret_cast<nta_outgoing_magic_t*>(request),
        URL_STRING_MAKE(destination.c_str()), newMessage(),
        SIPTAG_REQUEST_STR(request_line.c_str()), SIPTAG_FROM_STR(from.c_str()),
        SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(call_id.c_str()),
        SIPTAG_CSEQ_STR("1 MESSAGE"), SIPTAG_MAX_FORWARDS_STR("70"),
        SIPTAG_USER_AGENT_STR("sipwake-test-ua"), SIPTAG_CONTENT_TYPE_STR(content_type.c_str()),
        SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END());
    if (!orq) throw std::invalid_argument("SipTestUa::message: cannot send to " + request_uri);
    request->orqs.push_back(orq);
    return request;
  });
  return impl_->waitRequest(r, timeout_ms);
}

int SipTestUa::options(const std::string& request_uri, const std::string& proxy, int timeout_ms) {
  Impl::Request* r = impl_->onThread([&] {
    Impl& ua = *impl_;
    std::string request_line = "OPTIONS " + request_uri + " SIP/2.0";
    std::string from = "<sip:" + ua.options.contact_user + "@" + ua.options.bind_ip +
                       ">;tag=" + crypto::uniqueToken(64);
    std::string to = "<" + request_uri + ">";
    std::string call_id = crypto::uniqueToken(96) + "@sipwake-test-ua";
    std::string destination = ua.route(proxy);
    Impl::Request* request = ua.newRequest();
    nta_outgoing_t* orq = nta_outgoing_mcreate(
        ua.agent, Impl::onRequestResponse, reinterpret_cast<nta_outgoing_magic_t*>(request),
        URL_STRING_MAKE(destination.c_str()), newMessage(),
        SIPTAG_REQUEST_STR(request_line.c_str()), SIPTAG_FROM_STR(from.c_str()),
        SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(call_id.c_str()),
        SIPTAG_CSEQ_STR("1 OPTIONS"), SIPTAG_MAX_FORWARDS_STR("70"),
        SIPTAG_USER_AGENT_STR("sipwake-test-ua"), TAG_END());
    if (!orq) throw std::invalid_argument("SipTestUa::options: cannot send to " + request_uri);
    request->orqs.push_back(orq);
    return request;
  });
  return impl_->waitRequest(r, timeout_ms);
}

int SipTestUa::registerTo(const std::string& proxy, const std::string& user,
                          const std::string& password, int expires, int timeout_ms,
                          const std::string& aor_user) {
  Impl::Request* r = impl_->onThread([&] {
    Impl& ua = *impl_;
    std::string destination = ua.route(proxy);
    auto* home = static_cast<su_home_t*>(su_home_new(sizeof(su_home_t)));
    url_t* url = home ? url_hdup(home, URL_STRING_MAKE(destination.c_str())->us_url) : nullptr;
    if (!url || !url->url_host) {
      if (home) su_home_unref(home);
      throw std::invalid_argument("SipTestUa::registerTo: bad proxy " + proxy);
    }
    Impl::Request* request = ua.newRequest();
    request->home = home;
    request->user = user;
    request->aor_user = aor_user;
    request->password = password;
    request->request_uri = std::string("sip:") + url->url_host;  // the domain = realm at the PBX
    request->proxy = destination;
    request->call_id = crypto::uniqueToken(96) + "@sipwake-test-ua";
    request->from_tag = crypto::uniqueToken(64);
    request->expires = expires;
    if (!ua.sendRegister(*request)) {
      throw std::invalid_argument("SipTestUa::registerTo: cannot send to " + proxy);
    }
    return request;
  });
  return impl_->waitRequest(r, timeout_ms);
}

std::vector<SipMessageRecord> SipTestUa::lastRequestResponses() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_request ? impl_->last_request->responses : std::vector<SipMessageRecord>{};
}

std::string SipTestUa::sendRawUdp(const std::string& bind_ip, const std::string& host,
                                  uint16_t port, const std::string& bytes, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("sendRawUdp: socket failed");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_in local{}, remote{};
  local.sin_family = remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  if (inet_pton(AF_INET, bind_ip.c_str(), &local.sin_addr) != 1 ||
      inet_pton(AF_INET, host.c_str(), &remote.sin_addr) != 1) {
    throw std::invalid_argument("sendRawUdp: IPv4 addresses only");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    throw std::runtime_error("sendRawUdp: cannot bind " + bind_ip);
  }
  if (sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&remote),
             sizeof remote) != static_cast<ssize_t>(bytes.size())) {
    throw std::runtime_error("sendRawUdp: sendto failed");
  }
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string received;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[65536];
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) break;
    received.append(buffer, static_cast<size_t>(n));
    deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(100));
  }
  return received;
}

std::vector<SipMessageRecord> SipTestUa::requestsReceived() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->received;
}

bool SipTestUa::waitForRequest(std::function<bool(const SipMessageRecord&)> pred, int timeout_ms) {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return std::any_of(impl_->received.begin(), impl_->received.end(), pred);
  });
}

void SipTestUa::setInviteAnswer(int status, const std::string& sdp) {
  SipInviteAnswer answer;
  answer.status = status;
  answer.sdp = sdp;
  setInviteAnswer(answer);
}

void SipTestUa::setInviteAnswer(const SipInviteAnswer& answer) {
  std::lock_guard lock(impl_->mutex);
  impl_->invite_answer = answer;
}

void SipTestUa::setRequestAnswer(const std::string& method, int status) {
  std::lock_guard lock(impl_->mutex);
  impl_->request_answers[method] = status;
}

bool SipTestUa::waitForPushStatus(int call, const std::string& status, int timeout_ms) {
  return waitForResponse(call, [&](const SipMessageRecord& r) {
    return r.status == 180 && r.header("x-push-status") == status;
  }, timeout_ms);
}

}  // namespace sipwake::testing
