// Shared by the libFuzzer targets of tests/fuzz: quiet logs that can still
// be searched for secrets, and a check that aborts (a crash libFuzzer keeps).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "common/log/logger.h"

namespace sipwake::fuzz {

// Log lines of the current input, kept instead of printed: a target can
// check that no secret reached them.
inline std::string& loggedText() {
  static std::string text;
  return text;
}

inline void captureLogs() {
  log::setLevel(log::Level::Debug);  // every line, so every field is checked
  log::setSink([](std::string_view line) {
    if (loggedText().size() < (1u << 20)) loggedText().append(line).push_back('\n');
  });
}

// A property the code under test must keep; violating it is a finding.
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

inline bool contains(std::string_view haystack, std::string_view needle) {
  return !needle.empty() && haystack.find(needle) != std::string_view::npos;
}

// 32 characters from the middle of a PEM key's base64 body: this key's own
// material, not the fixed PKCS#8 prefix every key of its type shares. An
// error message must never show it. (libFuzzer learns it from the
// comparisons: a target skips the check for inputs that carry it.)
inline std::string keyExcerpt(const std::string& pem) {
  std::istringstream lines(pem);
  std::string line, body;
  while (std::getline(lines, line)) {
    if (line.rfind("-----", 0) != 0) body += line;
  }
  return body.substr(body.size() / 2, 32);
}

}  // namespace sipwake::fuzz
