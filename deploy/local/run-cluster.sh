#!/usr/bin/env bash
# Runs several sipwake instances on loopback, for trying ownership, failover
# and hand-over by hand: one redis-server (AOF) and N registrars and M pushgw
# on one Redis, every port on 127.0.0.1. Ctrl-C stops them: services first
# (SIGTERM: registrars hand their bindings over), Redis last.
#
#   deploy/local/run-cluster.sh [N registrars, default 3] [M pushgw, default 2]
#
# Instance i (1..N) is "registrar-i" with its API on 127.0.0.1:(18079+i), SIP
# (UDP and TCP) on 127.0.0.1:(15058+2i) and /metrics on 127.0.0.1:(19100+i);
# pushgw j is "pushgw-j" with /metrics on 127.0.0.1:(19200+j). Redis listens on
# 127.0.0.1:16379. Move the ranges with SIPWAKE_PORT_OFFSET (added to all).
# Logs: .local/cluster/logs/<instance>.log (JSON lines). Variables already in
# the environment (REGISTRAR_SHARDS, REGISTRAR_LEASE_TTL, PUSHGW_APPS_FILE, ...)
# reach every instance. SIPWAKE_SKIP_BUILD=1 and SIPWAKE_BUILD_DIR as for run.sh;
# SIPWAKE_STATE_DIR moves .local (keys, logs, Redis data).
set -euo pipefail
cd "$(dirname "$0")/../.."
registrars=${1:-3}
pushgws=${2:-2}
for n in "$registrars" "$pushgws"; do
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 50 ]; then
    echo "usage: $0 [registrars 1..50] [pushgw 1..50]" >&2
    exit 2
  fi
done
offset=${SIPWAKE_PORT_OFFSET:-0}
state=${SIPWAKE_STATE_DIR:-$PWD/.local}
cluster=$state/cluster
mkdir -p "$cluster/logs"

# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh
sipwake_build
sipwake_dev_keys "$state"

cleanup() {
  echo "stopping: services first, then redis" >&2
  sipwake_stop_all
  sipwake_stop_redis
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_port=$((16379 + offset))
sipwake_start_redis "$redis_port" "$cluster/redis"
redis_url=redis://127.0.0.1:$redis_port/0
# Instances run in their own sessions (setsid) so that Ctrl-C reaches this
# script only, which stops them in order.

export REGISTRAR_CREDENTIAL_KEYS_FILE=$state/credential_keys
export REGISTRAR_API_KEYS_FILE=$state/api_keys
export REGISTRAR_ADMIN_KEYS_FILE=$state/admin_keys
# Local PBXs live on loopback, which the target policy refuses by default.
export REGISTRAR_TARGET_ALLOW=${REGISTRAR_TARGET_ALLOW:-127.0.0.0/8}
printf '\n%-14s %-22s %-22s %s\n' instance API/metrics SIP log
for i in $(seq "$registrars"); do
  name=registrar-$i
  api=127.0.0.1:$((18079 + i + offset))
  sip=127.0.0.1:$((15058 + 2 * i + offset))
  metrics=127.0.0.1:$((19100 + i + offset))
  REGISTRAR_INSTANCE=$name REGISTRAR_API_LISTEN=$api REGISTRAR_SIP_LISTEN=$sip \
    REGISTRAR_METRICS_LISTEN=$metrics REGISTRAR_REDIS_URL=$redis_url \
    setsid "$build_dir/registrar" >>"$cluster/logs/$name.log" 2>&1 &
  sipwake_track $!
  printf '%-14s %-22s %-22s %s\n' "$name" "http://$api" "$sip" "$cluster/logs/$name.log"
done
for j in $(seq "$pushgws"); do
  name=pushgw-$j
  metrics=127.0.0.1:$((19200 + j + offset))
  PUSHGW_INSTANCE=$name PUSHGW_METRICS_LISTEN=$metrics PUSHGW_REDIS_URL=$redis_url \
    setsid "$build_dir/pushgw" >>"$cluster/logs/$name.log" 2>&1 &
  sipwake_track $!
  printf '%-14s %-22s %-22s %s\n' "$name" "http://$metrics" "-" "$cluster/logs/$name.log"
done

# Wait until every instance answers /readyz (or one exits).
for _ in $(seq 100); do
  ready=0
  for i in $(seq "$registrars"); do
    curl -sf "http://127.0.0.1:$((18079 + i + offset))/readyz" >/dev/null 2>&1 && ready=$((ready + 1))
  done
  for j in $(seq "$pushgws"); do
    curl -sf "http://127.0.0.1:$((19200 + j + offset))/readyz" >/dev/null 2>&1 && ready=$((ready + 1))
  done
  [ "$ready" -eq $((registrars + pushgws)) ] && break
  for p in "${sipwake_pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "an instance exited at start; see $cluster/logs/" >&2; exit 1; }
  done
  sleep 0.2
done

cat <<MSG

$registrars registrar(s) and $pushgws pushgw on redis $redis_url: $ready of $((registrars + pushgws)) ready.
API key of tenant 'dev': $api_key   (every registrar serves the same API)
Follow the logs:  tail -F $cluster/logs/*.log
Kill one:         kill -9 <pid> (pids: ${sipwake_pids[*]}), or kill -TERM for a hand-over
Ctrl-C stops the rest.
MSG
# Runs until Ctrl-C; an instance that dies (kill -9 to try failover) does not end it.
while true; do
  alive=0
  for p in "${sipwake_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -gt 0 ] || { echo "every instance has exited" >&2; exit 1; }
  sleep 1
done
