#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "common/event/clock.h"
#include "common/event/wakeup_scheduler.h"
#include "registrar/call/call_relay.h"
#include "registrar/call/incoming_request.h"
#include "registrar/call/push_request.h"
#include "registrar/registration/registration_state.h"
#include "registrar/trace/binding_trace.h"

namespace sipwake::registrar {

struct CallPolicy {
  Millis device_ack_timeout = 60 * kSecond;      // T1: no device said it is coming
  Millis device_connect_timeout = 60 * kSecond;  // T2: a device acked but did not connect
  bool strict_source = true;                     // INVITE/MESSAGE only from the binding's PBX
  std::size_t message_body_limit = 1024;         // bytes of a MESSAGE body carried in the push
  // call.mode=redirect: an ack naming a contact answers the PBX "302 Moved
  // Temporarily" toward it, for PBXs that follow redirects.
  bool redirect = false;
  // Pushes per binding per minute (sliding window), so a PBX (or whoever
  // spoofs it) cannot drown a phone in pushes.
  int push_calls_per_minute = 30;
  int push_messages_per_minute = 60;
};

// Who owns a Contact: the registration engine answers.
class ContactDirectory {
 public:
  struct Owner {
    std::string key;
    RegistrationState state;
    std::string pbx_ip;
  };
  virtual ~ContactDirectory() = default;
  virtual std::optional<Owner> findByContact(std::string_view contact_user) const = 0;
};

// registrar_invites_total{result} and registrar_messages_total{result}.
class CallMetrics {
 public:
  enum class InviteResult { NotFound, ForeignSource, Duplicate, Cancelled, NoDeviceAck,
                            DeviceDidNotConnect, ShutDown, Redirected, Answered, Declined,
                            PushCapped };
  enum class PushType { Call, Message };
  explicit CallMetrics(prometheus::Registry& registry);
  void invite(InviteResult result);
  void message(bool accepted);
  // registrar_pushes_capped_total{type}: a push not sent, its binding's cap
  // reached (a MESSAGE also counts in messages_total{result="push_capped"}).
  void pushCapped(PushType type);
  void answered(double seconds_since_invite) { answer_latency_->Observe(seconds_since_invite); }
  // Ringing calls lost with a previous run of this instance (thread-safe).
  void lost(int calls) { lost_->Increment(calls); }

 private:
  prometheus::Family<prometheus::Counter>* invites_;
  std::map<InviteResult, prometheus::Counter*> invite_counters_;
  prometheus::Counter* messages_accepted_;
  prometheus::Counter* messages_refused_;
  prometheus::Counter* messages_capped_;
  prometheus::Counter* capped_calls_;
  prometheus::Counter* capped_messages_;
  prometheus::Histogram* answer_latency_;
  prometheus::Counter* lost_;
};

// Incoming requests on our Contacts: an INVITE rings the caller at once and
// pushes every device; the call then waits for a device (T1), for it to
// connect (T2), or for the caller to give up. One state machine per call.
// Runs on the SIP thread.
class CallManager {
 public:
  enum class AckResult { Accepted, UnknownCall };

  CallManager(CallPolicy policy, Clock& clock, const ContactDirectory& directory, PushSink& pushes,
              CallMetrics* metrics, WakeupScheduler& wakeup);
  ~CallManager();

  void onRequest(IncomingRequest request, std::unique_ptr<ServerTransaction> transaction);
  // With a device listener: the relay URI a call push carries, from the
  // binding's Contact token.
  void setRelayUri(std::function<std::string(const std::string& contact_user)> relay_uri) {
    relay_uri_ = std::move(relay_uri);
  }
  // With a relay (relay mode and a device listener): ringing calls are
  // offered to the apps signed in for their binding.
  void setRelay(CallRelay* relay) { relay_ = relay; }
  // Requests to a binding's Contact and our answers go there (nullptr: none).
  void setTrace(TraceSink* trace) { trace_ = trace; }
  CallRelay::Events relayEvents();
  // An app signed in for this binding: its ringing calls are offered to it.
  void onDeviceSignedIn(const std::string& binding_key);
  // pushgw reports a provider accepted a push of this call.
  void onPushDelivered(const std::string& binding_key, const std::string& call_id);
  // The app says it is awake and coming (the fast channel). `contact` (may
  // be empty) is where it can take the call, used in redirect mode.
  AckResult onDeviceAck(const std::string& binding_key, const std::string& device_id,
                        const std::string& call_id, const std::string& contact = "");
  void runDue();
  // Fails every ringing call (shutdown), so no caller waits for a timeout.
  void endAll();

  std::size_t ringing() const { return calls_.size(); }

 private:
  struct Call;
  void onInvite(IncomingRequest request, const ContactDirectory::Owner& owner,
                std::unique_ptr<ServerTransaction> transaction);
  void onMessage(const IncomingRequest& request, const ContactDirectory::Owner& owner,
                 ServerTransaction& transaction);
  void onCancel(const std::string& call_key, bool answered_elsewhere);
  // Answers the INVITE with its final response (plus X-Push-Reason when
  // push_reason is set, and `extra` headers) and forgets the call.
  void end(const std::string& call_key, int status, const char* reason,
           const char* push_reason, CallMetrics::InviteResult result, SipHeaders extra = {});
  void arm(Call& call, Millis deadline);
  void traceRequest(const std::string& binding_key, const IncomingRequest& request,
                    const std::string& method);
  // Answers through `transaction` and traces the answer.
  void answer(ServerTransaction& transaction, const std::string& binding_key,
              const std::string& call_id, int status, std::string_view reason,
              const SipHeaders& headers = {});
  // Takes a place in the binding's push window for this type; false when
  // the cap is reached (nothing taken).
  bool takePush(const std::string& binding_key, CallMetrics::PushType type, Millis now);
  void prunePushWindows(Millis now);

  CallPolicy policy_;
  Clock& clock_;
  const ContactDirectory& directory_;
  PushSink& pushes_;
  CallMetrics* metrics_;
  std::function<std::string(const std::string&)> relay_uri_;
  CallRelay* relay_ = nullptr;
  TraceSink* trace_ = nullptr;
  WakeupScheduler& wakeup_;
  std::unordered_map<std::string, std::unique_ptr<Call>> calls_;  // "<binding key>\n<call id>"
  std::multimap<Millis, std::string> deadlines_;
  // Per binding, when its recent pushes went (the last minute's only).
  struct PushWindow {
    std::deque<Millis> calls;
    std::deque<Millis> messages;
  };
  std::unordered_map<std::string, PushWindow> push_windows_;
  Millis next_window_prune_ = 0;
};

}  // namespace sipwake::registrar
