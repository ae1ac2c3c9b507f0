#pragma once

#include <cstddef>
#include <vector>

namespace sipwake::redis {

// An argument vector as hiredis's *Argv functions take it (pointers and
// lengths, so arguments may hold any byte), viewing `argv`'s strings.
struct HiredisArgv {
  template <typename Strings>
  explicit HiredisArgv(const Strings& argv) {
    args.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
  }
  int count() const { return static_cast<int>(args.size()); }

  std::vector<const char*> args;
  std::vector<std::size_t> lens;
};

}  // namespace sipwake::redis
