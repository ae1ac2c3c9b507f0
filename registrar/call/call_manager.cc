#include "registrar/call/call_manager.h"

#include "common/log/logger.h"

namespace sipwake::registrar {
namespace {

constexpr const char* kPushStatus = "X-Push-Status";
constexpr const char* kPushReason = "X-Push-Reason";

std::string callKey(const std::string& binding_key, const std::string& call_id) {
  return binding_key + "\n" + call_id;
}

// Cuts a UTF-8 text to at most `limit` bytes without splitting a character.
std::string trimUtf8(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

struct CallManager::Call {
  std::string binding_key;
  std::string call_id;
  std::unique_ptr<ServerTransaction> transaction;
  bool acked = false;
  bool push_reported = false;
  Millis deadline = 0;
  PushRequest push;  // the call push, reused for call_cancelled
  RelayOffer offer;  // what the apps' legs get
};

CallMetrics::CallMetrics(prometheus::Registry& registry) {
  invites_ = &prometheus::BuildCounter()
                  .Name("registrar_invites_total")
                  .Help("INVITEs to our Contacts, by how they ended")
                  .Register(registry);
  const std::pair<InviteResult, const char*> results[] = {
      {InviteResult::NotFound, "not_found"},
      {InviteResult::ForeignSource, "foreign_source"},
      {InviteResult::Duplicate, "duplicate"},
      {InviteResult::Cancelled, "cancelled"},
      {InviteResult::NoDeviceAck, "no_device_ack"},
      {InviteResult::DeviceDidNotConnect, "device_did_not_connect"},
      {InviteResult::ShutDown, "shut_down"},
      {InviteResult::Redirected, "redirected"},
      {InviteResult::Answered, "answered"},
      {InviteResult::Declined, "declined"},
      {InviteResult::PushCapped, "push_capped"}};
  for (const auto& [result, label] : results) {
    invite_counters_[result] = &invites_->Add({{"result", label}});
  }
  auto& messages = prometheus::BuildCounter()
                       .Name("registrar_messages_total")
                       .Help("MESSAGE requests to our Contacts, accepted (pushed) or refused")
                       .Register(registry);
  messages_accepted_ = &messages.Add({{"result", "accepted"}});
  messages_refused_ = &messages.Add({{"result", "refused"}});
  messages_capped_ = &messages.Add({{"result", "push_capped"}});
  auto& capped = prometheus::BuildCounter()
                     .Name("registrar_pushes_capped_total")
                     .Help("Pushes not sent because their binding reached its per-minute cap, by type")
                     .Register(registry);
  capped_calls_ = &capped.Add({{"type", "call"}});
  capped_messages_ = &capped.Add({{"type", "message"}});
  lost_ = &prometheus::BuildCounter()
               .Name("registrar_calls_lost_total")
               .Help("Calls that were ringing here when this instance died, found when it restarted")
               .Register(registry)
               .Add({});
  answer_latency_ = &prometheus::BuildHistogram()
                         .Name("registrar_invite_to_answer_seconds")
                         .Help("From the PBX's INVITE to a woken app's answer, relayed calls")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 5, 8, 13, 20, 30, 45, 60});
}

void CallMetrics::invite(InviteResult result) { invite_counters_.at(result)->Increment(); }

void CallMetrics::pushCapped(PushType type) {
  (type == PushType::Call ? capped_calls_ : capped_messages_)->Increment();
  if (type == PushType::Message) messages_capped_->Increment();
}

void CallMetrics::message(bool accepted) {
  (accepted ? messages_accepted_ : messages_refused_)->Increment();
}

CallManager::CallManager(CallPolicy policy, Clock& clock, const ContactDirectory& directory,
                         PushSink& pushes, CallMetrics* metrics, WakeupScheduler& wakeup)
    : policy_(policy),
      clock_(clock),
      directory_(directory),
      pushes_(pushes),
      metrics_(metrics),
      wakeup_(wakeup) {}

CallManager::~CallManager() = default;

void CallManager::onRequest(IncomingRequest request,
                            std::unique_ptr<ServerTransaction> transaction) {
  using Method = IncomingRequest::Method;
  if (request.method == Method::Options) {
    transaction->respond(200, "OK");
    return;
  }
  auto owner = directory_.findByContact(request.contact_user);
  if (!owner || owner->state == RegistrationState::Failed) {
    if (request.method == Method::Invite && metrics_) {
      metrics_->invite(CallMetrics::InviteResult::NotFound);
    }
    transaction->respond(404, "Not Found");
    return;
  }
  // Only the binding's PBX may ring its phone: anything else is refused
  // before it costs a Redis write (not even a trace entry: a flood would
  // write one per request and push the binding's real history out) or a push.
  if (policy_.strict_source && owner->pbx_ip != request.source_ip) {
    if (request.method == Method::Invite && metrics_) {
      metrics_->invite(CallMetrics::InviteResult::ForeignSource);
    }
    if (request.method == Method::Message && metrics_) metrics_->message(false);
    transaction->respond(403, "Forbidden");
    return;
  }
  if (trace_) traceRequest(owner->key, request, request.method_name);
  switch (request.method) {
    case Method::Invite:
      onInvite(std::move(request), *owner, std::move(transaction));
      return;
    case Method::Message:
      onMessage(request, *owner, *transaction);
      return;
    case Method::Bye:
      answer(*transaction, owner->key, request.call_id, 481, "Call/Transaction Does Not Exist");
      return;
    default:
      answer(*transaction, owner->key, request.call_id, 405, "Method Not Allowed",
             {{"Allow", "INVITE, ACK, CANCEL, OPTIONS, MESSAGE"}});
      return;
  }
}

void CallManager::traceRequest(const std::string& binding_key, const IncomingRequest& request,
                               const std::string& method) {
  SipTraceEntry e;
  e.at = clock_.now();
  e.method = method;
  e.uri = "sip:" + request.contact_user.substr(0, 8) + "…";  // our Contact token: not in full
  e.call_id = request.call_id;
  e.headers = {{"From", request.from_uri}, {"To", request.to_uri}, {"X-Received-From", request.source_ip}};
  trace_->trace(binding_key, std::move(e));
}

void CallManager::answer(ServerTransaction& transaction, const std::string& binding_key,
                         const std::string& call_id, int status, std::string_view reason,
                         const SipHeaders& headers) {
  transaction.respond(status, reason, headers);
  if (!trace_) return;
  SipTraceEntry e;
  e.at = clock_.now();
  e.sent = true;
  e.status = status;
  e.reason = std::string(reason);
  e.call_id = call_id;
  e.headers = headers;
  trace_->trace(binding_key, std::move(e));
}

void CallManager::onInvite(IncomingRequest request, const ContactDirectory::Owner& owner,
                           std::unique_ptr<ServerTransaction> transaction) {
  std::string key = callKey(owner.key, request.call_id);
  if (calls_.count(key)) {
    // A second INVITE transaction for a call we already ring (retransmissions
    // never get here: the transaction layer absorbs them).
    if (metrics_) metrics_->invite(CallMetrics::InviteResult::Duplicate);
    answer(*transaction, owner.key, request.call_id, 482, "Loop Detected");
    return;
  }
  const Millis now = clock_.now();
  if (!takePush(owner.key, CallMetrics::PushType::Call, now)) {
    // Over the binding's cap: a final answer at once rather than a 180 with
    // no push behind it (the caller would hear ringing for T1 into nothing).
    // 480, not 486: the user is not busy, and the PBX may fall back to
    // voicemail or another route.
    if (metrics_) {
      metrics_->pushCapped(CallMetrics::PushType::Call);
      metrics_->invite(CallMetrics::InviteResult::PushCapped);
    }
    transaction->respond(480, "Temporarily Unavailable", {{kPushReason, "Push-Rate-Limited"}});
    log::warn("incoming call refused: push cap reached",
              {{"binding", owner.key}, {"call_id", request.call_id}});
    return;
  }
  auto call = std::make_unique<Call>();
  call->binding_key = owner.key;
  call->call_id = request.call_id;
  call->transaction = std::move(transaction);
  call->push = PushRequest{"call",          owner.key,        request.call_id, request.from_uri,
                           request.from_name, request.to_uri, "",              false,
                           now,             now + policy_.device_ack_timeout, ""};
  if (relay_uri_) call->push.relay = relay_uri_(request.contact_user);
  answer(*call->transaction, owner.key, request.call_id, 100, "Trying");
  answer(*call->transaction, owner.key, request.call_id, 180, "Ringing",
         {{kPushStatus, "Alerting-Device"}});
  call->transaction->onCancel([this, key](bool answered_elsewhere) {
    onCancel(key, answered_elsewhere);
  });
  pushes_.enqueue(call->push);
  if (relay_) {  // the SDP is kept only when an app may take the call
    call->offer = RelayOffer{request.call_id,      request.from_uri, request.from_name,
                             request.to_uri,       request.content_type, request.body};
  }
  Call& ref = *call;
  calls_.emplace(key, std::move(call));
  arm(ref, now + policy_.device_ack_timeout);
  if (relay_) relay_->offer(key, ref.binding_key, *ref.transaction, ref.offer);
  log::info("incoming call: ringing, devices pushed",
            {{"binding", owner.key}, {"call_id", request.call_id}});
}

void CallManager::onMessage(const IncomingRequest& request, const ContactDirectory::Owner& owner,
                            ServerTransaction& transaction) {
  const Millis now = clock_.now();
  if (!takePush(owner.key, CallMetrics::PushType::Message, now)) {
    // A 202 would claim the message went on; it did not.
    if (metrics_) metrics_->pushCapped(CallMetrics::PushType::Message);
    transaction.respond(480, "Temporarily Unavailable", {{kPushReason, "Push-Rate-Limited"}});
    return;
  }
  PushRequest push{"message",        owner.key, request.call_id,
                   request.from_uri, request.from_name, request.to_uri,
                   trimUtf8(request.body, policy_.message_body_limit),
                   false,            now,       now + kHour, ""};
  pushes_.enqueue(std::move(push));
  if (metrics_) metrics_->message(true);
  answer(transaction, owner.key, request.call_id, 202, "Accepted");
}

void CallManager::onCancel(const std::string& call_key, bool answered_elsewhere) {
  auto it = calls_.find(call_key);
  if (it == calls_.end()) return;
  if (trace_) {
    SipTraceEntry e;
    e.at = clock_.now();
    e.method = "CANCEL";
    e.call_id = it->second->call_id;
    if (answered_elsewhere) e.headers = {{"Reason", "SIP;cause=200"}};
    trace_->trace(it->second->binding_key, std::move(e));
  }
  PushRequest cancelled = it->second->push;
  cancelled.type = "call_cancelled";
  cancelled.answered_elsewhere = answered_elsewhere;
  cancelled.received_at = clock_.now();
  cancelled.expires_at = cancelled.received_at + kHour;
  end(call_key, 487, "Request Terminated", nullptr, CallMetrics::InviteResult::Cancelled);
  // After the call is marked ended, so a retried call push is dropped first.
  pushes_.enqueue(std::move(cancelled));
}

void CallManager::onPushDelivered(const std::string& binding_key, const std::string& call_id) {
  auto it = calls_.find(callKey(binding_key, call_id));
  if (it == calls_.end() || it->second->push_reported || it->second->acked) return;
  it->second->push_reported = true;
  answer(*it->second->transaction, binding_key, call_id, 180, "Ringing",
         {{kPushStatus, "Push-Notification-Sent"}});
}

CallManager::AckResult CallManager::onDeviceAck(const std::string& binding_key,
                                                const std::string& device_id,
                                                const std::string& call_id,
                                                const std::string& contact) {
  auto it = calls_.find(callKey(binding_key, call_id));
  if (it == calls_.end()) return AckResult::UnknownCall;
  Call& call = *it->second;
  if (policy_.redirect && !contact.empty()) {
    log::info("call redirected to the device",
              {{"binding", binding_key}, {"call_id", call_id}, {"device", device_id}});
    std::string key = it->first;  // end() erases the entry it->first lives in
    end(key, 302, "Moved Temporarily", nullptr, CallMetrics::InviteResult::Redirected,
        {{"Contact", "<" + contact + ">"}});
    return AckResult::Accepted;
  }
  if (!call.acked) {
    call.acked = true;
    answer(*call.transaction, binding_key, call_id, 180, "Ringing",
           {{kPushStatus, "Device-Making-Progress"}});
    arm(call, clock_.now() + policy_.device_connect_timeout);  // T1 stops, T2 starts
    log::info("device coming for the call",
              {{"binding", binding_key}, {"call_id", call_id}, {"device", device_id}});
  }
  return AckResult::Accepted;
}

void CallManager::arm(Call& call, Millis deadline) {
  call.deadline = deadline;
  deadlines_.emplace(deadline, callKey(call.binding_key, call.call_id));
  wakeup_.wakeAt(deadline);
}

bool CallManager::takePush(const std::string& binding_key, CallMetrics::PushType type,
                           Millis now) {
  prunePushWindows(now);  // first: it may erase entries
  PushWindow& w = push_windows_[binding_key];
  bool call = type == CallMetrics::PushType::Call;
  std::deque<Millis>& sent = call ? w.calls : w.messages;
  std::size_t cap = static_cast<std::size_t>(call ? policy_.push_calls_per_minute
                                                  : policy_.push_messages_per_minute);
  // A sliding window: at most `cap` in any minute, not 2x at a bucket's edge.
  while (!sent.empty() && sent.front() <= now - kMinute) sent.pop_front();
  if (sent.size() >= cap) return false;
  sent.push_back(now);
  return true;
}

void CallManager::prunePushWindows(Millis now) {
  if (now < next_window_prune_) return;
  next_window_prune_ = now + kMinute;
  for (auto it = push_windows_.begin(); it != push_windows_.end();) {
    bool idle = (it->second.calls.empty() || it->second.calls.back() <= now - kMinute) &&
                (it->second.messages.empty() || it->second.messages.back() <= now - kMinute);
    it = idle ? push_windows_.erase(it) : std::next(it);
  }
}

void CallManager::runDue() {
  const Millis now = clock_.now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto [at, key] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    auto it = calls_.find(key);
    if (it == calls_.end() || it->second->deadline != at) continue;  // re-armed or ended
    if (it->second->acked) {
      end(key, 480, "Temporarily Unavailable", "Device-Did-Not-Connect",
          CallMetrics::InviteResult::DeviceDidNotConnect);
    } else {
      end(key, 480, "Temporarily Unavailable", "No-Response-From-Device",
          CallMetrics::InviteResult::NoDeviceAck);
    }
  }
  if (!deadlines_.empty()) wakeup_.wakeAt(deadlines_.begin()->first);
}

void CallManager::end(const std::string& call_key, int status, const char* reason,
                      const char* push_reason, CallMetrics::InviteResult result,
                      SipHeaders extra) {
  auto it = calls_.find(call_key);
  if (it == calls_.end()) return;
  std::unique_ptr<Call> call = std::move(it->second);
  calls_.erase(it);
  if (relay_) relay_->stop(call_key);
  SipHeaders headers = std::move(extra);
  if (push_reason) headers.emplace_back(kPushReason, push_reason);
  answer(*call->transaction, call->binding_key, call->call_id, status, reason, headers);
  pushes_.callEnded(call->binding_key, call->call_id);
  if (metrics_) metrics_->invite(result);
  log::info("incoming call ended", {{"binding", call->binding_key},
                                    {"call_id", call->call_id},
                                    {"status", std::to_string(status)},
                                    {"reason", push_reason ? push_reason : reason}});
}

void CallManager::endAll() {
  std::vector<std::string> keys;
  for (const auto& [key, _] : calls_) keys.push_back(key);
  for (const auto& key : keys) {
    end(key, 480, "Temporarily Unavailable", "Service-Shutting-Down",
        CallMetrics::InviteResult::ShutDown);
  }
}

void CallManager::onDeviceSignedIn(const std::string& binding_key) {
  if (!relay_) return;
  std::vector<std::string> keys;
  for (const auto& [key, call] : calls_) {
    if (call->binding_key == binding_key) keys.push_back(key);
  }
  for (const auto& key : keys) {
    auto it = calls_.find(key);
    if (it != calls_.end()) relay_->offer(key, binding_key, *it->second->transaction, it->second->offer);
  }
}

CallRelay::Events CallManager::relayEvents() {
  CallRelay::Events events;
  events.answered = [this](const std::string& call_key) {
    auto it = calls_.find(call_key);
    if (it == calls_.end()) return;
    std::unique_ptr<Call> call = std::move(it->second);
    calls_.erase(it);  // the relay answered the PBX; the dialog is its own now
    pushes_.callEnded(call->binding_key, call->call_id);
    if (metrics_) {
      metrics_->invite(CallMetrics::InviteResult::Answered);
      metrics_->answered(static_cast<double>(clock_.now() - call->push.received_at) / 1000.0);
    }
    log::info("incoming call answered by a device", {{"binding", call->binding_key},
                                                     {"call_id", call->call_id}});
  };
  events.declined = [this](const std::string& call_key, int status, const std::string& reason) {
    std::string phrase = reason.empty() ? "Declined" : reason;
    end(call_key, status, phrase.c_str(), nullptr, CallMetrics::InviteResult::Declined);
  };
  return events;
}

}  // namespace sipwake::registrar
