#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/crypto/jwt.h"
#include "tests/support/http2_test_server.h"
#include "tests/support/process.h"

namespace sipwake::testing {

// A push one of the mocks received, and what it answered.
struct MockPush {
  std::string token;
  std::map<std::string, std::string> headers;
  nlohmann::json body;  // parsed JSON (null when not JSON)
  int status = 0;
  std::string reason;
  double at = 0;
};

// Scripted behaviours by device token prefix (the rest of the token is free):
//   APNs (hex tokens):   0410 -> 410 Unregistered; 0400 -> 400 BadDeviceToken;
//                        0503 -> 503 once, then 200; 0429 -> 429 once, then 200;
//                        0403 -> 403 ExpiredProviderToken for the first provider
//                        token seen, 200 once a new one comes; 0500 -> always 500
//   FCM:                 unreg -> 404 UNREGISTERED; badtok -> 400 INVALID_ARGUMENT
//                        naming message.token; retry -> 503 once, then 200;
//                        auth -> 401 for the first access token, 200 with a new one;
//                        bad400 -> 400 INVALID_ARGUMENT about something else
class ApnsMock {
 public:
  ApnsMock(const std::string& cert_file, const std::string& key_file,
           const crypto::EvpKey& public_key, std::string team_id, std::string key_id);
  std::uint16_t port() const { return server_->port(); }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port()); }
  std::vector<MockPush> pushes() const;                  // every request, in arrival order
  std::size_t pushCount() const;                         // pushes().size(), without the copy
  std::vector<MockPush> pushesFor(const std::string& token) const;
  std::size_t providerTokensSeen() const;               // distinct JWTs
  Http2TestServer& server() { return *server_; }
  // While on, requests are recorded but never answered (jobs stay in flight).
  void setHang(bool hang) { hang_ = hang; }
  // Each answer waits this long (the server answers one request at a time
  // meanwhile): pushes stay under way long enough to stop pushgw amid them.
  void setDelay(int ms) { delay_ms_ = ms; }

 private:
  Http2ServerResponse handle(const Http2ServerRequest& request);
  MockPush decode(const Http2ServerRequest& request) const;

  crypto::EvpKey public_key_;
  std::string team_id_, key_id_;
  mutable std::mutex mutex_;
  std::vector<MockPush> pushes_;
  std::set<std::string> jwts_;
  std::map<std::string, long long> verified_iat_;  // JWT -> its iat, signature checked
  std::set<std::string> failed_once_;
  std::string rejected_jwt_;
  std::atomic<bool> hang_{false};
  std::atomic<int> delay_ms_{0};
  std::unique_ptr<Http2TestServer> server_;
};

class FcmMock {
 public:
  FcmMock(const std::string& cert_file, const std::string& key_file,
          const crypto::EvpKey& public_key, std::string client_email, std::string project_id);
  std::uint16_t port() const { return server_->port(); }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port()); }
  std::string tokenUri() const { return url() + "/token"; }
  std::vector<MockPush> pushes() const;
  std::vector<MockPush> pushesFor(const std::string& token) const;
  std::size_t accessTokensIssued() const;
  Http2TestServer& server() { return *server_; }

 private:
  Http2ServerResponse handle(const Http2ServerRequest& request);
  Http2ServerResponse token(const Http2ServerRequest& request);

  crypto::EvpKey public_key_;
  std::string client_email_, project_id_;
  mutable std::mutex mutex_;
  std::vector<MockPush> pushes_;
  std::set<std::string> issued_;
  std::set<std::string> revoked_;
  std::set<std::string> failed_once_;
  std::unique_ptr<Http2TestServer> server_;
};

// Keys and an apps file for pushgw pointing at the two mocks.
struct PushTestSetup {
  TempDir dir{"sipwake-push"};
  crypto::EvpKey apns_key, fcm_key;
  std::string apns_key_file, service_account_file, apps_file;
  std::string team_id = "TEAM123456", key_id = "KEY1234567";
  std::string apns_app = "com.example.talk", fcm_project = "example-project";
  std::string client_email = "pushgw@example-project.iam.gserviceaccount.com";
  std::unique_ptr<ApnsMock> apns;
  std::unique_ptr<FcmMock> fcm;

  PushTestSetup();
};

}  // namespace sipwake::testing
