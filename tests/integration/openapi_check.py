#!/usr/bin/env python3
"""Checks registrar/api/openapi.yaml against a running registrar.

usage: openapi_check.py OPENAPI_YAML REGISTRAR_BINARY
environment: SIPWAKE_URL, SIPWAKE_API_KEY (tenant), SIPWAKE_ADMIN_KEY,
             SIPWAKE_PBX_PORT (substituted for ${PBX_PORT} in examples)

1. The documented paths and methods are exactly the served ones
   (`REGISTRAR_BINARY --routes`), with the documented security matching each
   route's authentication.
2. Every operation's `x-checks` requests (documented examples) are sent in
   step order; each answer must have the expected status, that status must be
   documented, and the body must validate against the documented schema.
3. Every documented status of every operation is seen at least once, or is
   listed in the operation's `x-unchecked` with a reason.
Prints what it checked; exits 1 on the first list of problems.
Needs python3-yaml and python3-jsonschema (Debian packages).
"""

import copy
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        node = spec
        for p in parts:
            node = node[p]
    return node


def to_json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes a null type."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "format")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def security_of(spec, op):
    sec = op.get("security", spec.get("security", []))
    names = {name for req in sec for name in req}
    if not names:
        return "none"
    if names == {"adminKey"}:
        return "admin"
    if names == {"tenantKey"}:
        return "tenant"
    return "?" + ",".join(sorted(names))


def served_routes(binary):
    out = subprocess.run([binary, "--routes"], check=True, capture_output=True, text=True).stdout
    routes = {}
    for line in out.splitlines():
        method, path, auth = line.split()
        routes[(method.upper(), path)] = auth
    return routes


def substitute(value, variables):
    if isinstance(value, str):
        for k, v in variables.items():
            value = value.replace("${" + k + "}", v)
        return value
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def request(base, method, path, key, body, content_type):
    headers = {}
    if key:
        headers["Authorization"] = "Bearer " + key
    if body is not None:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # RefResolver in newer jsonschema
    spec_path, binary = sys.argv[1], sys.argv[2]
    spec = load(spec_path)
    base = os.environ["SIPWAKE_URL"].rstrip("/")
    keys = {
        "tenant": os.environ["SIPWAKE_API_KEY"],
        "admin": os.environ["SIPWAKE_ADMIN_KEY"],
        "none": None,
        "wrong": "not-a-key-of-anyone-00000000",
    }
    variables = {"PBX_PORT": os.environ.get("SIPWAKE_PBX_PORT", "5060")}
    problems = []

    # 1. Documented == served, with matching security.
    served = served_routes(binary)
    documented = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                documented[(method.upper(), path)] = security_of(spec, item[method])
    for route in sorted(set(served) - set(documented)):
        problems.append(f"served but not documented: {route[0]} {route[1]}")
    for route in sorted(set(documented) - set(served)):
        problems.append(f"documented but not served: {route[0]} {route[1]}")
    for route in sorted(set(served) & set(documented)):
        if served[route] != documented[route]:
            problems.append(f"{route[0]} {route[1]}: served with {served[route]} auth, documented as {documented[route]}")
    if problems:
        print("\n".join(problems))
        return 1

    # 2. Every example request, in step order.
    cases = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            checks = op.get("x-checks")
            if not checks:
                problems.append(f"{method.upper()} {path}: no x-checks")
                continue
            for check in checks:
                cases.append((check["step"], method.upper(), path, op, check))
    cases.sort(key=lambda c: c[0])
    seen = {}
    validator_cls = jsonschema.Draft7Validator
    for step, method, path, op, check in cases:
        target = path
        for name, value in check.get("params", {}).items():
            target = target.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        if "{" in target:
            problems.append(f"{method} {path}: step {step} leaves a path parameter unfilled")
            continue
        if check.get("query"):
            target += "?" + urllib.parse.urlencode(check["query"])
        body = None
        content_type = check.get("content_type", "application/json")
        if "example" in check:
            examples = op["requestBody"]["content"]["application/json"]["examples"]
            body = json.dumps(substitute(resolve(spec, examples[check["example"]])["value"], variables)).encode()
            # The example must match the documented request schema (unless it
            # exists to show a refusal).
            if check["status"] < 300:
                schema = to_json_schema(resolve(spec, op["requestBody"]["content"]["application/json"]["schema"]))
                errors = list(validator_cls(schema, resolver=jsonschema.RefResolver.from_schema(to_json_schema(spec))).iter_errors(json.loads(body)))
                if errors:
                    problems.append(f"{method} {path} example {check['example']}: not valid for its schema: {errors[0].message}")
        elif "raw_body" in check:
            body = check["raw_body"].encode()
        elif "raw_body_bytes" in check:
            body = b" " * int(check["raw_body_bytes"])
        status, headers, raw = request(base, method, target, keys[check["auth"]], body, content_type)
        label = f"{method} {target} (step {step}, {check['auth']} key)"
        if status != check["status"]:
            problems.append(f"{label}: answered {status}, expected {check['status']}: {raw[:200]!r}")
            continue
        responses = op["responses"]
        doc = responses.get(str(status))
        if doc is None:
            problems.append(f"{label}: status {status} is not documented")
            continue
        seen.setdefault((method, path), set()).add(str(status))
        doc = resolve(spec, doc)
        content = doc.get("content")
        if not content:
            if raw:
                problems.append(f"{label}: documented without a body, answered {raw[:100]!r}")
            continue
        answered_type = headers.get("Content-Type", "").split(";")[0].strip()
        if answered_type not in content:
            problems.append(f"{label}: answered {answered_type}, documented {sorted(content)}")
            continue
        if answered_type == "application/json":
            try:
                value = json.loads(raw)
            except ValueError:
                problems.append(f"{label}: body is not JSON: {raw[:100]!r}")
                continue
            schema = to_json_schema(resolve(spec, content[answered_type]["schema"]))
            resolver = jsonschema.RefResolver.from_schema(to_json_schema(spec))
            errors = list(validator_cls(schema, resolver=resolver).iter_errors(value))
            for e in errors[:3]:
                problems.append(f"{label}: body does not match the schema at {list(e.absolute_path)}: {e.message}")
        for header in doc.get("headers", {}):
            if header not in headers and header.lower() not in {h.lower() for h in headers}:
                problems.append(f"{label}: documented header {header} missing")

    # 3. Every documented status seen, or excused.
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            excused = {str(k) for k in op.get("x-unchecked", {})}
            for status in op["responses"]:
                if str(status) not in seen.get((method.upper(), path), set()) and str(status) not in excused:
                    problems.append(f"{method.upper()} {path}: documented {status} never checked (add an x-checks request or an x-unchecked reason)")
            for status in excused:
                if status not in {str(s) for s in op["responses"]}:
                    problems.append(f"{method.upper()} {path}: x-unchecked {status} is not a documented response")

    if problems:
        print("\n".join(problems))
        return 1
    n_ops = len(documented)
    print(f"checked {len(served)} served routes = {n_ops} documented operations, {len(cases)} requests, "
          f"{sum(len(s) for s in seen.values())} (operation, status) pairs seen")
    return 0


if __name__ == "__main__":
    sys.exit(main())
