#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/jwt.h"
#include "pushgw/provider/fcm/fcm_service_account.h"

namespace sipwake::pushgw {

enum class ProviderKind { Apns, Fcm };
const char* toString(ProviderKind provider);
std::optional<ProviderKind> parseProviderKind(std::string_view name);

// A provider (or test server) base URL: https://host[:port][/prefix].
struct HttpsUrl {
  std::string host;  // IPv6 literals without their brackets
  int port = 443;
  std::string path_prefix;        // "" or "/a/b" (no trailing slash); prepended to request paths
  std::string authority() const;  // for :authority and SNI: host, [v6], with :port unless 443
  std::string toString() const;
  bool operator==(const HttpsUrl&) const = default;
};
// Throws std::invalid_argument: other schemes, user info, query, fragment, bad port.
HttpsUrl parseHttpsUrl(std::string_view text);

struct ApnsApp {
  std::string app;  // bundle id: apns-topic is <app> or <app>.voip
  std::string team_id;
  std::string key_id;
  std::string key_file;  // resolved path
  HttpsUrl url;          // production
  HttpsUrl sandbox_url;
  std::optional<std::string> ca_file;  // resolved path; none: the system CAs
  crypto::EvpKey key;                  // the .p8 key, loaded and checked (P-256)

  // "production" (or empty) and "sandbox"; nullptr for anything else.
  const HttpsUrl* urlFor(std::string_view environment) const;
};

struct FcmApp {
  std::string app;                   // the FCM project id of the devices: the request path's
  std::string service_account_file;  // resolved path
  HttpsUrl url;
  std::optional<std::string> ca_file;
  FcmServiceAccount account;  // loaded and checked (RSA key)
  HttpsUrl token_url;         // account.token_uri, parsed
};

// PUSHGW_APPS_FILE (PRODUCT.md "Configuration"): every app a device may name,
// with its provider credentials, loaded and validated at start-up so that a
// bad key or file fails the start, not the first push. Relative file names
// are relative to the apps file's directory.
class AppRegistry {
 public:
  static constexpr const char* kApnsProductionUrl = "https://api.push.apple.com";
  static constexpr const char* kApnsSandboxUrl = "https://api.sandbox.push.apple.com";
  static constexpr const char* kFcmUrl = "https://fcm.googleapis.com";

  // Throw std::invalid_argument naming the file, the app and the field. Key
  // files (.p8, service accounts) that other users can read are refused.
  static AppRegistry loadFile(const std::string& path);
  static AppRegistry parse(std::string_view json, const std::string& base_dir);

  const ApnsApp* apns(std::string_view app) const;
  const FcmApp* fcm(std::string_view app) const;
  // The APNs URL for a device's app and environment; nullopt when either is unknown.
  std::optional<HttpsUrl> apnsUrl(std::string_view app, std::string_view environment) const;

  const std::vector<ApnsApp>& apnsApps() const { return apns_; }
  const std::vector<FcmApp>& fcmApps() const { return fcm_; }

 private:
  std::vector<ApnsApp> apns_;
  std::vector<FcmApp> fcm_;
};

}  // namespace sipwake::pushgw
