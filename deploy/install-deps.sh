#!/usr/bin/env bash
# Installs the Debian 12 packages sipwake builds with and tests against.
# Services are not started by the packages: our scripts and tests start
# their own, on loopback.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ca-certificates openssl curl
  libsofia-sip-ua-dev libevent-dev libssl-dev libhiredis-dev nlohmann-json3-dev
  prometheus-cpp-dev catch2 libnghttp2-dev libjemalloc-dev
  redis-server kamailio kamailio-tls-modules sip-tester
  nghttp2-client nghttp2-server iproute2 prometheus
  yamllint python3 python3-yaml python3-jsonschema python3-kubernetes systemd gnuplot-nox
  clang libclang-rt-14-dev
)
# k8s/validate.sh renders the manifests with `kubectl kustomize`: Debian's
# kubernetes-client, unless a kubectl is installed already (another package's
# /usr/bin/kubectl would clash with it).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Keep package services (redis, kamailio, prometheus) from starting on install.
policy_created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  policy_created=1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
[ $policy_created -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
exit 0
