#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sipwake::config {

// A line "name value" of a secrets file (API keys, credential keys).
struct KeyFileLine {
  int line_no = 0;
  std::string name;
  std::string value;  // secret: wipe it when done
};

// Parses "name value" lines, skipping blanks and '#' comments. Throws
// std::invalid_argument naming `what` and the line, never its content.
std::vector<KeyFileLine> parseKeyFileLines(std::string_view text, const std::string& what);

// Reads a secrets file; with `private_only`, refuses one that other users can read.
// Throws std::invalid_argument.
std::string readSecretFile(const std::string& path, const std::string& what, bool private_only);

}  // namespace sipwake::config
