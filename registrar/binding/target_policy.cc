#include "registrar/binding/target_policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace sipwake::registrar {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<Cidr> parseCidrList(std::string_view csv, const std::string& what) {
  std::vector<Cidr> out;
  while (!csv.empty()) {
    auto comma = csv.find(',');
    std::string_view item = trim(csv.substr(0, comma));
    csv = comma == std::string_view::npos ? std::string_view() : csv.substr(comma + 1);
    if (item.empty()) continue;
    auto cidr = Cidr::parse(item);
    if (!cidr) throw std::invalid_argument(what + ": '" + std::string(item) + "' is not a CIDR");
    out.push_back(*cidr);
  }
  return out;
}

bool domainMatches(const std::string& host, const std::string& domain) {
  std::string d = lower(domain);
  if (!d.empty() && d.front() == '.') d.erase(0, 1);
  if (host == d) return true;
  return host.size() > d.size() && host.compare(host.size() - d.size(), d.size(), d) == 0 &&
         host[host.size() - d.size() - 1] == '.';
}

Cidr cidr(const char* text) { return *Cidr::parse(text); }

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, a.bytes.begin())) {
    std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
    std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
    return a;
  }
  a.v6 = true;
  return a;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  text = trim(text);
  auto slash = text.find('/');
  auto base = IpAddress::parse(text.substr(0, slash));
  if (!base) return std::nullopt;
  int max = base->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit)) return std::nullopt;
    prefix = std::stoi(std::string(p));
    // An IPv4-mapped base ("::ffff:10.0.0.0/104") counts its prefix in IPv6 bits.
    if (!base->v6 && text.substr(0, slash).find(':') != std::string_view::npos) prefix -= 96;
    if (prefix < 0 || prefix > max) return std::nullopt;
  }
  return Cidr{*base, prefix};
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.v6 != base.v6) return false;
  int full = prefix / 8;
  if (!std::equal(base.bytes.begin(), base.bytes.begin() + full, address.bytes.begin())) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (base.bytes[full] & mask) == (address.bytes[full] & mask);
}

std::string Cidr::toString() const { return base.toString() + "/" + std::to_string(prefix); }

const std::vector<std::pair<Cidr, const char*>>& TargetPolicy::builtinForbidden() {
  static const std::vector<std::pair<Cidr, const char*>> ranges = {
      {cidr("0.0.0.0/8"), "unspecified"},
      {cidr("10.0.0.0/8"), "private (RFC 1918)"},
      {cidr("100.64.0.0/10"), "shared address space (CGNAT)"},
      {cidr("127.0.0.0/8"), "loopback"},
      {cidr("169.254.0.0/16"), "link-local"},
      {cidr("172.16.0.0/12"), "private (RFC 1918)"},
      {cidr("192.0.0.0/24"), "IETF protocol assignments"},
      {cidr("192.168.0.0/16"), "private (RFC 1918)"},
      {cidr("198.18.0.0/15"), "benchmarking"},
      {cidr("224.0.0.0/4"), "multicast"},
      {cidr("240.0.0.0/4"), "reserved"},  // includes 255.255.255.255 (broadcast)
      {cidr("::/128"), "unspecified"},
      {cidr("::1/128"), "loopback"},
      {cidr("64:ff9b::/96"), "NAT64 (embeds an IPv4 address)"},
      {cidr("fc00::/7"), "unique local (ULA)"},
      {cidr("fe80::/10"), "link-local"},
      {cidr("fec0::/10"), "site-local"},
      {cidr("ff00::/8"), "multicast"},
  };
  return ranges;
}

TargetPolicyConfig TargetPolicy::parseConfig(std::string_view allow_csv, std::string_view deny_csv,
                                             std::string_view tenants_json) {
  TargetPolicyConfig c;
  c.allow = parseCidrList(allow_csv, "target allow list");
  c.deny = parseCidrList(deny_csv, "target deny list");
  if (trim(tenants_json).empty()) return c;
  auto doc = nlohmann::json::parse(tenants_json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("tenants") ||
      !doc["tenants"].is_object()) {
    throw std::invalid_argument(
        "tenant target policy: expected {\"tenants\": {\"<tenant>\": {\"domains\": [...], "
        "\"cidrs\": [...]}}}");
  }
  for (const auto& [tenant, rule] : doc["tenants"].items()) {
    std::string where = "tenant target policy '" + tenant + "'";
    if (!rule.is_object()) throw std::invalid_argument(where + ": must be an object");
    TenantTargetRule r;
    for (const auto& [key, list] : rule.items()) {
      if ((key != "domains" && key != "cidrs") || !list.is_array()) {
        throw std::invalid_argument(where + ": only 'domains' and 'cidrs' arrays are known");
      }
      for (const auto& item : list) {
        if (!item.is_string() || item.get<std::string>().empty()) {
          throw std::invalid_argument(where + ": '" + key + "' holds non-empty strings");
        }
        if (key == "domains") {
          r.domains.push_back(lower(item.get<std::string>()));
        } else {
          auto cidr = Cidr::parse(item.get<std::string>());
          if (!cidr) {
            throw std::invalid_argument(where + ": '" + item.get<std::string>() + "' is not a CIDR");
          }
          r.cidrs.push_back(*cidr);
        }
      }
    }
    c.tenants[tenant] = std::move(r);
  }
  return c;
}

const TenantTargetRule* TargetPolicy::ruleFor(const std::string& tenant) const {
  auto it = config_.tenants.find(tenant);
  return it == config_.tenants.end() ? nullptr : &it->second;
}

std::optional<std::string> TargetPolicy::checkHost(const std::string& tenant,
                                                   const std::string& host) const {
  if (auto literal = IpAddress::parse(host)) return checkAddress(tenant, "", *literal);
  const TenantTargetRule* rule = ruleFor(tenant);
  if (!rule) return std::nullopt;
  std::string name = lower(host);
  for (const auto& d : rule->domains) {
    if (domainMatches(name, d)) return std::nullopt;
  }
  // The name may still resolve into one of the tenant's CIDRs.
  if (!rule->cidrs.empty()) return std::nullopt;
  return "'" + host + "' is not among this tenant's allowed domains";
}

std::optional<std::string> TargetPolicy::checkAddress(const std::string& tenant,
                                                      const std::string& name,
                                                      const IpAddress& address) const {
  const std::string shown = address.toString();
  for (const auto& c : config_.deny) {
    if (c.contains(address)) return shown + " is denied by the operator (" + c.toString() + ")";
  }
  if (const TenantTargetRule* rule = ruleFor(tenant)) {
    for (const auto& c : rule->cidrs) {
      if (c.contains(address)) return std::nullopt;
    }
    bool name_allowed = false;
    std::string lowered = lower(name);
    for (const auto& d : rule->domains) {
      if (!lowered.empty() && domainMatches(lowered, d)) name_allowed = true;
    }
    if (!name_allowed) return shown + " is not among this tenant's allowed targets";
  }
  for (const auto& c : config_.allow) {
    if (c.contains(address)) return std::nullopt;
  }
  for (const auto& [c, what] : builtinForbidden()) {
    if (c.contains(address)) return shown + " is a " + what + " address";
  }
  return std::nullopt;
}

std::string tenantOfKey(std::string_view binding_key) {
  return std::string(binding_key.substr(0, binding_key.find('/')));
}

}  // namespace sipwake::registrar
