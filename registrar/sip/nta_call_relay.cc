#include "registrar/sip/nta_call_relay.h"

#include <map>
#include <set>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "common/crypto/random.h"
#include "common/event/clock.h"
#include "common/log/logger.h"
#include "registrar/sip/device_listener.h"
#include "registrar/sip/nta_server_transaction.h"
#include "registrar/sip/sip_agent.h"
#include "registrar/sip/sip_thread.h"
#include "registrar/sip/sofia_includes.h"

namespace sipwake::registrar {

namespace {

struct Ringing;
struct Dialog;

// One app's leg of a ringing call: our INVITE to it.
struct AppLeg {
  Ringing* call = nullptr;
  std::string contact;
  std::shared_ptr<DeviceConnection> connection;  // keeps the transport referenced
  nta_leg_t* leg = nullptr;
  nta_outgoing_t* invite = nullptr;
  int final_status = 0;
};

// A ringing PBX call and its app legs.
struct Ringing {
  NtaCallRelayState* relay = nullptr;
  std::string call_key;
  std::string binding_key;  // tenant/id, for the logs
  nta_incoming_t* irq = nullptr;  // the PBX's INVITE; null once answered or stopped
  RelayOffer offer;
  std::vector<std::unique_ptr<AppLeg>> legs;
  bool done = false;  // answered, declined or stopped
};

// A request relayed from one side of an established call to the other.
struct Pending {
  Dialog* dialog = nullptr;
  nta_incoming_t* irq = nullptr;
  nta_outgoing_t* orq = nullptr;
  bool toward_app = false;
  bool invite = false;
};

// An answered call: the PBX's dialog (leg A) and the app's (leg B).
struct Dialog {
  NtaCallRelayState* relay = nullptr;
  nta_leg_t* pbx_leg = nullptr;
  nta_leg_t* app_leg = nullptr;
  std::shared_ptr<DeviceConnection> connection;
  std::string pbx_contact;  // our Contact toward the PBX (the binding's), <...>
  std::string app_contact;  // our Contact toward the app, <...>
  std::string binding_key;  // for the logs
  std::string call_id;      // the PBX's
  std::set<Pending*> pending;
  bool ended = false;
};

std::string quotedDisplay(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (c != '\r' && c != '\n') out += c;
  }
  return out + "\"";
}

int statusOf(nta_outgoing_t* orq, sip_t const* sip) {
  return sip && sip->sip_status ? sip->sip_status->st_status : nta_outgoing_status(orq);
}

std::string phraseOf(sip_t const* sip, int status) {
  if (sip && sip->sip_status && sip->sip_status->st_phrase) return sip->sip_status->st_phrase;
  return sip_status_phrase(status) ? sip_status_phrase(status) : "";
}

tport_t* transportOf(const std::shared_ptr<DeviceConnection>& connection) {
  return connection ? static_cast<tport_t*>(DeviceListener::transportOf(*connection)) : nullptr;
}

}  // namespace

struct NtaCallRelayState {
  SipThread& thread;
  nta_agent_t* pbx_agent;
  nta_agent_t* app_agent;
  DeviceListener& app_side;
  DeviceRegistry& registry;
  CallRelay::Events events;
  std::map<std::string, std::unique_ptr<Ringing>> ringing;
  std::map<Dialog*, std::unique_ptr<Dialog>> dialogs;
  // sofia objects are not destroyed from inside their own callbacks: what
  // ended waits here until the next turn of the loop.
  std::vector<std::unique_ptr<Ringing>> ended_calls;
  std::vector<std::unique_ptr<Dialog>> ended_dialogs;
  SipThread::Timer reaper;
  prometheus::Family<prometheus::Counter>* legs_family = nullptr;
  std::map<std::string, prometheus::Counter*> legs_by_result;
  prometheus::Gauge* relayed_calls = nullptr;

  void countLeg(const std::string& result) {
    if (!legs_family) return;
    auto it = legs_by_result.find(result);
    if (it == legs_by_result.end()) it = legs_by_result.emplace(result, &legs_family->Add({{"result", result}})).first;
    it->second->Increment();
  }
  void updateGauge() {
    if (relayed_calls) relayed_calls->Set(static_cast<double>(dialogs.size()));
  }

  NtaCallRelayState(SipThread& t, nta_agent_t* pbx, nta_agent_t* app, DeviceListener& devices,
                    DeviceRegistry& r, CallRelay::Events e)
      : thread(t),
        pbx_agent(pbx),
        app_agent(app),
        app_side(devices),
        registry(r),
        events(std::move(e)),
        reaper(t, [this] { reap(); }) {}

  ~NtaCallRelayState() {
    for (auto& [key, call] : ringing) retire(std::move(call));
    ringing.clear();
    std::vector<Dialog*> live;
    for (auto& [ptr, dialog] : dialogs) live.push_back(ptr);
    for (Dialog* d : live) endDialog(*d, false);  // moves each out of `dialogs`
    reap();
  }

  // --------------------------------------------------------- ringing calls
  void startLeg(Ringing& call, const DeviceRegistration& device);
  static int onAppInviteResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, sip_t const* sip);
  void answer(Ringing& call, AppLeg& leg, sip_t const* sip);
  void ackAndBye(AppLeg& leg, sip_t const* sip);
  void finishIfSettled(Ringing& call);
  void retire(std::unique_ptr<Ringing> call);

  // ----------------------------------------------------------- dialogs
  static int onPbxLegRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip);
  static int onAppLegRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, sip_t const* sip);
  int relayRequest(Dialog& dialog, nta_incoming_t* irq, sip_t const* sip, bool toward_app);
  static int onRelayedResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, sip_t const* sip);
  void sendBye(nta_leg_t* leg, tport_t* tport);
  void endDialog(Dialog& dialog, bool from_callback);

  void reap() {
    // Dialogs first: their legs may still be referenced by a ringing call's leg list.
    for (auto& d : ended_dialogs) {
      if (d->pbx_leg) nta_leg_destroy(d->pbx_leg);
      if (d->app_leg) nta_leg_destroy(d->app_leg);
    }
    ended_dialogs.clear();
    for (auto& call : ended_calls) {
      for (auto& leg : call->legs) {
        if (leg->invite) nta_outgoing_destroy(leg->invite);
        if (leg->leg) nta_leg_destroy(leg->leg);
      }
    }
    ended_calls.clear();
  }
  void reapSoon() { reaper.wakeAt(SystemClock::instance().now()); }
};

void NtaCallRelayState::startLeg(Ringing& call, const DeviceRegistration& device) {
  tport_t* tport = transportOf(device.connection);
  if (!tport) return;
  auto leg = std::make_unique<AppLeg>();
  leg->call = &call;
  leg->contact = device.contact;
  leg->connection = device.connection;
  std::string from = (call.offer.from_name.empty() ? "" : quotedDisplay(call.offer.from_name) + " ") +
                     "<" + (call.offer.from_uri.empty() ? "sip:anonymous@anonymous.invalid" : call.offer.from_uri) +
                     ">";
  std::string to = "<" + device.contact + ">";
  std::string call_id = crypto::uniqueToken(96) + "@sipwake";
  leg->leg = nta_leg_tcreate(app_agent, nullptr, nullptr, SIPTAG_FROM_STR(from.c_str()),
                             SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(call_id.c_str()), TAG_END());
  if (!leg->leg) {
    log::warn("relay: cannot create the app's leg", {{"binding", call.binding_key}, {"call_id", call.offer.call_id}});
    return;
  }
  nta_leg_tag(leg->leg, nullptr);
  std::string extra = "X-Sipwake-Call-ID: " + call.offer.call_id + "\r\n";
  std::string app_contact = "<" + app_side.contactUriFor(*device.connection) + ">";
  bool has_body = !call.offer.body.empty();
  std::string content_type = call.offer.content_type.empty() ? "application/sdp" : call.offer.content_type;
  leg->invite = nta_outgoing_tcreate(
      leg->leg, &NtaCallRelayState::onAppInviteResponse, reinterpret_cast<nta_outgoing_magic_t*>(leg.get()),
      nullptr, SIP_METHOD_INVITE, URL_STRING_MAKE(device.contact.c_str()),
      SIPTAG_CONTACT_STR(app_contact.c_str()), SIPTAG_HEADER_STR(extra.c_str()),
      TAG_IF(has_body, SIPTAG_CONTENT_TYPE_STR(content_type.c_str())),
      TAG_IF(has_body, SIPTAG_PAYLOAD_STR(call.offer.body.c_str())), NTATAG_TPORT(tport), TAG_END());
  if (!leg->invite) {
    log::warn("relay: cannot send the INVITE to the app", {{"binding", call.binding_key}, {"call_id", call.offer.call_id}});
    nta_leg_destroy(leg->leg);
    return;
  }
  countLeg("offered");
  log::info("relay: call offered to an app", {{"binding", call.binding_key}, {"call_id", call.offer.call_id},
                                               {"peer", device.connection->peer()}});
  call.legs.push_back(std::move(leg));
}

int NtaCallRelayState::onAppInviteResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                                           sip_t const* sip) {
  auto* leg = reinterpret_cast<AppLeg*>(magic);
  Ringing& call = *leg->call;
  NtaCallRelayState& self = *call.relay;
  int status = statusOf(orq, sip);
  if (status < 200) {
    // Ringing and early media reach the caller, SDP unchanged.
    if (status > 100 && !call.done && call.irq) {
      bool body = sip && sip->sip_payload;
      std::string phrase = phraseOf(sip, status);
      nta_incoming_treply(call.irq, status, phrase.c_str(),
                          TAG_IF(body, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                          TAG_IF(body, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
    }
    return 0;
  }
  leg->final_status = status;
  self.countLeg(status < 300 ? "answered" : status == 487 ? "cancelled" : "failed");
  if (status < 300) {
    if (call.done || !call.irq) {
      self.ackAndBye(*leg, sip);  // another app answered first, or the caller gave up
    } else {
      self.answer(call, *leg, sip);
    }
  } else if (!call.done) {
    bool all_failed = true;
    for (const auto& l : call.legs) all_failed = all_failed && l->final_status >= 300;
    if (all_failed) {
      call.done = true;
      call.irq = nullptr;  // CallManager answers the PBX with this status
      std::string key = call.call_key, phrase = phraseOf(sip, status);
      int relayed = status == 408 || status == 503 ? 480 : status;  // not our transport trouble
      self.events.declined(key, relayed, relayed == status ? phrase : "Temporarily Unavailable");
      return 0;  // `call` may be gone (stop() retired it)
    }
  }
  self.finishIfSettled(call);
  return 0;
}

void NtaCallRelayState::answer(Ringing& call, AppLeg& leg, sip_t const* sip) {
  tport_t* tport = transportOf(leg.connection);
  // The app's dialog: its tag, route and target; ACK its 200 at once.
  if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(leg.leg, sip->sip_to->a_tag);
  nta_leg_client_route(leg.leg, sip->sip_record_route, sip->sip_contact);
  if (nta_outgoing_t* ack = nta_outgoing_tcreate(leg.leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK,
                                                 nullptr, TAG_IF(tport, NTATAG_TPORT(tport)), TAG_END())) {
    nta_outgoing_destroy(ack);
  }

  // The PBX's dialog, from its INVITE: our To-tag, its route and Contact.
  auto dialog = std::make_unique<Dialog>();
  dialog->binding_key = call.binding_key;
  dialog->call_id = call.offer.call_id;
  dialog->relay = this;
  dialog->connection = leg.connection;
  dialog->app_contact = "<" + app_side.contactUriFor(*leg.connection) + ">";
  msg_t* request = nta_incoming_getrequest(call.irq);
  sip_t const* invite = request ? sip_object(request) : nullptr;
  if (invite) {
    dialog->pbx_contact = "<" + sofiaUrl(invite->sip_request->rq_url) + ">";
    dialog->pbx_leg = nta_leg_tcreate(pbx_agent, &NtaCallRelayState::onPbxLegRequest,
                                      reinterpret_cast<nta_leg_magic_t*>(dialog.get()),
                                      SIPTAG_CALL_ID(invite->sip_call_id), SIPTAG_FROM(invite->sip_to),
                                      SIPTAG_TO(invite->sip_from), TAG_END());
  }
  if (dialog->pbx_leg) {
    nta_leg_tag(dialog->pbx_leg, nta_incoming_gettag(call.irq));
    nta_leg_server_route(dialog->pbx_leg, invite->sip_record_route, invite->sip_contact);
  }
  bool body = sip->sip_payload != nullptr;
  nta_incoming_treply(call.irq, SIP_200_OK, SIPTAG_CONTACT_STR(dialog->pbx_contact.c_str()),
                      TAG_IF(body, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                      TAG_IF(body, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
  if (request) msg_destroy(request);

  // The app's leg now belongs to the dialog; the other apps are cancelled.
  dialog->app_leg = leg.leg;
  leg.leg = nullptr;
  nta_leg_bind(dialog->app_leg, &NtaCallRelayState::onAppLegRequest,
               reinterpret_cast<nta_leg_magic_t*>(dialog.get()));
  for (auto& other : call.legs) {
    if (other.get() != &leg && other->invite && other->final_status == 0) {
      nta_outgoing_tcancel(other->invite, nullptr, nullptr, SIPTAG_REASON_STR("SIP;cause=200;text=\"Call completed elsewhere\""),
                           TAG_END());
    }
  }
  call.done = true;
  call.irq = nullptr;
  if (!dialog->pbx_leg) {
    log::error("relay: cannot build the PBX's dialog; hanging up", {{"binding", call.binding_key}, {"call_id", call.offer.call_id}});
    endDialog(*dialog, false);
    ended_dialogs.push_back(std::move(dialog));
  } else {
    log::info("relay: call answered by an app", {{"binding", call.binding_key}, {"call_id", call.offer.call_id}});
    Dialog* raw = dialog.get();
    dialogs.emplace(raw, std::move(dialog));
    updateGauge();
  }
  std::string key = call.call_key;
  events.answered(key);
}

void NtaCallRelayState::ackAndBye(AppLeg& leg, sip_t const* sip) {
  tport_t* tport = transportOf(leg.connection);
  if (!leg.leg) return;
  if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(leg.leg, sip->sip_to->a_tag);
  nta_leg_client_route(leg.leg, sip->sip_record_route, sip->sip_contact);
  if (nta_outgoing_t* ack = nta_outgoing_tcreate(leg.leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK,
                                                 nullptr, TAG_IF(tport, NTATAG_TPORT(tport)), TAG_END())) {
    nta_outgoing_destroy(ack);
  }
  sendBye(leg.leg, tport);
}

void NtaCallRelayState::finishIfSettled(Ringing& call) {
  if (!call.done) return;
  for (const auto& l : call.legs) {
    if (l->final_status == 0 && l->invite) return;  // a CANCELled leg still owes its 487
  }
  auto it = ringing.find(call.call_key);
  if (it != ringing.end() && it->second.get() == &call) {
    retire(std::move(it->second));
    ringing.erase(it);
  }
}

void NtaCallRelayState::retire(std::unique_ptr<Ringing> call) {
  for (auto& leg : call->legs) {
    if (leg->invite && leg->final_status == 0) nta_outgoing_cancel(leg->invite);
  }
  call->done = true;
  call->irq = nullptr;
  ended_calls.push_back(std::move(call));
  reapSoon();
}

// -------------------------------------------------------------- dialogs

int NtaCallRelayState::onPbxLegRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                                       sip_t const* sip) {
  auto* dialog = reinterpret_cast<Dialog*>(magic);
  return dialog->relay->relayRequest(*dialog, irq, sip, true);
}

int NtaCallRelayState::onAppLegRequest(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                                       sip_t const* sip) {
  auto* dialog = reinterpret_cast<Dialog*>(magic);
  return dialog->relay->relayRequest(*dialog, irq, sip, false);
}

int NtaCallRelayState::relayRequest(Dialog& dialog, nta_incoming_t* irq, sip_t const* sip, bool toward_app) {
  if (!sip || !sip->sip_request) return 400;
  sip_method_t method = sip->sip_request->rq_method;
  if (method == sip_method_ack) return 0;  // each side's ACK is our own business
  if (dialog.ended) return 481;
  nta_leg_t* other = toward_app ? dialog.app_leg : dialog.pbx_leg;
  tport_t* tport = toward_app ? transportOf(dialog.connection) : nullptr;
  if (method == sip_method_bye) {
    sendBye(other, tport);
    endDialog(dialog, true);
    return 200;
  }
  // re-INVITE, UPDATE, INFO and the rest: across, answered when the other side answers.
  auto pending = std::make_unique<Pending>();
  pending->dialog = &dialog;
  pending->irq = irq;
  pending->toward_app = toward_app;
  pending->invite = method == sip_method_invite;
  std::string contact = toward_app ? dialog.app_contact : dialog.pbx_contact;
  pending->orq = nta_outgoing_tcreate(
      other, &NtaCallRelayState::onRelayedResponse, reinterpret_cast<nta_outgoing_magic_t*>(pending.get()),
      nullptr, method, sip->sip_request->rq_method_name, nullptr,
      TAG_IF(pending->invite, SIPTAG_CONTACT_STR(contact.c_str())),
      TAG_IF(sip->sip_content_type, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
      TAG_IF(sip->sip_payload, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_IF(tport, NTATAG_TPORT(tport)),
      TAG_END());
  if (!pending->orq) return 500;
  dialog.pending.insert(pending.release());
  return 0;  // answered from onRelayedResponse
}

int NtaCallRelayState::onRelayedResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, sip_t const* sip) {
  auto* pending = reinterpret_cast<Pending*>(magic);
  Dialog& dialog = *pending->dialog;
  int status = statusOf(orq, sip);
  std::string phrase = phraseOf(sip, status);
  bool body = sip && sip->sip_payload;
  std::string contact = pending->toward_app ? dialog.pbx_contact : dialog.app_contact;
  if (status < 200) {
    if (status > 100) {
      nta_incoming_treply(pending->irq, status, phrase.c_str(),
                          TAG_IF(body, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                          TAG_IF(body, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
    }
    return 0;
  }
  nta_incoming_treply(pending->irq, status, phrase.c_str(),
                      TAG_IF(pending->invite && status < 300, SIPTAG_CONTACT_STR(contact.c_str())),
                      TAG_IF(body, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                      TAG_IF(body, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
  if (pending->invite && status < 300) {
    nta_leg_t* other = pending->toward_app ? dialog.app_leg : dialog.pbx_leg;
    tport_t* tport = pending->toward_app ? transportOf(dialog.connection) : nullptr;
    if (nta_outgoing_t* ack = nta_outgoing_tcreate(other, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
                                                   TAG_IF(tport, NTATAG_TPORT(tport)), TAG_END())) {
      nta_outgoing_destroy(ack);
    }
  }
  nta_incoming_destroy(pending->irq);
  nta_outgoing_destroy(orq);
  dialog.pending.erase(pending);
  delete pending;
  return 0;
}

void NtaCallRelayState::sendBye(nta_leg_t* leg, tport_t* tport) {
  if (!leg) return;
  // The answer does not matter: the other side is gone either way.
  nta_outgoing_t* bye = nta_outgoing_tcreate(
      leg, [](nta_outgoing_magic_t*, nta_outgoing_t* orq, sip_t const* sip) -> int {
        if (statusOf(orq, sip) >= 200) nta_outgoing_destroy(orq);
        return 0;
      },
      nullptr, nullptr, SIP_METHOD_BYE, nullptr, TAG_IF(tport, NTATAG_TPORT(tport)), TAG_END());
  if (!bye) log::warn("relay: cannot send BYE");
}

void NtaCallRelayState::endDialog(Dialog& dialog, bool from_callback) {
  if (dialog.ended) return;
  dialog.ended = true;
  for (Pending* p : dialog.pending) {
    nta_incoming_treply(p->irq, 481, "Call/Transaction Does Not Exist", TAG_END());
    nta_incoming_destroy(p->irq);
    nta_outgoing_destroy(p->orq);
    delete p;
  }
  dialog.pending.clear();
  auto it = dialogs.find(&dialog);
  if (it != dialogs.end()) {
    ended_dialogs.push_back(std::move(it->second));
    dialogs.erase(it);
    updateGauge();
  }
  log::info("relay: call ended", {{"binding", dialog.binding_key}, {"call_id", dialog.call_id}});
  if (from_callback) reapSoon();
}

// ------------------------------------------------------------------ public

NtaCallRelay::NtaCallRelay(SipThread& thread, SipAgent& pbx_side, DeviceListener& app_side,
                           DeviceRegistry& registry, CallRelay::Events events,
                           prometheus::Registry* metrics)
    : state_(std::make_unique<NtaCallRelayState>(thread, static_cast<nta_agent_t*>(pbx_side.raw()),
                                                 static_cast<nta_agent_t*>(app_side.raw()),
                                                 app_side, registry, std::move(events))) {
  if (!metrics) return;
  state_->legs_family = &prometheus::BuildCounter()
                             .Name("registrar_relay_legs_total")
                             .Help("INVITEs to woken apps: offered, and how each ended")
                             .Register(*metrics);
  for (const char* r : {"offered", "answered", "cancelled", "failed"}) {
    state_->legs_by_result[r] = &state_->legs_family->Add({{"result", r}});  // zeros, not gaps
  }
  state_->relayed_calls = &prometheus::BuildGauge()
                               .Name("registrar_relayed_calls")
                               .Help("Answered calls whose signalling the relay carries now")
                               .Register(*metrics)
                               .Add({});
}

NtaCallRelay::~NtaCallRelay() = default;

void NtaCallRelay::offer(const std::string& call_key, const std::string& binding_key,
                         ServerTransaction& pbx_side, const RelayOffer& offer) {
  auto* transaction = dynamic_cast<NtaServerTransaction*>(&pbx_side);
  if (!transaction) return;
  auto devices = state_->registry.live(binding_key);
  if (devices.empty()) return;
  auto& slot = state_->ringing[call_key];
  if (!slot) {
    slot = std::make_unique<Ringing>();
    slot->relay = state_.get();
    slot->call_key = call_key;
    slot->binding_key = binding_key;
    slot->irq = transaction->irq();
    slot->offer = offer;
  }
  if (slot->done) return;
  for (const auto& device : devices) {
    bool offered = false;
    for (const auto& leg : slot->legs) offered = offered || leg->contact == device.contact;
    if (!offered) state_->startLeg(*slot, device);
  }
}

void NtaCallRelay::stop(const std::string& call_key) {
  auto it = state_->ringing.find(call_key);
  if (it == state_->ringing.end()) return;
  state_->retire(std::move(it->second));
  state_->ringing.erase(it);
}

std::size_t NtaCallRelay::dialogs() const { return state_->dialogs.size(); }

}  // namespace sipwake::registrar
