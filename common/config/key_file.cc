#include "common/config/key_file.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sipwake::config {

std::vector<KeyFileLine> parseKeyFileLines(std::string_view text, const std::string& what) {
  std::vector<KeyFileLine> lines;
  std::istringstream in{std::string(text)};
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    KeyFileLine parsed;
    std::string extra;
    fields >> parsed.name >> parsed.value >> extra;
    if (parsed.value.empty() || !extra.empty()) {
      throw std::invalid_argument(what + " line " + std::to_string(line_no) +
                                  ": expected two fields separated by a space");
    }
    parsed.line_no = line_no;
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::string readSecretFile(const std::string& path, const std::string& what, bool private_only) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    throw std::invalid_argument(what + " file '" + path + "' cannot be read");
  }
  if (private_only && (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw std::invalid_argument(what + " file '" + path + "' (mode " + mode +
                                ") is readable by other users or its group; chmod 600 it");
  }
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(what + " file '" + path + "' cannot be opened");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace sipwake::config
