#!/usr/bin/env bash
# Installs, builds and runs sipwake on local defaults: a redis-server on
# 127.0.0.1:6379 (started here unless one answers), the registrar with its
# API on 127.0.0.1:8080, SIP on 127.0.0.1:5060 and /metrics on 127.0.0.1:9101,
# and pushgw with the log provider (pushes are logged, not sent; /metrics on
# 127.0.0.1:9102). Set PUSHGW_APPS_FILE to send real pushes (see README).
# Keys for development are generated once under .local/. Ctrl-C stops it all.
# deploy/local/run-cluster.sh starts several instances of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
state=$root/.local

# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh
sipwake_build
sipwake_dev_keys "$state"

cleanup() { sipwake_stop_all; sipwake_stop_redis; }
trap cleanup EXIT
trap 'exit 130' INT TERM

sipwake_start_redis 6379 "$state/redis"

export REGISTRAR_CREDENTIAL_KEYS_FILE=$state/credential_keys
export REGISTRAR_API_KEYS_FILE=$state/api_keys
# Local PBXs live on loopback, which the target policy refuses by default.
export REGISTRAR_TARGET_ALLOW=${REGISTRAR_TARGET_ALLOW:-127.0.0.0/8}
export REGISTRAR_ADMIN_KEYS_FILE=$state/admin_keys
"$build_dir/registrar" &
sipwake_track $!
"$build_dir/pushgw" &
sipwake_track $!

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
Operators: SIPWAKE_ADMIN_KEY_FILE=$state/admin_keys deploy/sipwakectl bindings list
Calls to the binding's contact ring and their pushes show up here as "push (log provider)".
MSG
wait -n "${sipwake_pids[@]}"
