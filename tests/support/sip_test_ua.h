// A SIP user agent for integration tests, on sofia-sip nta: it places calls
// (INVITE, CANCEL, ACK, BYE), sends MESSAGE / OPTIONS / REGISTER, answers
// requests sent to its Contact, and records every message it receives with
// a microsecond timestamp so tests can assert on what was on the wire.
//
// sofia runs on the UA's own thread (registrar::SipThread); every method
// below is thread-safe: it posts to that thread and waits, or reads what was
// recorded under a lock. Nothing here exposes sofia types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nta_leg_s;  // sofia-sip's nta_leg_t

namespace sipwake::testing {

// One SIP message as received.
struct SipMessageRecord {
  int status = 0;           // responses; 0 for requests
  std::string method;       // requests, and the CSeq method of responses
  std::string reason;       // responses: the reason phrase
  std::string request_uri;  // requests
  // Every header as received, in order; names lower-cased and in their long
  // form ("i:" is recorded as "call-id"). A comma-separated line stays one
  // entry.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double at = 0;  // seconds since the epoch, when our callback saw it
  // Made by our own stack (a timeout, a transport error), never on the wire.
  bool local = false;

  // The first value of that header (lower-case long name), or "".
  std::string header(std::string_view lower_name) const;
  // Every value of that header.
  std::vector<std::string> headerValues(std::string_view lower_name) const;
};

struct SipTestUaOptions {
  std::string bind_ip = "127.0.0.1";  // 127.0.0.2 works too on Linux
  uint16_t port = 0;                  // 0: freePort(); UDP and TCP are both bound
  std::string transport = "udp";      // "udp" or "tcp": Contact, and requests
                                      // to a proxy URI without ;transport=
  std::string contact_user = "test";
};

// How the UA answers INVITEs sent to it.
struct SipInviteAnswer {
  // The final answer. Below 200: no final answer (it rings until CANCELled);
  // 100..199 is sent as one more provisional response (so ring_first with
  // 180 sends two 180s).
  int status = 486;
  std::string sdp;          // body of a 2xx (application/sdp)
  bool ring_first = false;  // send "180 Ringing" at once
  std::string early_sdp;    // then, when set, "183 Session Progress" with it (early media)
  int final_delay_ms = 0;   // then wait this long before the final answer
};

class SipTestUa {
 public:
  // Throws std::runtime_error when the ports cannot be bound.
  explicit SipTestUa(SipTestUaOptions options = {});
  ~SipTestUa();
  SipTestUa(const SipTestUa&) = delete;
  SipTestUa& operator=(const SipTestUa&) = delete;

  uint16_t port() const;
  // sip:<contact_user>@<bind_ip>:<port>;transport=<transport>
  std::string contactUri() const;

  // ---------------------------------------------------------------- calls
  // Starts an INVITE toward `request_uri` (e.g. "sip:1000@127.0.0.1"), sent
  // to `proxy` (e.g. "sip:127.0.0.1:5060;transport=udp"), with From
  // `from_display <from_uri>`, an optional SDP body and extra headers.
  // Returns a handle; throws std::invalid_argument on unusable URIs.
  int invite(const std::string& request_uri, const std::string& proxy, const std::string& from_uri,
             const std::string& from_display = "", const std::string& sdp = "",
             std::vector<std::pair<std::string, std::string>> extra_headers = {});
  std::string callId(int call) const;
  // Every response to that INVITE (100, every 1xx, finals), in arrival order.
  std::vector<SipMessageRecord> responses(int call) const;
  // Waits until a recorded response of `call` satisfies pred (those already
  // recorded count); false on timeout. pred runs under the UA's lock: it must
  // not call the UA.
  bool waitForResponse(int call, std::function<bool(const SipMessageRecord&)> pred, int timeout_ms);
  // Waits for a 180 of `call` whose X-Push-Status is `status` (our registrar's ringing stages).
  bool waitForPushStatus(int call, const std::string& status, int timeout_ms = 5000);
  bool waitForFinal(int call, int timeout_ms);  // true when a final response arrived
  int finalStatus(int call) const;              // the first final status; 0 if none yet
  // CANCELs the INVITE (only while it has no final response; a no-op after
  // one). Before any provisional response nta holds the CANCEL until one
  // arrives (RFC 3261 9.1). `reason` becomes a Reason header, e.g.
  // "SIP;cause=200;text=\"Call completed elsewhere\"". Returns false when
  // sofia refused (no INVITE sent yet, already final or cancelled).
  bool cancel(int call, const std::string& reason = "");
  // Status of the CANCEL's own final response (200 or 481); 0 if none yet.
  int cancelStatus(int call) const;
  // After a 2xx: ACK it (through the Record-Route set, to the Contact).
  void ack(int call);
  // Ends an established call; returns the BYE's final status (0 on timeout).
  int bye(int call, int timeout_ms = 5000);
  // Another request within an established call (re-INVITE, UPDATE, INFO),
  // with an optional body; a 2xx to a re-INVITE is ACKed. Returns the final
  // status (0 on timeout); lastRequestResponses() has the answers.
  int inDialog(int call, const std::string& method, const std::string& body = "",
               const std::string& content_type = "application/sdp", int timeout_ms = 5000);
  // UAS side: a request within the dialog of the latest INVITE this UA
  // answered 2xx (re-INVITE, UPDATE, INFO, BYE); a 2xx to a re-INVITE is
  // ACKed. Returns the final status (0 on timeout).
  int inReceivedDialog(const std::string& method, const std::string& body = "",
                       const std::string& content_type = "application/sdp", int timeout_ms = 5000);
  // Hangs that call up: inReceivedDialog("BYE").
  int hangUpReceived(int timeout_ms = 5000) { return inReceivedDialog("BYE", "", "", timeout_ms); }

  // ---------------------------------------------------- other requests
  // One non-INVITE request each; the final status (0 on timeout).
  int message(const std::string& request_uri, const std::string& proxy, const std::string& from_uri,
              const std::string& body, const std::string& content_type = "text/plain",
              int timeout_ms = 5000);
  int options(const std::string& request_uri, const std::string& proxy, int timeout_ms = 5000);
  // REGISTERs contactUri() for sip:user@<proxy host> at `proxy`, answering a
  // digest challenge (401 or 407) once with user/password. Returns the
  // final status (0 on timeout). `aor_user`, when given, is the To/From user
  // instead of `user` (the device listener names the binding there).
  int registerTo(const std::string& proxy, const std::string& user, const std::string& password,
                 int expires = 3600, int timeout_ms = 5000, const std::string& aor_user = "");
  // The responses of the latest message()/options()/registerTo()/bye(),
  // including any challenge.
  std::vector<SipMessageRecord> lastRequestResponses() const;

  // Sends `bytes` in one UDP datagram from a fresh socket bound to bind_ip
  // (malformed-input tests). Returns what came back: the datagrams received
  // within timeout_ms, collection ending 100 ms after the last one; empty if
  // none.
  static std::string sendRawUdp(const std::string& bind_ip, const std::string& host, uint16_t port,
                                const std::string& bytes, int timeout_ms = 1000);

  // ------------------------------------------------------------- UAS side
  // Requests received (new ones, and ACK/CANCEL of INVITEs we answered), in
  // order. Answers: OPTIONS 200, INVITE as set below (default 486), BYE 200,
  // ACK none, others 405 unless setRequestAnswer() says otherwise.
  std::vector<SipMessageRecord> requestsReceived() const;
  // As waitForResponse(), over requestsReceived().
  bool waitForRequest(std::function<bool(const SipMessageRecord&)> pred, int timeout_ms);
  void setInviteAnswer(int status, const std::string& sdp = "");
  void setInviteAnswer(const SipInviteAnswer& answer);
  // The status answered to requests of `method` (not INVITE, ACK, CANCEL).
  void setRequestAnswer(const std::string& method, int status);

 private:
  struct Impl;
  // Sends `method` within the dialog of `leg` (an nta_leg_t*) and waits for its answer.
  int requestInDialog(::nta_leg_s* leg, const std::string& method, const std::string& body,
                      const std::string& content_type, int timeout_ms);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sipwake::testing
