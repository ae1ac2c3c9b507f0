// Shared by the libFuzzer targets of tests/fuzz: quiet logs that can still
// be searched for secrets, and a check that aborts (a crash libFuzzer keeps).
#pragma once

#include <cstdio>
#include <cstdlib>
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

}  // namespace sipwake::fuzz
