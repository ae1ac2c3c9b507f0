#!/usr/bin/env bash
# Checks the unit files with `systemd-analyze verify` (no systemd needed to be
# running). The binaries need not be installed: ExecStart is pointed at stubs
# in a temporary directory, the rest of each unit is verified as written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
for unit in "$here"/*.service; do
  name=$(basename "$unit")
  bin=$(sed -n 's#^ExecStart=/usr/local/bin/\([a-z]*\).*#\1#p' "$unit")
  [ -n "$bin" ] || { echo "$name: no ExecStart=/usr/local/bin/..." >&2; exit 1; }
  printf '#!/bin/sh\n' > "$tmp/bin/$bin"
  chmod +x "$tmp/bin/$bin"
  sed "s#^ExecStart=/usr/local/bin/#ExecStart=$tmp/bin/#" "$unit" > "$tmp/$name"
  for key in User= EnvironmentFile= KillSignal=SIGTERM TimeoutStopSec= Restart=on-failure \
             NoNewPrivileges=yes ProtectSystem=strict; do
    grep -q "^$key" "$unit" || { echo "$name: $key missing" >&2; exit 1; }
  done
done
# verify prints problems and exits non-zero on errors; warnings fail us too.
out=$(systemd-analyze verify "$tmp"/*.service 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then echo "$out" >&2; exit 1; fi
echo "systemd units OK:" "$tmp"/*.service | sed "s#$tmp/##g"
