#pragma once

#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/event/clock.h"

namespace sipwake::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One configuration key: its dotted name in the file, its environment
// variable, its default (as text; empty means unset) and what it means.
struct ConfigKey {
  std::string key;
  std::string default_value;
  std::string doc;
  std::string env = {};  // derived from the key when empty: PREFIX_KEY_WITH_UNDERSCORES
};

// Where the values came from, for lookups: file values first, environment wins.
class ConfigValues {
 public:
  std::string string(const std::string& key) const;
  std::optional<std::string> optionalString(const std::string& key) const;  // empty -> nullopt
  long long integer(const std::string& key, long long min, long long max) const;
  double number(const std::string& key, double min, double max) const;
  bool boolean(const std::string& key) const;
  // Durations: a plain number is seconds; suffixes ms, s, m, h, d.
  Millis duration(const std::string& key, Millis min, Millis max) const;
  // "host:port" or "[v6]:port"; empty when allowed and unset.
  std::pair<std::string, int> hostPort(const std::string& key) const;

  const std::string& envName(const std::string& key) const;
  void set(const std::string& key, std::string value, std::string env) {
    values_[key] = std::move(value);
    envs_[key] = std::move(env);
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> envs_;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnvironment();

class ConfigTable {
 public:
  ConfigTable(std::string env_prefix, std::vector<ConfigKey> keys);

  // Reads the JSON file (nested objects flatten to dotted keys; unknown keys
  // are an error so typos surface), then applies environment overrides.
  ConfigValues load(const std::optional<std::string>& file_path, const EnvLookup& env) const;

  std::string help(const std::string& program, const std::string& summary) const;
  const std::vector<ConfigKey>& keys() const { return keys_; }

 private:
  std::string env_prefix_;
  std::vector<ConfigKey> keys_;
};

Millis parseDuration(const std::string& text);  // throws std::invalid_argument
std::pair<std::string, int> parseHostPort(const std::string& text);  // throws std::invalid_argument

}  // namespace sipwake::config
