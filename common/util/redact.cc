#include "common/util/redact.h"

#include <array>
#include <cctype>

namespace sipwake {
namespace {

constexpr std::array<std::string_view, 5> kSecretParams = {"response", "nonce", "cnonce",
                                                           "nextnonce", "rspauth"};

bool secretParam(std::string_view name) {
  for (std::string_view s : kSecretParams) {
    if (name.size() != s.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < s.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(name[i])) == s[i];
    }
    if (same) return true;
  }
  return false;
}

bool nameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

}  // namespace

std::string redactDigest(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  std::size_t i = 0;
  while (i < v.size()) {
    // A parameter name: a run of name characters followed by '='.
    if (!nameChar(v[i])) {
      if (v[i] == '"') {  // a quoted value we are not redacting: copy it whole
        std::size_t end = i + 1;
        while (end < v.size() && v[end] != '"') end += v[end] == '\\' ? 2 : 1;
        end = std::min(end + 1, v.size());
        out.append(v.substr(i, end - i));
        i = end;
        continue;
      }
      out += v[i++];
      continue;
    }
    std::size_t start = i;
    while (i < v.size() && nameChar(v[i])) ++i;
    std::string_view name = v.substr(start, i - start);
    out.append(name);
    std::size_t eq = i;
    while (eq < v.size() && (v[eq] == ' ' || v[eq] == '\t')) ++eq;
    if (eq >= v.size() || v[eq] != '=' || !secretParam(name)) continue;
    out.append(v.substr(i, eq + 1 - i));
    i = eq + 1;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) out += v[i++];
    if (i < v.size() && v[i] == '"') {
      std::size_t end = i + 1;
      while (end < v.size() && v[end] != '"') end += v[end] == '\\' ? 2 : 1;
      out += "\"…\"";
      i = std::min(end + 1, v.size());
    } else {
      while (i < v.size() && v[i] != ',' && v[i] != ' ' && v[i] != '\t') ++i;
      out += "…";
    }
  }
  return out;
}

std::string shortenToken(std::string_view token) {
  if (token.size() <= 8) return "…";
  return std::string(token.substr(0, 8)) + "…";
}

}  // namespace sipwake
