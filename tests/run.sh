#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and
# integration: real redis-server, Kamailio and SIPp on loopback).
#   tests/run.sh              regular build in build/
#   tests/run.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
cmake_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-asan
  cmake_flags=(-DCMAKE_BUILD_TYPE=Debug -DSIPWAKE_SANITIZE=ON)
  # Full unwinding on malloc: OpenSSL has no frame pointers, and the LSan
  # suppressions need to see the sofia-sip frames above it.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:fast_unwind_on_malloc=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
fi

deploy/install-deps.sh
cmake -S . -B "$build_dir" -G Ninja "${cmake_flags[@]}"
cmake --build "$build_dir" -j "$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure --timeout 900
