#!/usr/bin/env bash
# Validates the Kubernetes manifests offline (CI runs it; needs kubectl for
# `kubectl kustomize`, yamllint and python3-yaml: deploy/install-deps.sh).
#
#  1. yamllint on every YAML file under k8s/;
#  2. base/prometheusrule.yaml is exactly the rendering of
#     deploy/monitoring/alerts.yml (k8s/render-prometheusrule.sh);
#  3. every kustomization renders (`kubectl kustomize`, offline);
#  4. schema_check.py on each overlay's rendering: every object against the
#     Kubernetes API types of Debian's python3-kubernetes (field names, value
#     shapes, required fields; the Prometheus Operator kinds have none there);
#  5. check_manifests.py on each overlay's rendering: every object has
#     apiVersion/kind/metadata.name and a known kind+version, references
#     resolve (selectors, Services' target ports, ConfigMaps, volumes, HPA
#     target, PDBs, ServiceMonitor job labels), probes hit /healthz and /readyz
#     on the ports the services serve them on, env names are the services'
#     config variables, secrets only as files or secretKeyRef, and the
#     PrometheusRule holds the same groups as alerts.yml.
# The Python scripts run on Debian's python3 (PYTHON overrides), where apt put
# python3-yaml and python3-kubernetes.
#
# KUBECTL picks the kubectl binary (default: kubectl on PATH). Rendered output
# is kept in $K8S_RENDER_DIR when set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kubectl=${KUBECTL:-kubectl}
py=${PYTHON:-/usr/bin/python3}
out=${K8S_RENDER_DIR:-$(mktemp -d)}
[ -n "${K8S_RENDER_DIR:-}" ] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"

command -v "$kubectl" >/dev/null || { echo "validate: no $kubectl (Debian: kubernetes-client)" >&2; exit 1; }
echo "k8s: $("$kubectl" version --client --short 2>/dev/null || "$kubectl" version --client 2>&1 | head -n 1)"

echo "k8s: yamllint"
yamllint -c "$here/.yamllint" --strict "$here"

echo "k8s: PrometheusRule rendered from deploy/monitoring/alerts.yml"
if ! diff -u "$here/base/prometheusrule.yaml" <("$here/render-prometheusrule.sh" --stdout); then
  echo "k8s/base/prometheusrule.yaml is stale: run k8s/render-prometheusrule.sh" >&2
  exit 1
fi

sh -n "$here/redis-sentinel/start.sh"

overlays=()
for dir in "$here"/base "$here"/redis-sentinel "$here"/overlays/*; do
  rel=${dir#"$root"/}
  file=$out/$(echo "$rel" | tr / -).yaml
  # kustomize v5 warns on stderr about the v2-compatible field names we use.
  if ! "$kubectl" kustomize "$dir" > "$file" 2> "$file.err"; then
    cat "$file.err" >&2
    echo "k8s: $rel does not render" >&2
    exit 1
  fi
  "$py" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$file"
  echo "k8s: $rel renders ($(grep -c '^kind:' "$file") objects)"
  case $rel in k8s/overlays/*) overlays+=("$file") ;; esac
done
[ ${#overlays[@]} -gt 0 ] || { echo "k8s: no overlays" >&2; exit 1; }

"$py" "$here/schema_check.py" "${overlays[@]}"
"$py" "$here/check_manifests.py" "$root/deploy/monitoring/alerts.yml" "${overlays[@]}"
echo "k8s: manifests OK"
