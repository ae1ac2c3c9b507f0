#!/usr/bin/env python3
"""Scale-out benchmark: how bindings spread over registrar instances, and how
long the cluster takes to move them when an instance joins or dies.

Two registrars share N bindings (one Redis, Kamailio as the PBX). Then:
  - join: a third instance starts; we time until it holds its fair share of
    shards and has registered every binding of them from its own Contact;
  - death: that instance is killed with SIGKILL; we time until the survivors
    have registered every one of its bindings (the lease TTL is part of it).
It prints bindings per instance after each step and both times.

Everything runs on 127.0.0.1. Usage:
  bench/cluster_bench.py [--bindings 100000] [--lease-ttl 10] [--rate 4000]
Builds its own Release tree in build-bench/ (see registration_bench.py).
"""

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registration_bench import (ROOT, Kamailio, Registrar, free_port, load_bindings,  # noqa: E402
                                wait_until)


def registered(instances):
    return {r.name: int(r.registered()) for r in instances}


def requests_ok(r):
    return r.metric("registrar_register_requests_total", 'result="ok"')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bindings", type=int, default=100000)
    parser.add_argument("--lease-ttl", type=int, default=10, help="seconds")
    parser.add_argument("--rate", type=int, default=4000, help="REGISTERs/s cap per PBX per instance")
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--expires", type=int, default=3600)
    args = parser.parse_args()

    subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build-bench"), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", os.path.join(ROOT, "build-bench"), "--target", "registrar"],
                   check=True, stdout=subprocess.DEVNULL)

    n = args.bindings
    workdir = tempfile.mkdtemp(prefix="sipwake-cluster-bench-")
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", workdir],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    keys = os.path.join(workdir, "credential_keys")
    with open(keys, "w") as f:
        f.write("k1 " + base64.b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(keys, 0o600)
    pbx = Kamailio("pbx.cfg", workdir, "pbx", max(512, n // 50 + 256))
    env = {"REGISTRAR_LEASE_TTL": f"{args.lease_ttl}s", "REGISTRAR_HANDOVER_TIMEOUT": "60s"}
    instances = []

    def new_instance(name):
        r = Registrar(workdir, redis_url, args.rate, args.max_in_flight, name=name, keys=keys, extra_env=env)
        r.name = name
        return r

    try:
        pbx.start()
        a, b = new_instance("a"), new_instance("b")
        for r in (a, b):
            r.start()
            instances.append(r)
        time.sleep(args.lease_ttl / 3 + 1)  # let the two settle their shares
        t = time.time()
        load_bindings(a, n, pbx.port, args.expires, "udp")
        put_s = time.time() - t
        if not wait_until(lambda: sum(registered(instances).values()) >= n, 900, 0.5):
            raise RuntimeError(f"only {registered(instances)} of {n} registered")
        print(f"{n} bindings PUT in {put_s:.1f} s ({n / put_s:.0f}/s); registered by: {registered(instances)}")

        # Join: c takes a fair share. Done when c has registered as many
        # bindings as it holds and the others hold the rest.
        c = new_instance("c")
        ok_before = {r.name: requests_ok(r) for r in instances}
        t = time.time()
        c.start()
        instances.append(c)

        def joined():
            counts = registered(instances)
            return counts["c"] > 0 and sum(counts.values()) == n and requests_ok(c) >= counts["c"]
        if not wait_until(joined, 900, 0.2):
            raise RuntimeError(f"join did not settle: {registered(instances)}")
        join_s = time.time() - t
        counts = registered(instances)
        print(f"join: instance c registered its {counts['c']} bindings {join_s:.1f} s after it started; "
              f"per instance: {counts} (largest share {max(counts.values()) / n:.0%})")
        del ok_before

        # Death: kill -9 c; the survivors register its bindings once its leases ran out.
        moving = counts["c"]
        survivors = [a, b]
        ok0 = sum(requests_ok(r) for r in survivors)
        t = time.time()
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        instances.remove(c)
        if not wait_until(lambda: sum(registered(survivors).values()) >= n and
                          sum(requests_ok(r) for r in survivors) - ok0 >= moving, 900, 0.2):
            raise RuntimeError(f"takeover did not finish: {registered(survivors)}")
        death_s = time.time() - t
        print(f"death: {moving} bindings of the killed instance registered by survivors {death_s:.1f} s after "
              f"SIGKILL (lease TTL {args.lease_ttl} s, so {max(death_s - args.lease_ttl, 0):.1f} s after the "
              f"lease ran out); per instance: {registered(survivors)}")
    finally:
        for r in instances:
            r.stop()
        pbx.stop()
        redis.terminate()
        redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
