#include "pushgw/provider/app_registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/config/key_file.h"
#include "common/crypto/hash.h"

namespace sipwake::pushgw {
namespace {

using Json = nlohmann::json;

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Errors name the app (or the entry's position) and the field.
class EntryContext {
 public:
  EntryContext(std::size_t index, const Json& entry)
      : where_("entry " + std::to_string(index + 1)) {
    auto app = entry.find("app");
    if (app != entry.end() && app->is_string() && !app->get_ref<const std::string&>().empty()) {
      where_ = "app '" + app->get<std::string>() + "'";
    }
    auto provider = entry.find("provider");
    if (provider != entry.end() && provider->is_string()) {
      where_ += " (" + provider->get<std::string>() + ")";
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(where_ + ": " + what);
  }
  [[noreturn]] void fail(const char* field, const std::string& what) const {
    fail(std::string("field '") + field + "' " + what);
  }

 private:
  std::string where_;
};

class EntryReader {
 public:
  EntryReader(const Json& entry, const EntryContext& ctx, std::string base_dir)
      : entry_(entry), ctx_(ctx), base_dir_(std::move(base_dir)) {}

  void allowOnly(std::initializer_list<const char*> keys) const {
    for (const auto& item : entry_.items()) {
      // Not a structured binding: clang 14 (the fuzz build) cannot capture one.
      const std::string& key = item.key();
      bool known = std::any_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; });
      if (!known) ctx_.fail("unknown field '" + key + "'");
    }
  }

  std::string required(const char* field) const {
    auto it = entry_.find(field);
    if (it == entry_.end() || it->is_null()) ctx_.fail(field, "is missing");
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      ctx_.fail(field, "must be a non-empty string");
    }
    return it->get<std::string>();
  }

  std::optional<std::string> optional(const char* field) const {
    auto it = entry_.find(field);
    if (it == entry_.end() || it->is_null()) return std::nullopt;
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      ctx_.fail(field, "must be a non-empty string or null");
    }
    return it->get<std::string>();
  }

  HttpsUrl url(const char* field, const char* fallback) const {
    std::string text = optional(field).value_or(fallback);
    try {
      return parseHttpsUrl(text);
    } catch (const std::invalid_argument& e) {
      ctx_.fail(field, e.what());
    }
  }

  std::string path(const std::string& name) const {
    if (name.front() == '/' || base_dir_.empty()) return name;
    return base_dir_ + "/" + name;
  }

  std::optional<std::string> caFile() const {
    auto name = optional("ca_file");
    if (!name) return std::nullopt;
    std::string resolved = path(*name);
    struct stat st {};
    if (stat(resolved.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        access(resolved.c_str(), R_OK) != 0) {
      ctx_.fail("ca_file", "'" + resolved + "' is not a readable file");
    }
    return resolved;
  }

  // Reads a key file: must not be readable by other users.
  std::string secretFile(const char* field, const std::string& resolved, const char* what) const {
    try {
      return config::readSecretFile(resolved, what, /*private_only=*/true);
    } catch (const std::invalid_argument& e) {
      ctx_.fail(field, e.what());
    }
  }

  const EntryContext& ctx() const { return ctx_; }

 private:
  const Json& entry_;
  const EntryContext& ctx_;
  std::string base_dir_;
};

bool appleId(const std::string& id) {
  return id.size() == 10 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
         });
}

bool appName(const std::string& app) {
  return app.size() <= 255 && std::all_of(app.begin(), app.end(), [](char c) {
           return isAlnum(c) || c == '.' || c == '-' || c == '_';
         });
}

ApnsApp readApns(const EntryReader& in, std::string app) {
  in.allowOnly(
      {"app", "provider", "team_id", "key_id", "key_file", "url", "sandbox_url", "ca_file"});
  ApnsApp a;
  a.app = std::move(app);
  a.team_id = in.required("team_id");
  if (!appleId(a.team_id)) in.ctx().fail("team_id", "must be 10 characters of A-Z and 0-9");
  a.key_id = in.required("key_id");
  if (!appleId(a.key_id)) in.ctx().fail("key_id", "must be 10 characters of A-Z and 0-9");
  a.url = in.url("url", AppRegistry::kApnsProductionUrl);
  a.sandbox_url = in.url("sandbox_url", AppRegistry::kApnsSandboxUrl);
  a.ca_file = in.caFile();

  a.key_file = in.path(in.required("key_file"));
  std::string pem = in.secretFile("key_file", a.key_file, "APNs key");
  try {
    a.key = crypto::loadPrivateKeyPem(pem);
  } catch (const std::invalid_argument& e) {
    crypto::wipe(pem);
    in.ctx().fail("key_file", "'" + a.key_file + "': " + e.what());
  }
  crypto::wipe(pem);
  if (!crypto::isEcP256Key(a.key.get())) {
    in.ctx().fail("key_file", "'" + a.key_file + "' is not a P-256 EC key (an APNs .p8 key)");
  }
  return a;
}

FcmApp readFcm(const EntryReader& in, std::string app) {
  in.allowOnly({"app", "provider", "service_account_file", "url", "ca_file"});
  FcmApp f;
  f.app = std::move(app);
  f.url = in.url("url", AppRegistry::kFcmUrl);
  f.ca_file = in.caFile();
  f.service_account_file = in.path(in.required("service_account_file"));
  std::string text =
      in.secretFile("service_account_file", f.service_account_file, "service account");
  try {
    f.account = parseServiceAccount(text);
  } catch (const std::invalid_argument& e) {
    crypto::wipe(text);
    in.ctx().fail("service_account_file", "'" + f.service_account_file + "': " + e.what());
  }
  crypto::wipe(text);
  try {
    f.token_url = parseHttpsUrl(f.account.token_uri);
  } catch (const std::invalid_argument& e) {
    in.ctx().fail("service_account_file",
                  "'" + f.service_account_file + "': token_uri: " + e.what());
  }
  return f;
}

std::string readTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot be read");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

const char* toString(ProviderKind provider) {
  return provider == ProviderKind::Apns ? "apns" : "fcm";
}

std::optional<ProviderKind> parseProviderKind(std::string_view name) {
  if (name == "apns") return ProviderKind::Apns;
  if (name == "fcm") return ProviderKind::Fcm;
  return std::nullopt;
}

std::string HttpsUrl::authority() const {
  std::string a = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 443) a += ":" + std::to_string(port);
  return a;
}

std::string HttpsUrl::toString() const {
  return "https://" + authority() + path_prefix;
}

HttpsUrl parseHttpsUrl(std::string_view text) {
  auto bad = [&](const std::string& why) -> std::invalid_argument {
    return std::invalid_argument("'" + std::string(text) + "' is not a valid https URL: " + why);
  };
  constexpr std::string_view kScheme = "https://";
  if (text.size() < kScheme.size() ||
      !std::equal(kScheme.begin(), kScheme.end(), text.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    throw bad("the scheme must be https");
  }
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) throw bad("no query or fragment allowed");
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      throw bad("unexpected character");
    }
  }
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) throw bad("no user info allowed");

  HttpsUrl url;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') throw bad("unexpected text after the address");
    if (!after.empty()) port = after.substr(1);
    bool ok = !url.host.empty() && std::all_of(url.host.begin(), url.host.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
    if (!ok) throw bad("bad IPv6 address");
  } else {
    std::size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    bool ok = !url.host.empty() && std::all_of(url.host.begin(), url.host.end(), [](char c) {
      return isAlnum(c) || c == '.' || c == '-';
    });
    if (!ok) throw bad("bad host");
  }
  if (!port.empty() || authority.back() == ':') {
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      throw bad("bad port");
    }
    url.port = std::stoi(std::string(port));
    if (url.port < 1 || url.port > 65535) throw bad("bad port");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.path_prefix = std::string(path);
  return url;
}

const HttpsUrl* ApnsApp::urlFor(std::string_view environment) const {
  if (environment.empty() || environment == "production") return &url;
  if (environment == "sandbox") return &sandbox_url;
  return nullptr;
}

AppRegistry AppRegistry::loadFile(const std::string& path) {
  try {
    std::string text = readTextFile(path);
    std::size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    return parse(text, dir);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("apps file '" + path + "': " + e.what());
  }
}

AppRegistry AppRegistry::parse(std::string_view json, const std::string& base_dir) {
  Json doc = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw std::invalid_argument("not valid JSON");
  if (!doc.is_object()) throw std::invalid_argument("must be a JSON object {\"apps\": [...]}");
  for (const auto& [key, value] : doc.items()) {
    if (key != "apps") throw std::invalid_argument("unknown field '" + key + "'");
  }
  auto apps = doc.find("apps");
  if (apps == doc.end() || !apps->is_array())
    throw std::invalid_argument("'apps' must be an array");
  if (apps->empty()) throw std::invalid_argument("'apps' is empty: no app could be pushed to");

  AppRegistry registry;
  std::set<std::pair<ProviderKind, std::string>> seen;
  for (std::size_t i = 0; i < apps->size(); ++i) {
    const Json& entry = (*apps)[i];
    if (!entry.is_object()) {
      throw std::invalid_argument("entry " + std::to_string(i + 1) + " must be an object");
    }
    EntryContext ctx(i, entry);
    EntryReader in(entry, ctx, base_dir == "/" ? "" : base_dir);
    std::string app = in.required("app");
    if (!appName(app)) ctx.fail("app", "may only hold A-Z, a-z, 0-9, '.', '-' and '_'");
    auto provider = parseProviderKind(in.required("provider"));
    if (!provider) ctx.fail("provider", "must be \"apns\" or \"fcm\"");
    if (!seen.emplace(*provider, app).second) ctx.fail("is configured twice");
    if (*provider == ProviderKind::Apns) {
      registry.apns_.push_back(readApns(in, std::move(app)));
    } else {
      registry.fcm_.push_back(readFcm(in, std::move(app)));
    }
  }
  return registry;
}

const ApnsApp* AppRegistry::apns(std::string_view app) const {
  for (const auto& a : apns_) {
    if (a.app == app) return &a;
  }
  return nullptr;
}

const FcmApp* AppRegistry::fcm(std::string_view app) const {
  for (const auto& f : fcm_) {
    if (f.app == app) return &f;
  }
  return nullptr;
}

std::optional<HttpsUrl> AppRegistry::apnsUrl(std::string_view app,
                                             std::string_view environment) const {
  const ApnsApp* a = apns(app);
  if (a == nullptr) return std::nullopt;
  const HttpsUrl* url = a->urlFor(environment);
  if (url == nullptr) return std::nullopt;
  return *url;
}

}  // namespace sipwake::pushgw
