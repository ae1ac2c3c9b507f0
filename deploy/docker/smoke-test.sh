#!/usr/bin/env bash
# Runs the image built from deploy/docker/Dockerfile the way a deployment
# would, on this host's loopback only, and checks that it works:
#   registrar and pushgw start as uid 10001 from the image, read their key
#   files from a mount, reach a redis-server on 127.0.0.1, answer /readyz,
#   take a binding through the API (sealed in Redis: no password in clear),
#   try to register it (no PBX here: it retries), and export Redis health.
#
#   deploy/docker/smoke-test.sh [image]          (default sipwake:0.1.0)
#
# Uses docker, or podman when there is no docker (CONTAINER_ENGINE picks one;
# extra engine flags in CONTAINER_ENGINE_FLAGS, e.g. "--runtime runc"). Runs as
# root: the mounted key files are given to uid 10001, as a Secret volume would
# be. Needs redis-server, redis-cli, curl and openssl on the host.
set -euo pipefail
image=${1:-sipwake:0.1.0}
engine=${CONTAINER_ENGINE:-$(command -v docker >/dev/null && echo docker || echo podman)}
read -r -a engine_flags <<< "${CONTAINER_ENGINE_FLAGS:-}"
work=$(mktemp -d /tmp/sipwake-smoke.XXXXXX)
redis_port=$((20000 + RANDOM % 20000))
api_port=$((redis_port + 1)) sip_port=$((redis_port + 2))
metrics_r=$((redis_port + 3)) metrics_p=$((redis_port + 4))
containers=()
cleanup() {
  for c in "${containers[@]}"; do "$engine" "${engine_flags[@]}" rm -f "$c" >/dev/null 2>&1 || true; done
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for c in "${containers[@]}"; do "$engine" "${engine_flags[@]}" logs "$c" 2>&1 | tail -5 >&2; done; exit 1; }

(umask 077
 echo "k1 $(openssl rand -base64 32)" > "$work/credential_keys"
 echo "smoke $(openssl rand -hex 24)" > "$work/api_keys")
chown -R 10001:10001 "$work"
api_key=$(awk '{print $2}' "$work/api_keys")
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --daemonize yes --dir "$work" \
  --logfile "$work/redis.log" >/dev/null
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

run() {  # run NAME ENV... -- COMMAND...
  local name=$1; shift
  local env=()
  while [ "$1" != -- ]; do env+=(-e "$1"); shift; done; shift
  "$engine" "${engine_flags[@]}" run -d --name "$name" --network host -v "$work:/keys:ro" \
    "${env[@]}" "$image" "$@" >/dev/null
  containers+=("$name")
}
suffix=$$
run "sipwake-smoke-registrar-$suffix" \
  REGISTRAR_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
  REGISTRAR_CREDENTIAL_KEYS_FILE=/keys/credential_keys REGISTRAR_API_KEYS_FILE=/keys/api_keys \
  REGISTRAR_API_LISTEN="127.0.0.1:$api_port" REGISTRAR_SIP_LISTEN="127.0.0.1:$sip_port" \
  REGISTRAR_METRICS_LISTEN="127.0.0.1:$metrics_r" REGISTRAR_TARGET_ALLOW=127.0.0.0/8 -- registrar
run "sipwake-smoke-pushgw-$suffix" \
  PUSHGW_REDIS_URL="redis://127.0.0.1:$redis_port/0" PUSHGW_METRICS_LISTEN="127.0.0.1:$metrics_p" -- pushgw

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }
for _ in $(seq 100); do ready "$api_port" && ready "$metrics_p" && break; sleep 0.2; done
ready "$api_port" || fail "registrar not ready"
ready "$metrics_p" || fail "pushgw not ready"
uid=$("$engine" "${engine_flags[@]}" exec "sipwake-smoke-registrar-$suffix" id -u 2>/dev/null || echo "?")
[ "$uid" = 10001 ] || fail "the registrar runs as uid $uid, not 10001"

password="smoke-$(openssl rand -hex 8)"
status=$(curl -sS -o "$work/put.json" -w '%{http_code}' -X PUT "http://127.0.0.1:$api_port/v1/bindings/phone" \
  -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  -d '{"aor":"sip:1000@127.0.0.1","auth":{"username":"1000","password":"'"$password"'"},
       "registrar":"sip:127.0.0.1:9;transport=udp",
       "devices":[{"id":"p","provider":"fcm","token":"smoke-token","app":"demo"}]}')
[ "$status" = 201 ] || [ "$status" = 200 ] || fail "PUT answered $status: $(cat "$work/put.json")"
[ "$(redis-cli -p "$redis_port" --scan --pattern 'sipwake:binding:*' | wc -l)" -ge 1 ] || fail "no binding in Redis"
if redis-cli -p "$redis_port" --scan | while read -r k; do redis-cli -p "$redis_port" dump "$k"; done | grep -a -q "$password"; then
  fail "the password is in Redis in clear"
fi
state=""
for _ in $(seq 50); do
  state=$(curl -fsS -H "Authorization: Bearer $api_key" "http://127.0.0.1:$api_port/v1/bindings/phone" |
    sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
  [ "$state" = retrying ] && break
  sleep 0.2
done
[ "$state" = retrying ] || fail "binding state '$state', expected retrying (no PBX on 127.0.0.1:9)"
curl -fsS "http://127.0.0.1:$metrics_r/metrics" | grep -q '^registrar_redis_up 1' || fail "registrar_redis_up is not 1"
curl -fsS "http://127.0.0.1:$metrics_p/metrics" | grep -q '^pushgw_redis_up 1' || fail "pushgw_redis_up is not 1"
echo "OK: $image runs as uid 10001; registrar and pushgw ready on Redis 127.0.0.1:$redis_port; binding sealed and retrying"
