#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace sipwake::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// One key/value of a log line. Values are strings; callers never pass secrets.
struct Field {
  std::string_view key;
  std::string value;
};

// Lines are JSON objects, one per line, on stderr: {"ts","level","instance","msg",...fields}.
void setInstance(std::string instance);
void setLevel(Level level);
Level level();
bool parseLevel(std::string_view text, Level& out);
const char* levelName(Level level);

// Redirects output (tests); nullptr restores stderr.
void setSink(void (*sink)(std::string_view line));

void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

inline bool enabled(Level l) { return static_cast<int>(l) >= static_cast<int>(level()); }
inline void debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Debug)) write(Level::Debug, msg, f);
}
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Info)) write(Level::Info, msg, f);
}
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Warn)) write(Level::Warn, msg, f);
}
inline void error(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::Error, msg, f);
}

}  // namespace sipwake::log
