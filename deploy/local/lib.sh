# shellcheck shell=bash
# Shared by run.sh and run-cluster.sh (sourced, not run): build sipwake, make
# development keys, start a loopback redis-server, and stop what was started.
# Expects `set -euo pipefail` and the repository root as the working directory.

# Builds the services (build/ by default; SIPWAKE_BUILD_DIR picks another) after
# installing the Debian packages; SIPWAKE_SKIP_BUILD=1 uses the binaries as they are.
sipwake_build() {
  build_dir=${SIPWAKE_BUILD_DIR:-build}
  if [ "${SIPWAKE_SKIP_BUILD:-0}" != 1 ]; then
    deploy/install-deps.sh
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" -j "$(nproc)" --target registrar pushgw
  fi
}

# Development keys, made once under $1 (owner-only files).
sipwake_dev_keys() {
  local state=$1
  mkdir -p "$state"
  if [ ! -f "$state/credential_keys" ]; then
    (umask 077; echo "dev1 $(openssl rand -base64 32)" > "$state/credential_keys")
  fi
  if [ ! -f "$state/api_keys" ]; then
    (umask 077; echo "dev $(openssl rand -hex 24)" > "$state/api_keys")
  fi
  if [ ! -f "$state/admin_keys" ]; then  # operators (deploy/sipwakectl)
    (umask 077; echo "ops $(openssl rand -hex 24)" > "$state/admin_keys")
  fi
  # shellcheck disable=SC2034  # read by the scripts that source this file
  api_key=$(awk '{print $2}' "$state/api_keys")
}

# Every process started through sipwake_track is stopped by sipwake_stop_all,
# in the order given: services first (SIGTERM, so registrars hand over), then redis.
sipwake_pids=()
sipwake_track() { sipwake_pids+=("$1"); }
sipwake_stop_all() {
  local p
  for p in "${sipwake_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${sipwake_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# Starts redis-server on 127.0.0.1:$1 with AOF in $2 unless one answers there.
# A redis started here is stopped last (sipwake_redis_pid, not in sipwake_pids).
sipwake_redis_pid=""
sipwake_start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then return 0; fi
  # Its own session: a Ctrl-C on the terminal must not stop Redis before the
  # registrars have handed over through it.
  setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
    --save "" --logfile "$dir/redis.log" &
  sipwake_redis_pid=$!
  local _
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not answer on 127.0.0.1:$port (log: $dir/redis.log)" >&2
  return 1
}
sipwake_stop_redis() {
  [ -n "$sipwake_redis_pid" ] || return 0
  kill -TERM "$sipwake_redis_pid" 2>/dev/null || true
  wait "$sipwake_redis_pid" 2>/dev/null || true
  sipwake_redis_pid=""
}
