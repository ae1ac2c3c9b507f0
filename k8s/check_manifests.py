#!/usr/bin/env python3
"""Structural checks of rendered sipwake manifests (python3-yaml only).

Usage: check_manifests.py ALERTS_YML RENDERED.yaml...

schema_check.py checks every field against the API types; this checks the
shape of what it walks (also for the Prometheus Operator kinds, which have no
type there) and what a schema cannot: references
between objects, probes against the paths the services serve, the environment
variables against the services' config tables, secrets kept out of env values
and ConfigMaps, and the PrometheusRule against deploy/monitoring/alerts.yml.
"""
import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# The kinds we use and their API versions (an unknown kind is an error: add it here).
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Service": "v1", "Secret": "v1",
    "Deployment": "apps/v1", "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
    "ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1",
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|(^|_)KEYS?($|_)")
# Variables of issue 5's instance ownership (being added to the registrar on main).
EXTRA_VARS = {"REGISTRAR_SHARDS", "REGISTRAR_LEASE_TTL", "REGISTRAR_HANDOVER_TIMEOUT"}
# What each sipwake binary serves on which port (registrar: API; pushgw: metrics).
SIPWAKE_PROBES = {"registrar": "api", "pushgw": "metrics"}
JOB_NAMES = {"sipwake-registrar", "sipwake-pushgw"}  # alerts.yml selects on these


class Checker:
    def __init__(self, name):
        self.name = name
        self.errors = []

    def fail(self, obj, msg):
        where = "%s/%s" % (obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?")) \
            if isinstance(obj, dict) else "?"
        self.errors.append("%s: %s: %s" % (self.name, where, msg))


def config_vars():
    """Environment variables the services read: from their config tables."""
    names = set(EXTRA_VARS)
    for path, prefix in (("registrar/registrar_config.cc", "REGISTRAR"),
                         ("pushgw/pushgw_config.cc", "PUSHGW")):
        text = open(os.path.join(ROOT, path)).read()
        keys = re.findall(r'^\s*\{"([a-z0-9_.]+)",', text, re.M)
        if not keys:
            sys.exit("no config keys found in " + path)
        names |= {prefix + "_" + k.replace(".", "_").upper() for k in keys}
        names.add(prefix + "_CONFIG")
    return names


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_specs(objs):
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            yield o, o["spec"]["template"]


def check_workload_shape(c, o):
    """The fields the other checks walk, with the right types."""
    spec = o.get("spec")
    try:
        assert isinstance(spec, dict), "no spec"
        assert isinstance(spec["selector"]["matchLabels"], dict), "spec.selector.matchLabels"
        pod = spec["template"]
        assert isinstance(pod["metadata"]["labels"], dict), "template labels"
        assert isinstance(pod["spec"]["containers"], list) and pod["spec"]["containers"], "containers"
        for key in ("volumes", "initContainers"):
            assert isinstance(pod["spec"].get(key, []), list), key
        for ct in pod["spec"]["containers"]:
            for key in ("ports", "env", "envFrom", "volumeMounts"):
                assert isinstance(ct.get(key, []), list), "container %s" % key
        return True
    except (AssertionError, KeyError, TypeError) as e:
        c.fail(o, "malformed workload: %s" % e)
        return False


def check_object(c, o):
    if not isinstance(o, dict):
        c.fail(o, "not a mapping")
        return False
    for field in ("apiVersion", "kind", "metadata"):
        if field not in o:
            c.fail(o, "no " + field)
            return False
    name = (o["metadata"] or {}).get("name")
    if not name:
        c.fail(o, "no metadata.name")
        return False
    if not DNS1123.match(name) or len(name) > 253:
        c.fail(o, "name is not a DNS-1123 subdomain")
    want = API_VERSIONS.get(o["kind"])
    if want is None:
        c.fail(o, "kind not known to this checker")
    elif o["apiVersion"] != want:
        c.fail(o, "apiVersion %s, expected %s" % (o["apiVersion"], want))
    for k, v in (o["metadata"].get("labels") or {}).items():
        if not isinstance(v, str):
            c.fail(o, "label %s is not a string" % k)
    return True


def check_containers(c, o, pod, known_vars, secrets_from_volumes):
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = o["spec"].get("volumeClaimTemplates", [])
    if not isinstance(claims, list):
        c.fail(o, "volumeClaimTemplates is not a list")
        claims = []
    claim_names = {t["metadata"]["name"] for t in claims}
    if spec.get("automountServiceAccountToken") is not False:
        c.fail(o, "automountServiceAccountToken should be false (no API access needed)")
    psc = spec.get("securityContext") or {}
    for ct in spec.get("containers", []):
        cname = ct.get("name", "?")
        where = "container %s: " % cname
        if not ct.get("image"):
            c.fail(o, where + "no image")
        ports = {p["name"]: p for p in ct.get("ports", []) if "name" in p}
        numbers = {p["containerPort"] for p in ct.get("ports", [])}
        for p in ct.get("ports", []):
            if not isinstance(p.get("containerPort"), int) or not 0 < p["containerPort"] < 65536:
                c.fail(o, where + "bad containerPort %r" % p.get("containerPort"))
            if "name" in p and (len(p["name"]) > 15 or not LABEL_NAME.match(p["name"])):
                c.fail(o, where + "bad port name %r" % p["name"])
        csc = ct.get("securityContext") or {}
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            c.fail(o, where + "runAsNonRoot not set")
        if csc.get("allowPrivilegeEscalation") is not False:
            c.fail(o, where + "allowPrivilegeEscalation must be false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            c.fail(o, where + "capabilities must drop ALL")
        if not (ct.get("resources") or {}).get("requests"):
            c.fail(o, where + "no resource requests")
        for kind in ("livenessProbe", "readinessProbe"):
            probe = ct.get(kind)
            if not probe:
                c.fail(o, where + "no " + kind)
                continue
            get = probe.get("httpGet")
            if get:
                port = get.get("port")
                if port not in ports and port not in numbers:
                    c.fail(o, where + "%s port %r is not a container port" % (kind, port))
        # sipwake binaries: the probes must hit what the service serves, where.
        cmd = " ".join(ct.get("command") or [])
        binary = next((b for b in SIPWAKE_PROBES if cmd.endswith("/" + b)), None)
        if binary:
            for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = (ct.get(kind) or {}).get("httpGet") or {}
                if get.get("path") != path or get.get("port") != SIPWAKE_PROBES[binary]:
                    c.fail(o, where + "%s must GET %s on port '%s'" % (kind, path, SIPWAKE_PROBES[binary]))
            if binary == "registrar":
                scheme = ((ct.get("livenessProbe") or {}).get("httpGet") or {}).get("scheme")
                tls = any(e.get("name") == "REGISTRAR_API_TLS_CERT" for e in ct.get("env", []))
                if tls != (scheme == "HTTPS"):
                    c.fail(o, where + "probe scheme must be HTTPS exactly when the API has TLS")
        defined = set()
        for e in ct.get("env", []):
            n = e.get("name", "")
            if not ENV_NAME.match(n):
                c.fail(o, where + "bad env name %r" % n)
            if n in defined:
                c.fail(o, where + "env %s twice" % n)
            defined.add(n)
            if n.startswith(("REGISTRAR_", "PUSHGW_")) and n not in known_vars:
                c.fail(o, where + "env %s is not a config variable of the services" % n)
            is_path = n.endswith(("_FILE", "_TLS_CERT", "_TLS_KEY"))
            if is_path and "value" in e and not str(e["value"]).startswith("/"):
                c.fail(o, where + "env %s must be an absolute file path" % n)
            if "value" in e and SECRETISH.search(n) and not is_path:
                c.fail(o, where + "env %s has a literal value: secrets come from files or secretKeyRef" % n)
            if "value" in e and re.search(r"://[^/@\s]*:[^/@\s]+@", str(e["value"])):
                c.fail(o, where + "env %s: a password in a URL literal" % n)
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", ""))):
                if ref not in defined:
                    c.fail(o, where + "env %s uses $(%s) before it is defined" % (n, ref))
        mounted = {}
        for m in ct.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in claim_names:
                c.fail(o, where + "volumeMount %s has no volume" % m["name"])
            mounted[m["mountPath"]] = volumes.get(m["name"], {})
        # Every *_FILE / TLS path must lie in a mounted Secret volume.
        for e in ct.get("env", []):
            n, v = e.get("name", ""), str(e.get("value", ""))
            if n.endswith(("_FILE", "_TLS_CERT", "_TLS_KEY")) and "value" in e:
                vol = next((vol for path, vol in mounted.items() if v.startswith(path.rstrip("/") + "/")), None)
                if vol is None or "secret" not in vol:
                    c.fail(o, where + "env %s=%s is not in a mounted Secret volume" % (n, v))
                else:
                    secrets_from_volumes.add(vol["secret"]["secretName"])
                    mode = vol["secret"].get("defaultMode", 0o644)
                    if mode & 0o004:
                        c.fail(o, where + "Secret volume %s is world-readable" % vol["secret"]["secretName"])


def check_set(name, docs, alerts_groups, known_vars):
    c = Checker(name)
    objs = [o for o in docs if o is not None]
    objs = [o for o in objs if check_object(c, o)]
    objs = [o for o in objs if o["kind"] not in ("Deployment", "StatefulSet") or check_workload_shape(c, o)]
    seen = set()
    for o in objs:
        key = (o["kind"], o["metadata"]["name"])
        if key in seen:
            c.fail(o, "defined twice")
        seen.add(key)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    config_maps = by_kind.get("ConfigMap", {})
    secret_refs = set()

    for o, pod in pod_specs(objs):
        sel = o["spec"]["selector"]["matchLabels"]
        if not matches(sel, pod["metadata"].get("labels") or {}):
            c.fail(o, "selector does not match the pod template labels")
        if o["kind"] == "StatefulSet":
            svc = by_kind.get("Service", {}).get(o["spec"].get("serviceName"))
            if svc is None or svc["spec"].get("clusterIP") != "None":
                c.fail(o, "serviceName is not a headless Service of this set")
        check_containers(c, o, pod, known_vars, secret_refs)
        for ct in pod["spec"]["containers"]:
            for ef in ct.get("envFrom", []):
                ref = (ef.get("configMapRef") or {}).get("name")
                if ref and ref not in config_maps:
                    c.fail(o, "envFrom ConfigMap %s does not exist" % ref)
                for n in (config_maps.get(ref, {}).get("data") or {}):
                    if n.startswith(("REGISTRAR_", "PUSHGW_")) and n not in known_vars:
                        c.fail(o, "ConfigMap %s: %s is not a config variable" % (ref, n))
            for e in ct.get("env", []):
                ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                if ref:
                    secret_refs.add(ref)
        for v in pod["spec"].get("volumes", []):
            ref = (v.get("configMap") or {}).get("name")
            if ref and ref not in config_maps:
                c.fail(o, "volume %s: ConfigMap %s does not exist" % (v["name"], ref))
            if "secret" in v:
                secret_refs.add(v["secret"]["secretName"])

    for cm in config_maps.values():
        for k, v in (cm.get("data") or {}).items():
            if SECRETISH.search(k) and not k.endswith("_FILE"):
                c.fail(cm, "key %s looks secret: put it in a Secret" % k)
            if re.search(r"://[^/@\s]*:[^/@\s]+@", str(v)):
                c.fail(cm, "key %s carries a password in a URL" % k)

    templates = [(o, pod) for o, pod in pod_specs(objs)]
    for svc in by_kind.get("Service", {}).values():
        sel = svc["spec"].get("selector")
        targets = [(o, pod) for o, pod in templates if matches(sel, pod["metadata"].get("labels") or {})]
        if not targets:
            c.fail(svc, "selects no workload")
        for p in svc["spec"].get("ports", []):
            tp = p.get("targetPort", p.get("port"))
            for o, pod in targets:
                ports = [q for ct in pod["spec"]["containers"] for q in ct.get("ports", [])]
                if not any(q.get("name") == tp or q.get("containerPort") == tp for q in ports):
                    c.fail(svc, "targetPort %r is not a port of %s" % (tp, o["metadata"]["name"]))
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not any(matches(sel, pod["metadata"].get("labels") or {}) for _, pod in templates):
            c.fail(pdb, "selects no workload")
        if ("minAvailable" in pdb["spec"]) == ("maxUnavailable" in pdb["spec"]):
            c.fail(pdb, "needs exactly one of minAvailable and maxUnavailable")
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            c.fail(hpa, "scaleTargetRef %s/%s does not exist" % (ref["kind"], ref["name"]))
        names = [m.get("external", {}).get("metric", {}).get("name") for m in hpa["spec"].get("metrics", [])]
        if "pushgw_queue_depth" not in names:
            c.fail(hpa, "does not scale on pushgw_queue_depth")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            c.fail(hpa, "minReplicas > maxReplicas")
    workloads_with_pdb = set()
    for o, pod in templates:
        for pdb in by_kind.get("PodDisruptionBudget", {}).values():
            if matches(pdb["spec"]["selector"]["matchLabels"], pod["metadata"].get("labels") or {}):
                workloads_with_pdb.add(o["metadata"]["name"])
        if o["metadata"]["name"] not in workloads_with_pdb:
            c.fail(o, "no PodDisruptionBudget")

    for sm in by_kind.get("ServiceMonitor", {}).values():
        sel = sm["spec"]["selector"]["matchLabels"]
        job_label = sm["spec"].get("jobLabel")
        svcs = [s for s in by_kind.get("Service", {}).values() if matches(sel, s["metadata"].get("labels") or {})]
        jobs = {(s["metadata"].get("labels") or {}).get(job_label) for s in svcs}
        if jobs != JOB_NAMES:
            c.fail(sm, "scrapes jobs %s; alerts.yml and the dashboard need %s" % (sorted(map(str, jobs)), sorted(JOB_NAMES)))
        for ep in sm["spec"]["endpoints"]:
            for s in svcs:
                if ep["port"] not in [p.get("name") for p in s["spec"]["ports"]]:
                    c.fail(sm, "Service %s has no port %s" % (s["metadata"]["name"], ep["port"]))
    rules = by_kind.get("PrometheusRule", {})
    if not rules:
        c.errors.append("%s: no PrometheusRule" % name)
    for pr in rules.values():
        if pr["spec"].get("groups") != alerts_groups:
            c.fail(pr, "spec.groups differ from deploy/monitoring/alerts.yml (run k8s/render-prometheusrule.sh)")
    images = {ct["image"] for _, pod in templates for ct in pod["spec"]["containers"]
              if " ".join(ct.get("command") or []).endswith(tuple("/" + b for b in SIPWAKE_PROBES))}
    if len(images) != 1:
        c.errors.append("%s: registrar and pushgw must run the one sipwake image, found %s" % (name, sorted(images)))
    for required in ("StatefulSet", "Deployment", "HorizontalPodAutoscaler", "ServiceMonitor"):
        if required not in by_kind:
            c.errors.append("%s: no %s" % (name, required))
    return c, sorted(secret_refs - set(by_kind.get("Secret", {}))), objs


def main(argv):
    alerts = yaml.safe_load(open(argv[1]))
    known_vars = config_vars()
    failed = False
    for path in argv[2:]:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
        c, external_secrets, objs = check_set(os.path.basename(path), docs, alerts["groups"], known_vars)
        for e in c.errors:
            print("ERROR " + e)
        failed |= bool(c.errors)
        print("%s: %d objects, %s; Secrets to create beforehand: %s" % (
            os.path.basename(path), len(objs), "OK" if not c.errors else "%d errors" % len(c.errors),
            ", ".join(external_secrets) or "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
