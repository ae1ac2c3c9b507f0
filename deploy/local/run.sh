#!/usr/bin/env bash
# Installs, builds and runs sipwake on local defaults: a redis-server on
# 127.0.0.1:6379 (started here unless one answers), the registrar with its
# API on 127.0.0.1:8080, SIP on 127.0.0.1:5060 and /metrics on 127.0.0.1:9101,
# and pushgw with the log provider (pushes are logged, not sent; /metrics on
# 127.0.0.1:9102). Set PUSHGW_APPS_FILE to send real pushes (see README).
# Keys for development are generated once under .local/. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
state=$root/.local
mkdir -p "$state/redis"

deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

if [ ! -f "$state/credential_keys" ]; then
  (umask 077; echo "dev1 $(openssl rand -base64 32)" > "$state/credential_keys")
fi
if [ ! -f "$state/api_keys" ]; then
  (umask 077; echo "dev $(openssl rand -hex 24)" > "$state/api_keys")
fi
api_key=$(awk '{print $2}' "$state/api_keys")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --dir "$state/redis" --appendonly yes \
    --save "" --logfile "$state/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

export REGISTRAR_CREDENTIAL_KEYS_FILE=$state/credential_keys
export REGISTRAR_API_KEYS_FILE=$state/api_keys
# Local PBXs live on loopback, which the target policy refuses by default.
export REGISTRAR_TARGET_ALLOW=${REGISTRAR_TARGET_ALLOW:-127.0.0.0/8}
build/registrar &
pids+=($!)
build/pushgw &
pids+=($!)

cat <<MSG

sipwake is running (logs are JSON lines on this terminal).
  API      http://127.0.0.1:8080   (API key of tenant 'dev': $api_key)
  metrics  http://127.0.0.1:9101/metrics (registrar)  http://127.0.0.1:9102/metrics (pushgw)
  SIP      127.0.0.1:5060 (UDP and TCP)
Hand it a SIP account, for instance:
  curl -X PUT http://127.0.0.1:8080/v1/bindings/my-phone \\
    -H 'Authorization: Bearer $api_key' -H 'Content-Type: application/json' \\
    -d '{"aor":"sip:1000@127.0.0.1","auth":{"username":"1000","password":"secret"},
         "registrar":"sip:127.0.0.1:5070;transport=udp",
         "devices":[{"id":"phone","provider":"fcm","token":"demo-token","app":"demo"}]}'
  curl -H 'Authorization: Bearer $api_key' http://127.0.0.1:8080/v1/bindings/my-phone
Calls to the binding's contact ring and their pushes show up here as "push (log provider)".
MSG
wait -n "${pids[@]}"
