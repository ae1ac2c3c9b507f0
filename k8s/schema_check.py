#!/usr/bin/python3
"""Schema validation of rendered manifests against the Kubernetes API types of
Debian's python3-kubernetes (the official client, API 1.22): every field name
must exist in its type, values must have the type's shape (object, list, map,
string, integer, boolean), and fields the API requires must be there.

Usage: schema_check.py RENDERED.yaml...

autoscaling/v2 objects are checked against autoscaling/v2beta2, the same schema
before it went GA in 1.23 (the client predates it). Kinds the client has no
type for (the Prometheus Operator's ServiceMonitor and PrometheusRule) are
left to check_manifests.py.
"""
import sys

import yaml
from kubernetes import client as kc

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}
NO_MODEL = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
_required = {}


def required_fields(model):
    """Attributes whose setter refuses None: what the API requires."""
    if model not in _required:
        cls = getattr(kc, model)
        obj = object.__new__(cls)
        obj.local_vars_configuration = kc.Configuration()
        req = set()
        for attr in cls.openapi_types:
            try:
                setattr(obj, attr, None)
            except ValueError:
                req.add(attr)
        _required[model] = req
    return _required[model]


def check(value, typ, path, errors):
    if typ.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check(item, typ[5:-1], f"{path}[{i}]", errors)
    elif typ.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        inner = typ[5:-1].split(", ", 1)[1]
        for k, v in value.items():
            check(v, inner, f"{path}.{k}", errors)
    elif typ == "str" or typ in ("datetime", "date"):
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif typ == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true or false, got {value!r}")
    elif typ == "object":
        pass  # IntOrString and free-form values
    else:
        cls = getattr(kc, typ, None)
        if cls is None:
            errors.append(f"{path}: unknown type {typ}")
            return
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({typ})")
            return
        by_json = {j: a for a, j in cls.attribute_map.items()}
        for key, v in value.items():
            attr = by_json.get(key)
            if attr is None:
                errors.append(f"{path}.{key}: no such field in {typ}")
            elif v is not None:
                check(v, cls.openapi_types[attr], f"{path}.{key}", errors)
        for attr in required_fields(typ):
            if value.get(cls.attribute_map[attr]) is None:
                errors.append(f"{path}.{cls.attribute_map[attr]}: required by {typ}")


def main(paths):
    failed = False
    for path in paths:
        errors, checked, skipped = [], 0, []
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            if key in NO_MODEL:
                skipped.append(name)
                continue
            model = MODELS.get(key)
            if model is None:
                errors.append(f"{name}: no schema for {key[0]} {key[1]}")
                continue
            check(doc, model, name, errors)
            checked += 1
        for e in errors:
            print(f"ERROR {path}: {e}")
        failed |= bool(errors)
        print(f"schema: {path.rsplit('/', 1)[-1]}: {checked} objects against the API 1.22 types, "
              f"{'OK' if not errors else f'{len(errors)} errors'}; no schema here for {', '.join(skipped)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
