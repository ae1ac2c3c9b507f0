#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sipwake::registrar {

// An IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are kept as IPv4 so
// "::ffff:10.0.0.1" meets the same rules as "10.0.0.1".
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4

  static std::optional<IpAddress> parse(std::string_view text);
  std::string toString() const;
};

struct Cidr {
  IpAddress base;
  int prefix = 0;

  // "10.0.0.0/8", "fc00::/7"; a bare address is a /32 or /128.
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& address) const;
  std::string toString() const;
};

// What one tenant may register toward, when the operator restricts it.
// Its CIDRs are also allowed when a built-in rule would refuse them (a
// tenant whose PBXs sit on a private network the operator vouches for).
struct TenantTargetRule {
  std::vector<std::string> domains;  // "pbx.example.com" matches it and its subdomains
  std::vector<Cidr> cidrs;
};

struct TargetPolicyConfig {
  std::vector<Cidr> allow;  // always allowed (unless denied)
  std::vector<Cidr> deny;   // always refused, before anything else
  std::map<std::string, TenantTargetRule> tenants;
};

// Where a binding may make us send REGISTERs. A tenant must not turn us
// into a scanner of our own network or a flooder of someone else's: by
// default loopback, link-local, multicast, unspecified, private (RFC 1918,
// CGNAT, ULA) and reserved ranges are refused unless allowed.
// Immutable after construction; safe to share between threads.
class TargetPolicy {
 public:
  TargetPolicy() = default;
  explicit TargetPolicy(TargetPolicyConfig config) : config_(std::move(config)) {}

  // Parses the comma-separated CIDR lists and the tenants JSON
  // ({"tenants": {"acme": {"domains": [...], "cidrs": [...]}}}, may be
  // empty). Throws std::invalid_argument naming what is wrong.
  static TargetPolicyConfig parseConfig(std::string_view allow_csv, std::string_view deny_csv,
                                        std::string_view tenants_json);

  // For a target host as written (name or literal): nullopt when it may be
  // used (a name still has each address it resolves to checked), else why not.
  std::optional<std::string> checkHost(const std::string& tenant, const std::string& host) const;
  // For an address a target resolved to (or a literal), with the name it
  // came from ("" for a literal).
  std::optional<std::string> checkAddress(const std::string& tenant, const std::string& name,
                                          const IpAddress& address) const;

  // The ranges refused unless allowed.
  static const std::vector<std::pair<Cidr, const char*>>& builtinForbidden();

 private:
  const TenantTargetRule* ruleFor(const std::string& tenant) const;

  TargetPolicyConfig config_;
};

// "acme/phone-1" -> "acme": bindings are keyed "<tenant>/<id>".
std::string tenantOfKey(std::string_view binding_key);

}  // namespace sipwake::registrar
