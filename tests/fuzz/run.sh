#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, in build-fuzz/) and runs
# each for a bounded time over a copy of its seed corpus (tests/fuzz/corpus
# is never written to).
#   tests/fuzz/run.sh                  every target, 5 s each (CI: about a minute)
#   tests/fuzz/run.sh 600 sip_request  one target, 10 minutes
# Longer runs that keep what they learn: FUZZ_CORPUS_DIR=/var/tmp/sipwake-corpus
# keeps each target's growing corpus there between runs. Crashing inputs are
# written to build-fuzz/fuzz-artifacts/ and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-5}
shift || true
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}

deploy/install-deps.sh
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
# -O1 keeps asserts (no NDEBUG) and is fast enough to fuzz.
cmake -S . -B "$build_dir" -G Ninja -DSIPWAKE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target fuzz_targets

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in tests/fuzz/*_fuzz.cc; do
    name=$(basename "$source" .cc)
    targets+=("${name%_fuzz}")
  done
fi

export ASAN_OPTIONS="abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
artifacts="$PWD/$build_dir/fuzz-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
  binary="$build_dir/tests/fuzz/${target}_fuzz"
  corpus="$work/$target"
  if [ -n "${FUZZ_CORPUS_DIR:-}" ]; then
    corpus="$FUZZ_CORPUS_DIR/$target"
  fi
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "=== fuzz: $target for ${seconds}s ==="
  # One process, one worker: the machine is shared. Inputs up to 64 KiB
  # (the API's body limit); 10 s for one input is a hang.
  if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" \
      >"$work/$target.log" 2>&1; then
    tail -n 60 "$work/$target.log"
    failed+=("$target")
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE" "$work/$target.log" || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]} (inputs in $artifacts)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
