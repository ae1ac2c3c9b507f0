#!/usr/bin/env bash
# Runs every benchmark in one sitting and writes bench/report/REPORT.md with
# gnuplot PNGs (bench/README.md, "The report"):
#   1. registration load, sipwake vs Kamailio uac_reg   (registration_bench.py)
#   2. memory against N bindings, both                   (registration_bench.py --memory-steps)
#   3. INVITE -> push, INVITE -> 180 vs a bare UA        (call_bench "[latency]")
#   4. push throughput, pushgw vs h2load                 (call_bench "[throughput]")
# A benchmark that fails leaves a note in the report and the script exits 1
# after writing it. Everything runs on 127.0.0.1.
#
# Knobs (environment), full-run defaults first:
#   BENCH_QUICK=1             small sizes and short durations, to check the script
#   BENCH_REG_SIZES           1000,10000,100000   (quick: 200)
#   BENCH_REG_WINDOW          60 s steady window for CPU per refresh (quick: 5)
#   BENCH_REG_EXPIRES         60 s asked for (the registrar's minimum)
#   BENCH_MEM_STEPS           1000,5000,10000     (quick: 100,300)
#   BENCH_RATES               100,500,1000 calls/s (quick: 50,100)
#   BENCH_SECONDS             3 s per rate        (quick: 1)
#   BENCH_PUSHES              200000              (quick: 2000)
#   BENCH_SKIP_PEER=1         leave uac_reg out
#   BENCH_REPORT_DIR          bench/report
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${BENCH_QUICK:-0}
q() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }
out=${BENCH_REPORT_DIR:-bench/report}
reg_sizes=${BENCH_REG_SIZES:-$(q 1000,10000,100000 200)}
reg_window=${BENCH_REG_WINDOW:-$(q 60 5)}
reg_expires=${BENCH_REG_EXPIRES:-60}
reg_rate=4000
mem_steps=${BENCH_MEM_STEPS:-$(q 1000,5000,10000 100,300)}
export BENCH_RATES=${BENCH_RATES:-$(q 100,500,1000 50,100)}
export BENCH_SECONDS=${BENCH_SECONDS:-$(q 3 1)}
export BENCH_PUSHES=${BENCH_PUSHES:-$(q 200000 2000)}
peer=()
[ "${BENCH_SKIP_PEER:-0}" = 1 ] && peer=(--skip-peer)

deploy/install-deps.sh
rm -rf "$out"
mkdir -p "$out/logs" "$out/samples" "$out/plots"
out=$(cd "$out" && pwd)
echo "== building the Release tree build-bench/"
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench --target registrar pushgw call_bench

{
  echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "machine $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -sr)"
  echo "cpus $(nproc)"
  echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quick $quick"
  echo "reg_sizes $reg_sizes"
  echo "reg_window $reg_window"
  echo "reg_expires $reg_expires"
  echo "reg_rate $reg_rate"
  echo "mem_steps $mem_steps"
  echo "bench_rates $BENCH_RATES"
  echo "bench_seconds $BENCH_SECONDS"
  echo "bench_pushes $BENCH_PUSHES"
} > "$out/meta.txt"

failed=()
run() {  # run NAME COMMAND...: output to logs/NAME.txt and the terminal
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  if ! "$@" 2>&1 | tee "$out/logs/$name.txt"; then
    echo "== $name FAILED (see $out/logs/$name.txt)"
    failed+=("$name")
  fi
  echo "seconds_$name $((SECONDS - start))" >> "$out/meta.txt"
}
run registration bench/registration_bench.py --sizes "$reg_sizes" --window "$reg_window" \
  --expires "$reg_expires" --rate "$reg_rate" --json "$out/registration.json" "${peer[@]}"
run memory bench/registration_bench.py --memory-steps "$mem_steps" --expires "$reg_expires" \
  --rate "$reg_rate" --json "$out/memory.json" "${peer[@]}"
export BENCH_SAMPLES_DIR=$out/samples
run latency build-bench/bench/call_bench "[latency]"
run throughput build-bench/bench/call_bench "[throughput]"

echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"
[ ${#failed[@]} -eq 0 ] || echo "failed ${failed[*]}" >> "$out/meta.txt"
bench/report.py "$out"
[ ${#failed[@]} -eq 0 ] || { echo "benchmarks that failed: ${failed[*]}" >&2; exit 1; }
