#include "common/log/logger.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace sipwake::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_mutex;
std::string g_instance;
void (*g_sink)(std::string_view) = nullptr;

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void setInstance(std::string instance) {
  std::lock_guard lock(g_mutex);
  g_instance = std::move(instance);
}

void setLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool parseLevel(std::string_view text, Level& out) {
  if (text == "debug") out = Level::Debug;
  else if (text == "info") out = Level::Info;
  else if (text == "warn" || text == "warning") out = Level::Warn;
  else if (text == "error") out = Level::Error;
  else return false;
  return true;
}

const char* levelName(Level level) {
  switch (level) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "info";
}

void setSink(void (*sink)(std::string_view line)) {
  std::lock_guard lock(g_mutex);
  g_sink = sink;
}

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  nlohmann::json line;
  line["ts"] = timestamp();
  line["level"] = levelName(level);
  std::lock_guard lock(g_mutex);
  if (!g_instance.empty()) line["instance"] = g_instance;
  line["msg"] = std::string(msg);
  for (const auto& f : fields) line[std::string(f.key)] = f.value;
  // Replace invalid UTF-8 (it can come from the network) instead of throwing.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  if (g_sink) {
    g_sink(text);
  } else {
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
}

}  // namespace sipwake::log
