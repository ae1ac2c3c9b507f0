#include "registrar/registration/digest_auth.h"

#include <cctype>
#include <cstdio>
#include <vector>

#include "common/crypto/hash.h"

namespace sipwake::registrar {
namespace {

using crypto::HashAlgorithm;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void skipSpaces(std::string_view text, std::size_t& i) {
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' ||
                             text[i] == '\n'))
    ++i;
}

// auth-param = token "=" ( token / quoted-string ), separated by commas.
bool parseParams(std::string_view text, std::vector<std::pair<std::string, std::string>>& out) {
  std::size_t i = 0;
  while (true) {
    skipSpaces(text, i);
    if (i >= text.size()) return true;
    std::size_t name_start = i;
    while (i < text.size() && text[i] != '=' && text[i] != ',' && text[i] != ' ') ++i;
    std::string name = lower(text.substr(name_start, i - name_start));
    skipSpaces(text, i);
    if (name.empty() || i >= text.size() || text[i] != '=') return false;
    ++i;
    skipSpaces(text, i);
    std::string value;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        char c = text[i++];
        if (c == '\\' && i < text.size()) {
          value += text[i++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return false;
    } else {
      std::size_t start = i;
      while (i < text.size() && text[i] != ',' && text[i] != ' ' && text[i] != '\t') ++i;
      value = std::string(text.substr(start, i - start));
    }
    out.emplace_back(std::move(name), std::move(value));
    skipSpaces(text, i);
    if (i < text.size()) {
      if (text[i] != ',') return false;
      ++i;
    }
  }
}

std::optional<HashAlgorithm> hashOf(std::string_view algorithm, bool& sess) {
  std::string a = lower(algorithm);
  sess = a.size() > 5 && a.compare(a.size() - 5, 5, "-sess") == 0;
  if (sess) a.resize(a.size() - 5);
  if (a == "md5") return HashAlgorithm::Md5;
  if (a == "sha-256") return HashAlgorithm::Sha256;
  if (a == "sha-512-256") return HashAlgorithm::Sha512_256;
  return std::nullopt;
}

std::string quoted(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::optional<DigestChallenge> parseDigestChallenge(std::string_view header_value, bool proxy) {
  std::size_t i = 0;
  skipSpaces(header_value, i);
  std::size_t scheme_end = i;
  while (scheme_end < header_value.size() && header_value[scheme_end] != ' ' &&
         header_value[scheme_end] != '\t')
    ++scheme_end;
  if (!iequals(header_value.substr(i, scheme_end - i), "Digest")) return std::nullopt;

  std::vector<std::pair<std::string, std::string>> params;
  if (!parseParams(header_value.substr(scheme_end), params)) return std::nullopt;

  DigestChallenge c;
  c.proxy = proxy;
  bool have_realm = false, have_nonce = false;
  for (auto& [name, value] : params) {
    if (name == "realm") c.realm = value, have_realm = true;
    else if (name == "nonce") c.nonce = value, have_nonce = true;
    else if (name == "opaque") c.opaque = value;
    else if (name == "algorithm") c.algorithm = value;
    else if (name == "stale") c.stale = iequals(value, "true");
    else if (name == "qop") {
      std::size_t start = 0;
      while (start <= value.size()) {
        std::size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        std::string option = lower(value.substr(start, comma - start));
        option.erase(0, option.find_first_not_of(" \t"));
        option.erase(option.find_last_not_of(" \t") + 1);
        if (option == "auth") c.qop_auth = true;
        if (option == "auth-int") c.qop_auth_int = true;
        start = comma + 1;
      }
    }
  }
  bool sess;
  if (!have_realm || !have_nonce || c.nonce.empty() || !hashOf(c.algorithm, sess)) {
    return std::nullopt;
  }
  return c;
}

namespace {
constexpr char kFieldSeparator = '\x1f';
}  // namespace

std::string serializeChallenge(const DigestChallenge& c) {
  for (const auto* field : {&c.realm, &c.nonce, &c.opaque, &c.algorithm}) {
    if (field->find(kFieldSeparator) != std::string::npos) return {};
  }
  std::string flags = std::string(c.proxy ? "p" : "") + (c.qop_auth ? "a" : "") +
                      (c.qop_auth_int ? "i" : "");
  return c.realm + kFieldSeparator + c.nonce + kFieldSeparator + c.opaque + kFieldSeparator +
         c.algorithm + kFieldSeparator + flags;
}

std::optional<DigestChallenge> deserializeChallenge(std::string_view text) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (true) {
    auto end = text.find(kFieldSeparator, start);
    fields.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  bool sess;
  if (fields.size() != 5 || fields[1].empty() || !hashOf(fields[3], sess)) return std::nullopt;
  DigestChallenge c;
  c.realm = fields[0];
  c.nonce = fields[1];
  c.opaque = fields[2];
  c.algorithm = fields[3];
  c.proxy = fields[4].find('p') != std::string::npos;
  c.qop_auth = fields[4].find('a') != std::string::npos;
  c.qop_auth_int = fields[4].find('i') != std::string::npos;
  return c;
}

int digestAlgorithmRank(const std::string& algorithm) {
  bool sess;
  auto h = hashOf(algorithm, sess);
  if (!h) return -1;
  switch (*h) {
    case HashAlgorithm::Sha512_256: return 3;
    case HashAlgorithm::Sha256: return 2;
    case HashAlgorithm::Md5: return 1;
  }
  return -1;
}

std::string digestHa1(const DigestChallenge& challenge, std::string_view username,
                      std::string_view password) {
  bool sess = false;
  HashAlgorithm hash = hashOf(challenge.algorithm, sess).value_or(HashAlgorithm::Md5);
  std::string user_realm_pass;
  user_realm_pass.reserve(username.size() + challenge.realm.size() + password.size() + 2);
  user_realm_pass.append(username).append(":").append(challenge.realm).append(":").append(password);
  std::string ha1 = crypto::digestHex(hash, user_realm_pass);
  crypto::wipe(user_realm_pass);
  return ha1;
}

std::string buildDigestAuthorization(const DigestChallenge& challenge, const DigestInput& in) {
  bool sess = false;
  HashAlgorithm hash = hashOf(challenge.algorithm, sess).value_or(HashAlgorithm::Md5);
  auto H = [hash](const std::string& s) { return crypto::digestHex(hash, s); };

  std::string ha1 = in.ha1.empty() ? digestHa1(challenge, in.username, in.password)
                                   : std::string(in.ha1);
  if (sess) ha1 = H(ha1 + ":" + challenge.nonce + ":" + std::string(in.cnonce));

  // RFC 7616: prefer auth; auth-int only when it is all that is offered.
  const char* qop = challenge.qop_auth ? "auth" : (challenge.qop_auth_int ? "auth-int" : nullptr);
  std::string a2 = std::string(in.method) + ":" + std::string(in.uri);
  if (qop && std::string_view(qop) == "auth-int") a2 += ":" + H(std::string(in.body));
  std::string ha2 = H(a2);

  char nc[9];
  std::snprintf(nc, sizeof nc, "%08x", in.nonce_count);
  std::string response =
      qop ? H(ha1 + ":" + challenge.nonce + ":" + nc + ":" + std::string(in.cnonce) + ":" + qop +
              ":" + ha2)
          : H(ha1 + ":" + challenge.nonce + ":" + ha2);
  crypto::wipe(ha1);

  std::string out = "Digest username=" + quoted(in.username) + ", realm=" +
                    quoted(challenge.realm) + ", nonce=" + quoted(challenge.nonce) +
                    ", uri=" + quoted(in.uri) + ", response=\"" + response +
                    "\", algorithm=" + challenge.algorithm;
  if (!challenge.opaque.empty()) out += ", opaque=" + quoted(challenge.opaque);
  if (qop) {
    out += ", qop=" + std::string(qop) + ", nc=" + nc + ", cnonce=" + quoted(in.cnonce);
  }
  return out;
}

std::optional<DigestAuthorization> parseDigestAuthorization(std::string_view header_value) {
  std::string_view text = header_value;
  std::size_t i = 0;
  skipSpaces(text, i);
  if (text.size() < i + 6 || !iequals(text.substr(i, 6), "digest")) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> params;
  if (!parseParams(text.substr(i + 6), params)) return std::nullopt;
  DigestAuthorization a;
  for (auto& [name, value] : params) {
    std::string n = lower(name);
    if (n == "username") a.username = std::move(value);
    else if (n == "realm") a.realm = std::move(value);
    else if (n == "nonce") a.nonce = std::move(value);
    else if (n == "uri") a.uri = std::move(value);
    else if (n == "response") a.response = lower(value);
    else if (n == "algorithm") a.algorithm = std::move(value);
    else if (n == "qop") a.qop = lower(value);
    else if (n == "nc") a.nc = lower(value);
    else if (n == "cnonce") a.cnonce = std::move(value);
  }
  if (a.username.empty() || a.realm.empty() || a.nonce.empty() || a.uri.empty() || a.response.empty()) {
    return std::nullopt;
  }
  return a;
}

bool verifyDigestResponse(const DigestAuthorization& a, std::string_view method, std::string_view ha1) {
  if (!iequals(a.algorithm, "MD5") || ha1.empty()) return false;
  if (!a.qop.empty() && (a.qop != "auth" || a.nc.size() != 8 || a.cnonce.empty())) return false;
  auto H = [](const std::string& s) { return crypto::digestHex(HashAlgorithm::Md5, s); };
  std::string ha2 = H(std::string(method) + ":" + a.uri);
  std::string expected =
      a.qop.empty() ? H(std::string(ha1) + ":" + a.nonce + ":" + ha2)
                    : H(std::string(ha1) + ":" + a.nonce + ":" + a.nc + ":" + a.cnonce + ":auth:" + ha2);
  return crypto::constantTimeEqual(expected, a.response);
}

}  // namespace sipwake::registrar
