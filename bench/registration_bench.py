#!/usr/bin/env python3
"""Registration load benchmark: sipwake's registrar against a local Kamailio PBX,
and Kamailio's uac_reg (the open-source peer that registers on users' behalf)
against the same PBX, in the same run.

For each N it prints:
  - time to register all N from a cold start (registrar restarted on a full Redis),
    and the highest REGISTER rate the PBX saw in any one second (vs the configured cap);
  - resident memory per binding (RSS of the process with N bindings minus with none;
    for the multi-process peer, the PSS of all its processes);
  - CPU seconds per 1,000 successful refreshes over a steady window.

With --memory-steps 1000,5000,10000 it measures memory against N instead:
one registrar gets its bindings step by step (RSS at 0 and after each step,
once all are registered), and uac_reg is started with each N (PSS of all its
processes, and with none).

Everything runs on 127.0.0.1. Usage:
  bench/registration_bench.py [--sizes 1000,10000,100000] [--window 60] [--rate 4000]
  bench/registration_bench.py --memory-steps 1000,5000,10000 [--json out.json]
Builds its own Release tree in build-bench/. Needs redis-server, kamailio, kamcmd.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_KEY = "bench-key-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    while True:
        port = random.randint(20000, 60000)
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port


def wait_until(pred, timeout, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def cpu_seconds(pids):
    """Exact on-CPU time of every thread of these processes (schedstat, ns).
    /proc/<pid>/stat's utime is sampled at the tick and misjudges processes
    that run in short bursts, which is exactly what SIP workers do."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def process_group(pid):
    """The pid and every descendant (Kamailio forks its workers)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    result, todo = [], [pid]
    while todo:
        p = todo.pop()
        result.append(p)
        todo.extend(children.get(p, []))
    return result


class Kamailio:
    def __init__(self, template, workdir, name, shm_mb, port=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        with open(os.path.join(ROOT, "bench", "kamailio", template)) as f:
            cfg = f.read().replace("@PORT@", str(self.port)).replace("@RUNDIR@", self.dir)
        self.cfg = os.path.join(self.dir, "kamailio.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.shm_mb = shm_mb
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "kamailio.log"), "a")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", self.cfg, "-DD", "-E", "-m", str(self.shm_mb), "-M", "64",
             "-Y", self.dir, "-w", self.dir, "-P", os.path.join(self.dir, "pid")],
            stdout=log, stderr=log, start_new_session=True)
        if not wait_until(lambda: self.kamcmd("core.version") is not None, 20):
            raise RuntimeError(f"kamailio {self.dir} did not start")

    def kamcmd(self, *args):
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.dir}/ctl", *args],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or r.stdout.startswith("error"):
            return None
        return r.stdout

    def stat(self, name):
        # kamcmd answers "group:name = N" when asked for the bare name only.
        out = self.kamcmd("stats.get_statistics", name.split(":")[-1]) or ""
        for line in out.splitlines():
            if "=" in line:
                return int(line.split("=")[1].strip())
        return 0

    def pids(self):
        return process_group(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Registrar:
    def __init__(self, workdir, redis_url, rate, max_in_flight, name="bench", keys=None, extra_env=None):
        self.dir = os.path.join(workdir, "registrar" if name == "bench" else name)
        os.makedirs(self.dir, exist_ok=True)
        if keys is None:  # instances of one cluster share one key file
            keys = os.path.join(self.dir, "keys")
            with open(keys, "w") as f:
                f.write("k1 " + __import__("base64").b64encode(os.urandom(32)).decode() + "\n")
            os.chmod(keys, 0o600)
        api_keys = os.path.join(self.dir, "api_keys")
        with open(api_keys, "w") as f:
            f.write(f"bench {API_KEY}\n")
        self.api_port, self.metrics_port, self.sip_port = free_port(), free_port(), free_port()
        self.env = dict(os.environ,
                        REGISTRAR_INSTANCE=name,
                        REGISTRAR_REDIS_URL=redis_url,
                        REGISTRAR_API_LISTEN=f"127.0.0.1:{self.api_port}",
                        REGISTRAR_METRICS_LISTEN=f"127.0.0.1:{self.metrics_port}",
                        REGISTRAR_SIP_LISTEN=f"127.0.0.1:{self.sip_port}",
                        REGISTRAR_API_KEYS_FILE=api_keys,
                        REGISTRAR_CREDENTIAL_KEYS_FILE=keys,
                        REGISTRAR_LOG_LEVEL="warn",
                        REGISTRAR_REGISTRATION_RATE_PER_TARGET=str(rate),
                        REGISTRAR_REGISTRATION_RATE_GLOBAL=str(max(rate, 5000)),
                        REGISTRAR_TARGET_ALLOW="127.0.0.0/8",
                        REGISTRAR_API_RATE_PER_KEY="1000000",
                        REGISTRAR_API_RATE_BURST="1000000",
                        REGISTRAR_REGISTRATION_MAX_IN_FLIGHT_PER_TARGET=str(max_in_flight),
                        **(extra_env or {}))
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "registrar.log"), "a")
        env = dict(self.env)
        if os.environ.get("SIPWAKE_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["SIPWAKE_PRELOAD"]
        self.proc = subprocess.Popen([os.path.join(ROOT, "build-bench", "registrar")], env=env,
                                     stdout=log, stderr=log)
        if not wait_until(lambda: self.ready(), 60):
            raise RuntimeError("registrar did not become ready")

    def ready(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=2)
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def metric(self, name, label=""):
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        c.request("GET", "/metrics")
        total = 0.0
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith(name) and (not label or label in line):
                rest = line[len(name):]
                if rest[:1] in ("{", " "):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def registered(self):
        return self.metric("registrar_bindings", 'state="registered"')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def load_bindings(registrar, n, pbx_port, expires, transport, connections=4, first=0):
    """PUTs bindings first..n-1 through the API, on a few keep-alive connections."""
    def worker(start, step):
        c = http.client.HTTPConnection("127.0.0.1", registrar.api_port, timeout=30)
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        for i in range(first + start, n, step):
            user = str(100000 + i)
            body = json.dumps({
                "aor": f"sip:{user}@127.0.0.1",
                "auth": {"username": user, "password": f"pw-{user}"},
                "registrar": f"sip:127.0.0.1:{pbx_port};transport={transport}",
                "expires": expires,
                "devices": [{"id": "d", "provider": "fcm", "token": f"tok{user}", "app": "bench"}]})
            c.request("PUT", f"/v1/bindings/b{user}", body, headers)
            r = c.getresponse()
            r.read()
            if r.status not in (200, 201):
                raise RuntimeError(f"PUT failed: {r.status}")
    threads = [threading.Thread(target=worker, args=(k, connections)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class RateSampler:
    """Samples the PBX's REGISTER counter every second: the highest rate seen."""
    def __init__(self, pbx):
        self.pbx, self.max_rate, self.stop_flag = pbx, 0, False
        self.thread = threading.Thread(target=self.run)

    def run(self):
        last = self.pbx.stat("core:rcv_requests_register")
        t0 = time.time()
        while not self.stop_flag:
            time.sleep(1.0)
            now = self.pbx.stat("core:rcv_requests_register")
            t1 = time.time()
            self.max_rate = max(self.max_rate, (now - last) / (t1 - t0))
            last, t0 = now, t1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop_flag = True
        self.thread.join()


def start_redis(workdir):
    redis_dir = os.path.join(workdir, "redis")
    os.makedirs(redis_dir, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", redis_dir],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    return proc, port


def bench_ours(n, args, workdir):
    redis, redis_port = start_redis(workdir)
    pbx = Kamailio("pbx.cfg", workdir, "pbx", max(512, n // 100 + 256))
    registrar = Registrar(workdir, f"redis://127.0.0.1:{redis_port}/0", args.rate, args.max_in_flight)
    try:
        pbx.start()
        registrar.start()
        time.sleep(1)
        rss0 = rss_bytes(registrar.proc.pid)
        t = time.time()
        load_bindings(registrar, n, pbx.port, args.expires, args.transport)
        put_s = time.time() - t
        if not wait_until(lambda: registrar.registered() >= n, 600, 0.5):
            raise RuntimeError(f"only {registrar.registered()} of {n} registered")
        # Cold start: a new process on the full Redis re-REGISTERs every binding
        # (persisted state alone would show them registered at once).
        registrar.stop()
        with RateSampler(pbx) as rates:
            t = time.time()
            registrar.start()
            ok = wait_until(lambda: registrar.metric("registrar_register_requests_total",
                                                     'result="ok"') >= n, 600, 0.1)
            cold_s = time.time() - t
        if not ok:
            raise RuntimeError("cold start did not finish")
        # Let refresh times spread, then measure a steady window.
        time.sleep(min(args.expires, 30))
        ok0 = registrar.metric("registrar_register_requests_total", 'result="ok"')
        regs0 = pbx.stat("core:rcv_requests_register")
        cpu0 = cpu_seconds([registrar.proc.pid])
        time.sleep(args.window)
        cpu1 = cpu_seconds([registrar.proc.pid])
        ok1 = registrar.metric("registrar_register_requests_total", 'result="ok"')
        regs1 = pbx.stat("core:rcv_requests_register")
        rss = rss_bytes(registrar.proc.pid)
        refreshes = ok1 - ok0
        return {
            "n": n, "put_s": put_s, "cold_s": cold_s, "max_rate": rates.max_rate,
            "rss_per_binding": (rss - rss0) / n, "rss_mb": rss / 1e6,
            "refreshes": refreshes, "registers_per_refresh": (regs1 - regs0) / max(refreshes, 1),
            "cpu_per_1000": 1000 * (cpu1 - cpu0) / max(refreshes, 1),
            "us_per_refresh": 1e6 * (cpu1 - cpu0) / max(refreshes, 1),
        }
    finally:
        registrar.stop()
        pbx.stop()
        redis.terminate()
        redis.wait()


def memory_ours(steps, args, workdir, settle=3):
    """RSS of one registrar at 0 bindings and after each step, all registered."""
    redis, redis_port = start_redis(workdir)
    pbx = Kamailio("pbx.cfg", workdir, "pbx-mem", max(512, steps[-1] // 100 + 256))
    registrar = Registrar(workdir, f"redis://127.0.0.1:{redis_port}/0", args.rate, args.max_in_flight)
    try:
        pbx.start()
        registrar.start()
        time.sleep(settle)
        points = [{"n": 0, "bytes": rss_bytes(registrar.proc.pid)}]
        loaded = 0
        for n in steps:
            load_bindings(registrar, n, pbx.port, args.expires, args.transport, first=loaded)
            loaded = n
            if not wait_until(lambda: registrar.registered() >= n, 600, 0.5):
                raise RuntimeError(f"only {registrar.registered()} of {n} registered")
            time.sleep(settle)
            points.append({"n": n, "bytes": rss_bytes(registrar.proc.pid)})
        return points
    finally:
        registrar.stop()
        pbx.stop()
        redis.terminate()
        redis.wait()


def memory_peer(steps, args, workdir, settle=3):
    """PSS of all uac_reg processes started with 0 and with each N accounts
    (a fresh PBX each time, so every account registers anew)."""
    points = []
    for n in [0] + steps:
        pbx = Kamailio("pbx.cfg", workdir, f"pbx-peer-mem-{n}", max(512, n // 100 + 256))
        uac = Kamailio("uac_client.cfg", workdir, f"uac-mem-{n}", max(512, n // 20 + 256))
        try:
            pbx.start()
            write_uacreg(os.path.join(uac.dir, "db"), n, pbx.port, args.expires)
            uac.start()
            if not wait_until(lambda: pbx.stat("usrloc:registered_users") >= n, 900, 0.5):
                raise RuntimeError(f"uac_reg registered only {pbx.stat('usrloc:registered_users')} of {n}")
            time.sleep(settle)
            points.append({"n": n, "bytes": pss_bytes(uac.pids())})
        finally:
            uac.stop()
            pbx.stop()
    return points


def memory_main(args):
    steps = sorted({int(x) for x in args.memory_steps.split(",") if int(x) > 0})
    workdir = tempfile.mkdtemp(prefix="sipwake-bench-mem-")
    try:
        result = {"sipwake": memory_ours(steps, args, workdir),
                  "uac_reg": None if args.skip_peer else memory_peer(steps, args, workdir)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| N | sipwake RSS MB | sipwake B/binding | uac_reg PSS MB | uac_reg B/binding |")
    print("|---|---|---|---|---|")
    ours, peer = result["sipwake"], result["uac_reg"] or []
    for i, o in enumerate(ours):
        per = (o["bytes"] - ours[0]["bytes"]) / o["n"] if o["n"] else 0
        row = f"| {o['n']} | {o['bytes'] / 1e6:.1f} | {per:.0f} | "
        if i < len(peer):
            p = peer[i]
            pper = (p["bytes"] - peer[0]["bytes"]) / p["n"] if p["n"] else 0
            row += f"{p['bytes'] / 1e6:.1f} | {pper:.0f} |"
        else:
            row += "- | - |"
        print(row, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def write_uacreg(db_dir, n, pbx_port, expires):
    os.makedirs(db_dir, exist_ok=True)
    with open(os.path.join(db_dir, "version"), "w") as f:
        f.write("table_name(string) table_version(int)\nuacreg:5\n")
    with open(os.path.join(db_dir, "uacreg"), "w") as f:
        f.write("id(int,auto) l_uuid(string) l_username(string) l_domain(string) "
                "r_username(string) r_domain(string) realm(string,null) auth_username(string) "
                "auth_password(string) auth_ha1(string,null) auth_proxy(string) expires(int) "
                "flags(int) reg_delay(int) contact_addr(string,null) socket(string,null)\n")
        for i in range(n):
            user = str(100000 + i)
            f.write(f"{i + 1}:u{user}:{user}:127.0.0.1:{user}:127.0.0.1::{user}:pw-{user}::"
                    f"sip\\:127.0.0.1\\:{pbx_port}:{expires}:0:0::\n")


def bench_peer(n, args, workdir):
    pbx = Kamailio("pbx.cfg", workdir, "pbx-peer", max(512, n // 100 + 256))
    base = Kamailio("uac_client.cfg", workdir, "uac-empty", max(512, n // 20 + 256))
    uac = Kamailio("uac_client.cfg", workdir, "uac", max(512, n // 20 + 256))
    try:
        pbx.start()
        with open(base.cfg) as f:  # point both clients at this PBX's port
            pass
        write_uacreg(os.path.join(base.dir, "db"), 0, pbx.port, args.expires)
        base.start()
        time.sleep(2)
        pss0 = pss_bytes(base.pids())
        base.stop()
        write_uacreg(os.path.join(uac.dir, "db"), n, pbx.port, args.expires)
        with RateSampler(pbx) as rates:
            t = time.time()
            uac.start()
            ok = wait_until(lambda: pbx.stat("usrloc:registered_users") >= n, 900, 0.5)
            cold_s = time.time() - t
        if not ok:
            raise RuntimeError(f"uac_reg registered only {pbx.stat('usrloc:registered_users')} of {n}")
        time.sleep(min(args.expires, 30))
        acc0 = pbx.stat("registrar:accepted_regs")
        regs0 = pbx.stat("core:rcv_requests_register")
        cpu0 = cpu_seconds(uac.pids())
        time.sleep(args.window)
        cpu1 = cpu_seconds(uac.pids())
        acc1 = pbx.stat("registrar:accepted_regs")
        regs1 = pbx.stat("core:rcv_requests_register")
        pss = pss_bytes(uac.pids())
        refreshes = acc1 - acc0
        return {
            "n": n, "cold_s": cold_s, "max_rate": rates.max_rate,
            "rss_per_binding": (pss - pss0) / n, "rss_mb": pss / 1e6,
            "refreshes": refreshes, "registers_per_refresh": (regs1 - regs0) / max(refreshes, 1),
            "cpu_per_1000": 1000 * (cpu1 - cpu0) / max(refreshes, 1),
            "us_per_refresh": 1e6 * (cpu1 - cpu0) / max(refreshes, 1),
        }
    finally:
        uac.stop()
        base.stop()
        pbx.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--expires", type=int, default=60, help="seconds asked for (refresh load)")
    p.add_argument("--window", type=int, default=60, help="steady window for CPU, seconds")
    p.add_argument("--rate", type=int, default=4000, help="REGISTER/s cap toward the PBX")
    p.add_argument("--max-in-flight", type=int, default=200)
    p.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--memory-steps", help="measure memory at these N (one registrar, growing)")
    args = p.parse_args()
    # An optimised build of its own, whatever build/ is configured as.
    subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build-bench"), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", os.path.join(ROOT, "build-bench"), "--target", "registrar"],
                   check=True, stdout=subprocess.DEVNULL)
    if args.memory_steps:
        memory_main(args)
        return
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        workdir = tempfile.mkdtemp(prefix=f"sipwake-bench-{n}-")
        try:
            ours = bench_ours(n, args, workdir)
            print(f"sipwake  N={n}: cold start {ours['cold_s']:.1f} s (max {ours['max_rate']:.0f} "
                  f"REGISTER/s, cap {args.rate}), {ours['rss_per_binding']:.0f} B/binding, "
                  f"{ours['us_per_refresh']:.1f} us CPU/refresh "
                  f"({ours['registers_per_refresh']:.2f} REGISTER/refresh)", flush=True)
            peer = None if args.skip_peer else bench_peer(n, args, workdir)
            if peer:
                print(f"uac_reg  N={n}: all registered in {peer['cold_s']:.1f} s (max "
                      f"{peer['max_rate']:.0f} REGISTER/s), {peer['rss_per_binding']:.0f} B/binding "
                      f"(PSS), {peer['us_per_refresh']:.1f} us CPU/refresh "
                      f"({peer['registers_per_refresh']:.2f} REGISTER/refresh)", flush=True)
            results.append({"n": n, "sipwake": ours, "uac_reg": peer})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\n| N | sipwake cold start | max REG/s (cap) | sipwake B/binding | uac_reg B/binding "
          "| sipwake us/refresh | uac_reg us/refresh | CPU ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        o, u = r["sipwake"], r["uac_reg"]
        ratio = f"{o['us_per_refresh'] / u['us_per_refresh']:.2f}" if u and u["us_per_refresh"] else "-"
        print(f"| {r['n']} | {o['cold_s']:.1f} s | {o['max_rate']:.0f} ({args.rate}) | "
              f"{o['rss_per_binding']:.0f} | {u['rss_per_binding']:.0f} | " if u else
              f"| {r['n']} | {o['cold_s']:.1f} s | {o['max_rate']:.0f} ({args.rate}) | "
              f"{o['rss_per_binding']:.0f} | - | ", end="")
        print(f"{o['us_per_refresh']:.1f} | {u['us_per_refresh']:.1f} | {ratio} |" if u else
              f"{o['us_per_refresh']:.1f} | - | - |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
