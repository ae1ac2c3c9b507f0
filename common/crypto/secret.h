#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "common/crypto/hash.h"

namespace sipwake::crypto {

// Holds a secret (a decrypted password) and wipes it when it goes away.
// Deliberately not printable: read it with reveal() where it is used.
class Secret {
 public:
  Secret() = default;
  // Copies, then wipes the argument: moving would leave a short (SSO)
  // password behind in the moved-from string's inline buffer.
  explicit Secret(std::string value) : value_(value.data(), value.size()) { wipe(value); }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { wipe(other.value_); }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      wipe(value_);
      value_ = std::move(other.value_);
      wipe(other.value_);
    }
    return *this;
  }
  ~Secret() { wipe(value_); }

  std::string_view reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

}  // namespace sipwake::crypto
