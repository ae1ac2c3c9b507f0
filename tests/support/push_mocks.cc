#include "tests/support/push_mocks.h"

#include <chrono>
#include <thread>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <chrono>
#include <stdexcept>

#include "tests/support/test_certs.h"

namespace sipwake::testing {
namespace {

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string header(const Http2ServerRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

Http2ServerResponse json(int status, const nlohmann::json& body,
                         std::vector<std::pair<std::string, std::string>> extra = {}) {
  Http2ServerResponse r;
  r.status = status;
  r.headers = std::move(extra);
  r.headers.emplace_back("content-type", "application/json");
  r.body = body.dump();
  return r;
}

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string privateKeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string formValue(const std::string& body, const std::string& name) {
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto amp = body.find('&', pos);
    std::string pair = body.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    auto eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

}  // namespace

ApnsMock::ApnsMock(const std::string& cert_file, const std::string& key_file,
                   const crypto::EvpKey& public_key, std::string team_id, std::string key_id)
    : public_key_(public_key), team_id_(std::move(team_id)), key_id_(std::move(key_id)) {
  Http2TestServerOptions options;
  options.cert_file = cert_file;
  options.key_file = key_file;
  options.max_concurrent_streams = 1;  // APNs with token auth starts at 1 ...
  options.max_concurrent_streams_after_first_success = 100;  // ... and raises it after a success
  server_ = std::make_unique<Http2TestServer>(
      options, [this](const Http2ServerRequest& r) { return handle(r); });
}

MockPush ApnsMock::decode(const Http2ServerRequest& request) const {
  MockPush p;
  constexpr std::string_view kPrefix = "/3/device/";
  if (request.path.rfind(kPrefix, 0) == 0) p.token = request.path.substr(kPrefix.size());
  for (const auto& [k, v] : request.headers) p.headers[k] = v;
  p.body = nlohmann::json::parse(request.body, nullptr, false);
  if (p.body.is_discarded()) p.body = nullptr;
  p.at = request.received_at ? request.received_at : nowSeconds();
  return p;
}

Http2ServerResponse ApnsMock::handle(const Http2ServerRequest& request) {
  MockPush push = decode(request);
  auto answer = [&](int status, const std::string& reason,
                    std::vector<std::pair<std::string, std::string>> extra = {}) {
    push.status = status;
    push.reason = reason;
    {
      std::lock_guard lock(mutex_);
      pushes_.push_back(push);
    }
    if (status == 200) {
      Http2ServerResponse ok;
      ok.headers = {{"apns-id", "00000000-0000-0000-0000-000000000001"}};
      return ok;
    }
    return json(status, {{"reason", reason}}, std::move(extra));
  };

  if (int delay = delay_ms_.load(); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  if (hang_) {
    push.status = 0;
    push.reason = "unanswered";
    std::lock_guard lock(mutex_);
    pushes_.push_back(push);
    Http2ServerResponse never;
    never.status = 0;
    return never;
  }
  if (request.method != "POST" || push.token.empty()) return answer(405, "MethodNotAllowed");
  // The provider token: ES256, our key id and team, issued within the hour.
  std::string auth = header(request, "authorization");
  if (auth.rfind("bearer ", 0) != 0) return answer(403, "MissingProviderToken");
  std::string jwt = auth.substr(7);
  // A signature already verified is not verified again (as APNs caches a
  // token per connection): the bench loads this server at 1,000 pushes/s.
  long long iat = 0;
  {
    std::lock_guard lock(mutex_);
    if (auto it = verified_iat_.find(jwt); it != verified_iat_.end()) iat = it->second;
  }
  if (iat == 0) {
    nlohmann::json claims;
    if (!crypto::verifyJwtEs256(jwt, public_key_.get(), &claims) || claims.value("iss", "") != team_id_) {
      return answer(403, "InvalidProviderToken");
    }
    iat = claims.value("iat", 0LL);
    std::lock_guard lock(mutex_);
    verified_iat_[jwt] = iat;
  }
  if (iat + 3600 < static_cast<long long>(nowSeconds())) return answer(403, "ExpiredProviderToken");
  {
    std::lock_guard lock(mutex_);
    jwts_.insert(jwt);
  }
  // What APNs insists on.
  std::string topic = header(request, "apns-topic"), type = header(request, "apns-push-type");
  if (type != "voip" && type != "alert") return answer(400, "InvalidPushType");
  if (topic.empty() || (type == "voip" && topic.size() < 5) ||
      (type == "voip" && topic.compare(topic.size() - 5, 5, ".voip") != 0)) {
    return answer(400, "TopicDisallowed");
  }
  std::string priority = header(request, "apns-priority");
  if (!priority.empty() && priority != "10" && priority != "5") return answer(400, "BadPriority");
  std::size_t limit = type == "voip" ? 5120 : 4096;
  if (request.body.size() > limit) return answer(413, "PayloadTooLarge");
  if (!push.body.is_object() || !push.body.contains("aps")) return answer(400, "BadPayload");
  for (char c : push.token) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return answer(400, "BadDeviceToken");
  }

  const std::string& t = push.token;
  if (startsWith(t, "0410")) return answer(410, "Unregistered");
  if (startsWith(t, "0400")) return answer(400, "BadDeviceToken");
  if (startsWith(t, "0500")) return answer(500, "InternalServerError");
  if (startsWith(t, "0403")) {
    std::lock_guard lock(mutex_);
    if (rejected_jwt_.empty()) rejected_jwt_ = jwt;
    if (jwt == rejected_jwt_) {
      pushes_.push_back(push);
      pushes_.back().status = 403;
      pushes_.back().reason = "ExpiredProviderToken";
      return json(403, {{"reason", "ExpiredProviderToken"}});
    }
  }
  if (startsWith(t, "0503") || startsWith(t, "0429")) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = failed_once_.insert(t).second;
    }
    if (first) {
      return startsWith(t, "0503") ? answer(503, "ServiceUnavailable", {{"retry-after", "1"}})
                                   : answer(429, "TooManyRequests", {{"retry-after", "1"}});
    }
  }
  return answer(200, "");
}

std::size_t ApnsMock::pushCount() const {
  std::lock_guard lock(mutex_);
  return pushes_.size();
}

std::vector<MockPush> ApnsMock::pushes() const {
  std::lock_guard lock(mutex_);
  return pushes_;
}

std::vector<MockPush> ApnsMock::pushesFor(const std::string& token) const {
  std::vector<MockPush> out;
  for (auto& p : pushes()) {
    if (p.token == token) out.push_back(p);
  }
  return out;
}

std::size_t ApnsMock::providerTokensSeen() const {
  std::lock_guard lock(mutex_);
  return jwts_.size();
}

FcmMock::FcmMock(const std::string& cert_file, const std::string& key_file,
                 const crypto::EvpKey& public_key, std::string client_email, std::string project_id)
    : public_key_(public_key),
      client_email_(std::move(client_email)),
      project_id_(std::move(project_id)) {
  Http2TestServerOptions options;
  options.cert_file = cert_file;
  options.key_file = key_file;
  server_ = std::make_unique<Http2TestServer>(
      options, [this](const Http2ServerRequest& r) { return handle(r); });
}

Http2ServerResponse FcmMock::token(const Http2ServerRequest& request) {
  // RFC 7523 JWT bearer grant, checked like Google does.
  if (formValue(request.body, "grant_type") != "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
    return json(400, {{"error", "unsupported_grant_type"}});
  }
  nlohmann::json claims;
  std::string assertion = formValue(request.body, "assertion");
  if (!crypto::verifyJwtRs256(assertion, public_key_.get(), &claims) ||
      claims.value("iss", "") != client_email_ || claims.value("aud", "") != tokenUri() ||
      claims.value("scope", "").find("firebase.messaging") == std::string::npos) {
    return json(400, {{"error", "invalid_grant"}});
  }
  std::lock_guard lock(mutex_);
  std::string access = "ya29.mock-" + std::to_string(issued_.size() + 1);
  issued_.insert(access);
  return json(200, {{"access_token", access}, {"expires_in", 3599}, {"token_type", "Bearer"}});
}

Http2ServerResponse FcmMock::handle(const Http2ServerRequest& request) {
  if (request.path == "/token") return token(request);
  MockPush push;
  for (const auto& [k, v] : request.headers) push.headers[k] = v;
  push.body = nlohmann::json::parse(request.body, nullptr, false);
  if (push.body.is_discarded()) push.body = nullptr;
  push.at = request.received_at ? request.received_at : nowSeconds();
  if (push.body.is_object() && push.body.contains("message") &&
      push.body["message"].value("token", nlohmann::json()).is_string()) {
    push.token = push.body["message"]["token"];
  }
  auto answer = [&](int status, const std::string& reason, const nlohmann::json& body) {
    push.status = status;
    push.reason = reason;
    std::lock_guard lock(mutex_);
    pushes_.push_back(push);
    return json(status, body);
  };
  auto error = [&](int status, const std::string& code, const std::string& message,
                   nlohmann::json details = nlohmann::json::array()) {
    return answer(status, code,
                  {{"error", {{"code", status}, {"message", message}, {"status", code}, {"details", details}}}});
  };

  if (request.path != "/v1/projects/" + project_id_ + "/messages:send") {
    return error(404, "NOT_FOUND", "unknown path");
  }
  std::string auth = header(request, "authorization");
  std::string access = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
  {
    std::lock_guard lock(mutex_);
    if (!issued_.count(access) || revoked_.count(access)) {
      pushes_.push_back(push);
      pushes_.back().status = 401;
      pushes_.back().reason = "UNAUTHENTICATED";
      return json(401, {{"error", {{"code", 401}, {"message", "Request had invalid authentication credentials."},
                                   {"status", "UNAUTHENTICATED"}}}});
    }
  }
  const nlohmann::json& message = push.body.is_object() ? push.body.value("message", nlohmann::json()) : nlohmann::json();
  if (!message.is_object() || push.token.empty()) return error(400, "INVALID_ARGUMENT", "no message.token");
  if (message.contains("data")) {
    for (const auto& [k, v] : message["data"].items()) {
      if (!v.is_string()) return error(400, "INVALID_ARGUMENT", "data values must be strings: " + k);
    }
  }
  if (request.body.size() > 8192) return error(400, "INVALID_ARGUMENT", "message too big");

  const std::string& t = push.token;
  nlohmann::json fcm_unregistered = {{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                                      {"errorCode", "UNREGISTERED"}}};
  if (startsWith(t, "unreg")) return error(404, "NOT_FOUND", "Requested entity was not found.", fcm_unregistered);
  if (startsWith(t, "badtok")) {
    return error(400, "INVALID_ARGUMENT",
                 "The registration token is not a valid FCM registration token",
                 {{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"}, {"errorCode", "INVALID_ARGUMENT"}},
                  {{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                   {"fieldViolations", {{{"field", "message.token"}, {"description", "Invalid registration token"}}}}}});
  }
  if (startsWith(t, "bad400")) {
    return error(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'",
                 {{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                   {"fieldViolations", {{{"field", "message.android.ttl"}, {"description", "bad"}}}}}});
  }
  if (startsWith(t, "retry") || startsWith(t, "auth")) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = failed_once_.insert(t).second;
      if (first && startsWith(t, "auth")) revoked_.insert(access);
    }
    if (first && startsWith(t, "retry")) return error(503, "UNAVAILABLE", "try later");
    if (first) {
      return answer(401, "UNAUTHENTICATED",
                    {{"error", {{"code", 401}, {"message", "expired"}, {"status", "UNAUTHENTICATED"}}}});
    }
  }
  return answer(200, "", {{"name", "projects/" + project_id_ + "/messages/0:1"}});
}

std::vector<MockPush> FcmMock::pushes() const {
  std::lock_guard lock(mutex_);
  return pushes_;
}

std::vector<MockPush> FcmMock::pushesFor(const std::string& token) const {
  std::vector<MockPush> out;
  for (auto& p : pushes()) {
    if (p.token == token) out.push_back(p);
  }
  return out;
}

std::size_t FcmMock::accessTokensIssued() const {
  std::lock_guard lock(mutex_);
  return issued_.size();
}

PushTestSetup::PushTestSetup() {
  apns_key = crypto::EvpKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  fcm_key = crypto::EvpKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
  if (!apns_key.get() || !fcm_key.get()) throw std::runtime_error("test key generation failed");
  const TestCertificates& certs = sharedTestCertificates();
  apns = std::make_unique<ApnsMock>(certs.server_cert_file, certs.server_key_file, apns_key, team_id, key_id);
  fcm = std::make_unique<FcmMock>(certs.server_cert_file, certs.server_key_file, fcm_key, client_email,
                                  fcm_project);

  apns_key_file = dir.file("AuthKey_" + key_id + ".p8");
  writeFile(apns_key_file, privateKeyPem(apns_key.get()));
  chmod(apns_key_file.c_str(), 0600);
  service_account_file = dir.file("service-account.json");
  nlohmann::json account = {{"type", "service_account"},
                            {"project_id", fcm_project},
                            {"private_key_id", "test-key-1"},
                            {"private_key", privateKeyPem(fcm_key.get())},
                            {"client_email", client_email},
                            {"token_uri", fcm->tokenUri()}};
  writeFile(service_account_file, account.dump(2));
  chmod(service_account_file.c_str(), 0600);
  apps_file = dir.file("apps.json");
  nlohmann::json apps = {
      {"apps",
       {{{"app", apns_app}, {"provider", "apns"}, {"team_id", team_id}, {"key_id", key_id},
         {"key_file", apns_key_file}, {"url", apns->url()}, {"sandbox_url", apns->url()},
         {"ca_file", certs.ca_file}},
        {{"app", fcm_project}, {"provider", "fcm"}, {"service_account_file", service_account_file},
         {"url", fcm->url()}, {"ca_file", certs.ca_file}}}}};
  writeFile(apps_file, apps.dump(2));
}

}  // namespace sipwake::testing
