#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sipwake::registrar {

// A SIP request sent to one of our Contacts, reduced at the SIP edge to what
// call handling needs.
struct IncomingRequest {
  enum class Method { Invite, Message, Options, Bye, Other };
  Method method = Method::Other;
  std::string method_name;
  std::string contact_user;  // the Request-URI user: our per-binding token
  std::string call_id;
  std::string from_uri;
  std::string from_name;  // display name, unquoted
  std::string to_uri;
  std::string source_ip;
  std::string content_type;
  std::string body;
};

using SipHeaders = std::vector<std::pair<std::string, std::string>>;

// The server transaction of an IncomingRequest; answers go through it. The
// SIP layer implements it on sofia nta; tests script it.
// Runs on the SIP thread.
class ServerTransaction {
 public:
  virtual ~ServerTransaction() = default;
  // Provisional (1xx) answers may be sent several times; one final answer.
  virtual void respond(int status, std::string_view reason, const SipHeaders& headers = {}) = 0;
  // Called once if the caller CANCELs; `answered_elsewhere` from
  // "Reason: SIP;cause=200" (another device took the call).
  virtual void onCancel(std::function<void(bool answered_elsewhere)> handler) = 0;
};

}  // namespace sipwake::registrar
