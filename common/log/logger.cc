#include "common/log/logger.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/event/clock.h"
#include "common/util/time_format.h"

namespace sipwake::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_mutex;
std::string g_instance;
void (*g_sink)(std::string_view) = nullptr;

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
  line["ts"] = isoTime(SystemClock::instance().now());
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
