#include "common/config/config_table.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace sipwake::config {
namespace {

std::string deriveEnv(const std::string& prefix, const std::string& key) {
  std::string env = prefix + "_";
  for (char c : key) env += (c == '.') ? '_' : static_cast<char>(std::toupper(c));
  return env;
}

void flatten(const nlohmann::json& node, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const auto& v = it.value();
    if (v.is_object()) {
      flatten(v, key, out);
    } else if (v.is_string()) {
      out[key] = v.get<std::string>();
    } else if (v.is_null()) {
      out[key] = "";
    } else if (v.is_boolean()) {
      out[key] = v.get<bool>() ? "true" : "false";
    } else if (v.is_number()) {
      out[key] = v.dump();
    } else {
      throw ConfigError("config key '" + key + "' must be a string, number or boolean");
    }
  }
}

}  // namespace

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

ConfigTable::ConfigTable(std::string env_prefix, std::vector<ConfigKey> keys)
    : env_prefix_(std::move(env_prefix)), keys_(std::move(keys)) {
  for (auto& k : keys_) {
    if (k.env.empty()) k.env = deriveEnv(env_prefix_, k.key);
  }
}

ConfigValues ConfigTable::load(const std::optional<std::string>& file_path,
                               const EnvLookup& env) const {
  std::map<std::string, std::string> from_file;
  if (file_path && !file_path->empty()) {
    std::ifstream in(*file_path);
    if (!in) throw ConfigError("cannot read config file '" + *file_path + "'");
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw ConfigError("config file '" + *file_path + "' is not valid JSON: " + e.what());
    }
    if (!doc.is_object()) throw ConfigError("config file '" + *file_path + "' must be an object");
    flatten(doc, "", from_file);
  }
  std::set<std::string> known;
  for (const auto& k : keys_) known.insert(k.key);
  for (const auto& [key, value] : from_file) {
    if (!known.count(key)) {
      throw ConfigError("unknown config key '" + key + "' in '" + *file_path + "'");
    }
  }
  ConfigValues values;
  for (const auto& k : keys_) {
    std::string value = k.default_value;
    if (auto it = from_file.find(k.key); it != from_file.end()) value = it->second;
    if (auto e = env(k.env)) value = *e;
    values.set(k.key, value, k.env);
  }
  return values;
}

std::string ConfigTable::help(const std::string& program, const std::string& summary) const {
  std::ostringstream out;
  out << "usage: " << program << " [--config FILE] [--help]\n\n" << summary << "\n\n";
  out << "Every key can be set in the JSON config file (nested objects or dotted keys)\n"
         "or by its environment variable, which wins. Secrets come from files named here\n"
         "or from the environment, never from the command line.\n\n";
  for (const auto& k : keys_) {
    out << "  " << k.key << "  (" << k.env << ")\n      " << k.doc << "\n      default: "
        << (k.default_value.empty() ? "(unset)" : k.default_value) << "\n";
  }
  return out.str();
}

void ConfigValues::fail(const std::string& key, const std::string& why) const {
  throw ConfigError("config " + key + " (" + envName(key) + "): " + why);
}

const std::string& ConfigValues::envName(const std::string& key) const {
  static const std::string unknown = "?";
  auto it = envs_.find(key);
  return it == envs_.end() ? unknown : it->second;
}

std::string ConfigValues::string(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw ConfigError("config key '" + key + "' is not declared");
  return it->second;
}

std::optional<std::string> ConfigValues::optionalString(const std::string& key) const {
  auto v = string(key);
  if (v.empty()) return std::nullopt;
  return v;
}

long long ConfigValues::integer(const std::string& key, long long min, long long max) const {
  auto text = string(key);
  try {
    std::size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size()) fail(key, "'" + text + "' is not an integer");
    if (v < min || v > max) {
      fail(key, std::to_string(v) + " is outside " + std::to_string(min) + ".." +
                    std::to_string(max));
    }
    return v;
  } catch (const std::logic_error&) {
    fail(key, "'" + text + "' is not an integer");
  }
}

double ConfigValues::number(const std::string& key, double min, double max) const {
  auto text = string(key);
  try {
    std::size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size() || v < min || v > max) {
      fail(key, "'" + text + "' must be a number in " + std::to_string(min) + ".." +
                    std::to_string(max));
    }
    return v;
  } catch (const std::logic_error&) {
    fail(key, "'" + text + "' is not a number");
  }
}

bool ConfigValues::boolean(const std::string& key) const {
  auto text = string(key);
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off" || text.empty()) return false;
  fail(key, "'" + text + "' is not a boolean (true/false/1/0)");
}

Millis ConfigValues::duration(const std::string& key, Millis min, Millis max) const {
  Millis v;
  try {
    v = parseDuration(string(key));
  } catch (const std::invalid_argument& e) {
    fail(key, e.what());
  }
  if (v < min || v > max) {
    fail(key, "must be between " + std::to_string(min) + " ms and " + std::to_string(max) + " ms");
  }
  return v;
}

std::pair<std::string, int> ConfigValues::hostPort(const std::string& key) const {
  try {
    return parseHostPort(string(key));
  } catch (const std::invalid_argument& e) {
    fail(key, e.what());
  }
}

Millis parseDuration(const std::string& text) {
  if (text.empty()) throw std::invalid_argument("empty duration");
  std::size_t used = 0;
  double number;
  try {
    number = std::stod(text, &used);
  } catch (const std::logic_error&) {
    throw std::invalid_argument("'" + text + "' is not a duration (e.g. 30s, 5m, 12h, 7d)");
  }
  std::string unit = text.substr(used);
  double scale;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit == "d") scale = 86'400'000;
  else throw std::invalid_argument("'" + text + "' has an unknown unit (ms, s, m, h, d)");
  if (number < 0) throw std::invalid_argument("'" + text + "' is negative");
  return static_cast<Millis>(number * scale);
}

std::pair<std::string, int> parseHostPort(const std::string& text) {
  std::string host;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("'" + text + "' is not [ipv6]:port");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      throw std::invalid_argument("'" + text + "' is not host:port");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(port_text, &used);
    if (used != port_text.size()) port = -1;
  } catch (const std::logic_error&) {
  }
  if (port < 0 || port > 65535) throw std::invalid_argument("'" + text + "' has no valid port");
  return {host, port};
}

}  // namespace sipwake::config
