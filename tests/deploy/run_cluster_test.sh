#!/usr/bin/env bash
# deploy/local/run-cluster.sh on the built binaries: 2 registrars and 1 pushgw
# come up ready on one redis-server with AOF, each with its own name and
# ports; SIGTERM to the runner stops them all (services first, then Redis)
# and leaves nothing running. Usage: run_cluster_test.sh BUILD_DIR
set -euo pipefail
build_dir=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
state=$(mktemp -d)
runner=""
fail() {
  echo "FAIL: $*" >&2
  echo "--- runner output" >&2; cat "$state/out" >&2 || true
  for f in "$state"/cluster/logs/*.log; do echo "--- $f" >&2; tail -n 5 "$f" >&2; done
  [ -z "$runner" ] || kill -TERM "$runner" 2>/dev/null || true
  exit 1
}
trap 'rm -rf "$state"' EXIT

# The runner's port ranges moved by an offset whose ports are all free now.
ports_for() {
  local o=$1
  echo $((16379 + o)) $((18080 + o)) $((18081 + o)) $((15060 + o)) $((15062 + o)) \
       $((19101 + o)) $((19102 + o)) $((19201 + o))
}
offset=""
for _ in $(seq 20); do
  o=$(( (RANDOM % 2000) * 10 + 1000 ))
  busy=0
  for p in $(ports_for "$o"); do
    if ss -Hltun "sport = :$p" | grep -q .; then busy=1; fi
  done
  [ "$busy" = 1 ] || { offset=$o; break; }
done
[ -n "$offset" ] || fail "no free port range"

SIPWAKE_SKIP_BUILD=1 SIPWAKE_BUILD_DIR=$build_dir SIPWAKE_STATE_DIR=$state SIPWAKE_PORT_OFFSET=$offset \
  setsid "$root/deploy/local/run-cluster.sh" 2 1 > "$state/out" 2>&1 &
runner=$!
for _ in $(seq 300); do
  grep -q 'Ctrl-C stops the rest' "$state/out" && break
  kill -0 "$runner" 2>/dev/null || fail "the runner exited at start"
  sleep 0.2
done
grep -q '3 of 3 ready' "$state/out" || fail "not every instance became ready"

redis_port=$((16379 + offset))
[ "$(redis-cli -p "$redis_port" config get appendonly | tail -n 1)" = yes ] || fail "redis without AOF"
for i in 1 2; do
  curl -sf "http://127.0.0.1:$((18079 + i + offset))/readyz" >/dev/null || fail "registrar-$i not ready"
  grep -q "\"instance\":\"registrar-$i\"" "$state/cluster/logs/registrar-$i.log" ||
    fail "registrar-$i does not log under its own instance name"
  ss -Hlun "sport = :$((15058 + 2 * i + offset))" | grep -q . || fail "registrar-$i: no SIP UDP listener"
done
curl -sf "http://127.0.0.1:$((19201 + offset))/readyz" >/dev/null || fail "pushgw-1 not ready"
pids=$(sed -n 's/.*(pids: \([0-9 ]*\)).*/\1/p' "$state/out")
[ "$(echo "$pids" | wc -w)" = 3 ] || fail "expected 3 instance pids, got '$pids'"

kill -TERM "$runner"
rc=0
wait "$runner" || rc=$?
runner=""
[ "$rc" = 130 ] || fail "runner exit status $rc, expected 130"
for p in $pids; do
  if kill -0 "$p" 2>/dev/null; then fail "instance $p still running"; fi
done
if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then fail "redis still running"; fi
for i in 1 2; do
  grep -q '"msg":"registrar stopped"' "$state/cluster/logs/registrar-$i.log" ||
    fail "registrar-$i did not stop cleanly"
done
echo "run-cluster: 2 registrars and 1 pushgw up with distinct names and ports, stopped cleanly"
