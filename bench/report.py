#!/usr/bin/env python3
"""Writes REPORT.md and its gnuplot PNGs from the raw results bench/report.sh
collected in one directory:

  registration.json   bench/registration_bench.py --json (N, cold start, memory, CPU)
  memory.json         bench/registration_bench.py --memory-steps --json
  samples/latency-<series>-<rate>.txt, samples/throughput.txt   call_bench (BENCH_SAMPLES_DIR)
  meta.txt            "key value" lines about the sitting (machine, knobs, times)
  logs/*.txt          each benchmark's own output

Usage: bench/report.py DIR   (missing inputs give a section saying so, not an error)
"""
import glob
import json
import os
import re
import subprocess
import sys

SERIES = [  # file series, label
    ("invite-push", "sipwake INVITE -> push received"),
    ("invite-180", "sipwake INVITE -> first 180"),
    ("bare-180", "bare UA INVITE -> first 180 (floor)"),
]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_pairs(path):
    pairs = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if k:
                    pairs[k] = v
    except OSError:
        pass
    return pairs


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def gnuplot(script, workdir):
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=workdir,
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("gnuplot failed: " + r.stderr)


PNG = "set terminal pngcairo noenhanced size 900,540 font 'sans,11'\nset grid\nset key left top\n"


def latency_section(d, md):
    files = glob.glob(os.path.join(d, "samples", "latency-*-*.txt"))
    rates = sorted({int(re.search(r"-(\d+)\.txt$", f).group(1)) for f in files})
    md.append("## Incoming calls: INVITE -> push and INVITE -> 180\n")
    if not rates:
        md.append("_No latency samples (call_bench [latency] did not run or failed: see logs/latency.txt)._\n")
        return
    md.append("Through Kamailio on loopback, 20 bindings with one APNs device each, calls at a fixed "
              "rate (`call_bench \"[latency]\"`). *INVITE -> push received*: caller sends the INVITE "
              "until the local APNs-like HTTP/2 server has the push (one clock). *INVITE -> first "
              "180*: until the caller gets the first 180. The bare UA, registered at the same PBX, "
              "answers 180 at once: the floor of any UA behind that PBX. Milliseconds.\n")
    md.append("| series | calls/s | samples | p50 | p90 | p99 | max |")
    md.append("|---|---|---|---|---|---|---|")
    for rate in rates:
        for series, label in SERIES:
            path = os.path.join(d, "samples", f"latency-{series}-{rate}.txt")
            try:
                values = sorted(float(x) for x in open(path).read().split())
            except OSError:
                continue
            md.append(f"| {label} | {rate} | {len(values)} | {percentile(values, .5):.2f} | "
                      f"{percentile(values, .9):.2f} | {percentile(values, .99):.2f} | "
                      f"{(values[-1] if values else float('nan')):.2f} |")
            with open(os.path.join(d, "plots", f"cdf-{series}-{rate}.dat"), "w") as out:
                for i, v in enumerate(values):
                    out.write(f"{max(v, 1e-3)} {(i + 1) / len(values)}\n")
    md.append("")
    for rate in rates:
        lines = []
        for series, label in SERIES:
            dat = f"cdf-{series}-{rate}.dat"
            if os.path.exists(os.path.join(d, "plots", dat)) and os.path.getsize(os.path.join(d, "plots", dat)):
                lines.append(f"'{dat}' using 1:2 with steps lw 2 title '{label}'")
        if not lines:
            continue
        png = f"latency-cdf-{rate}.png"
        gnuplot(PNG + f"set output '{png}'\nset title 'Latency CDF at {rate} calls/s'\n"
                "set logscale x\nset xlabel 'milliseconds (log)'\nset ylabel 'fraction of calls'\n"
                "set yrange [0:1]\nset key right bottom\nplot " + ", ".join(lines) + "\n",
                os.path.join(d, "plots"))
        md.append(f"![Latency CDF at {rate} calls/s](plots/{png})\n")


def throughput_section(d, md):
    t = load_pairs(os.path.join(d, "samples", "throughput.txt"))
    md.append("## Push throughput: pushgw vs h2load\n")
    if not t:
        md.append("_No throughput figures (call_bench [throughput] did not run or failed: see "
                  "logs/throughput.txt)._\n")
        return
    h2, pg = float(t["h2load_per_s"]), float(t["pushgw_per_s"])
    md.append(f"{int(float(t['pushes']))} pushes to `nghttpd` (TLS, loopback, one connection). "
              "h2load is the plain nghttp2 client (100 streams in flight); pushgw drains the same "
              "number of jobs preloaded into the Redis stream through its APNs provider "
              f"({int(float(t['delivered']))} delivered).\n")
    md.append("| client | pushes/s | share of h2load |")
    md.append("|---|---|---|")
    md.append(f"| h2load (plain nghttp2) | {h2:.0f} | 100 % |")
    md.append(f"| pushgw (stream -> APNs provider) | {pg:.0f} | {100 * pg / max(h2, 1):.0f} % |\n")
    with open(os.path.join(d, "plots", "throughput.dat"), "w") as out:
        out.write(f"0 \"h2load\" {h2}\n1 \"pushgw\" {pg}\n")
    gnuplot(PNG + "set output 'throughput.png'\nset title 'Pushes per second to nghttpd (TLS, loopback)'\n"
            "set style fill solid 0.6\nset boxwidth 0.5\nset ylabel 'pushes/s'\n"
            f"set yrange [0:{max(h2, pg, 1) * 1.15}]\n"
            "unset key\nset xrange [-0.6:1.6]\n"
            "plot 'throughput.dat' using 1:3:xtic(2) with boxes, "
            "'' using 1:3:(sprintf('%.0f', $3)) with labels offset 0,1\n", os.path.join(d, "plots"))
    md.append("![Push throughput](plots/throughput.png)\n")


def memory_section(d, md):
    m = load_json(os.path.join(d, "memory.json"))
    md.append("## Memory against the number of bindings\n")
    if not m or not m.get("sipwake"):
        md.append("_No memory figures (see logs/memory.txt)._\n")
        return
    md.append("sipwake: one registrar (Release, jemalloc) gets its bindings step by step from a local "
              "Kamailio PBX; RSS once all are registered. uac_reg: Kamailio's `uac` module started with "
              "each N accounts (PSS of all its processes). *B/binding* is the growth over 0 divided by N.\n")
    md.append("| N | sipwake RSS MB | sipwake B/binding | uac_reg PSS MB | uac_reg B/binding |")
    md.append("|---|---|---|---|---|")
    ours, peer = m["sipwake"], m.get("uac_reg") or []
    peer_by_n = {p["n"]: p for p in peer}
    with open(os.path.join(d, "plots", "memory-sipwake.dat"), "w") as out:
        for o in ours:
            out.write(f"{o['n']} {o['bytes'] / 1e6}\n")
    with open(os.path.join(d, "plots", "memory-uacreg.dat"), "w") as out:
        for p in peer:
            out.write(f"{p['n']} {p['bytes'] / 1e6}\n")
    for o in ours:
        per = f"{(o['bytes'] - ours[0]['bytes']) / o['n']:.0f}" if o["n"] else "-"
        p = peer_by_n.get(o["n"])
        pcell = "- | -"
        if p:
            pper = f"{(p['bytes'] - peer[0]['bytes']) / p['n']:.0f}" if p["n"] else "-"
            pcell = f"{p['bytes'] / 1e6:.1f} | {pper}"
        md.append(f"| {o['n']} | {o['bytes'] / 1e6:.1f} | {per} | {pcell} |")
    md.append("")
    lines = ["'memory-sipwake.dat' using 1:2 with linespoints lw 2 pt 7 title 'sipwake registrar (RSS)'"]
    if peer:
        lines.append("'memory-uacreg.dat' using 1:2 with linespoints lw 2 pt 5 title 'Kamailio uac_reg (PSS)'")
    gnuplot(PNG + "set output 'memory.png'\nset title 'Memory against bindings'\n"
            "set xlabel 'bindings (N)'\nset ylabel 'MB'\nset yrange [0:*]\nplot " + ", ".join(lines) + "\n",
            os.path.join(d, "plots"))
    md.append("![Memory against bindings](plots/memory.png)\n")
    # Per binding: the growth over N = 0, divided by N.
    with open(os.path.join(d, "plots", "per-binding.dat"), "w") as out:
        for o in ours[1:]:
            p = peer_by_n.get(o["n"])
            pper = (p["bytes"] - peer[0]["bytes"]) / p["n"] / 1024 if p else float("nan")
            out.write(f"{o['n']} {(o['bytes'] - ours[0]['bytes']) / o['n'] / 1024} {pper}\n")
    lines = ["'per-binding.dat' using 1:2 with linespoints lw 2 pt 7 title 'sipwake registrar'"]
    if peer:
        lines.append("'per-binding.dat' using 1:3 with linespoints lw 2 pt 5 title 'Kamailio uac_reg'")
    gnuplot(PNG + "set output 'memory-per-binding.png'\nset title 'Memory per binding (growth over N = 0, / N)'\n"
            "set xlabel 'bindings (N)'\nset ylabel 'KiB per binding'\nset yrange [0:*]\nset key right top\n"
            "plot " + ", ".join(lines) + "\n", os.path.join(d, "plots"))
    md.append("![Memory per binding](plots/memory-per-binding.png)\n")


def registration_section(d, md, meta):
    r = load_json(os.path.join(d, "registration.json"))
    md.append("## Registration load: sipwake vs Kamailio uac_reg\n")
    if not r:
        md.append("_No registration figures (see logs/registration.txt)._\n")
        return
    md.append("`bench/registration_bench.py` against a local Kamailio PBX (digest auth): *cold start* is "
              "a registrar restarted on a full Redis until every binding has a successful REGISTER "
              f"again (REGISTER rate cap {meta.get('reg_rate', '?')}/s); for uac_reg the time until "
              "the PBX holds all N. CPU per successful refresh over a steady window "
              f"({meta.get('reg_window', '?')} s), all threads (schedstat).\n")
    md.append("| N | sipwake cold start s | max REG/s | sipwake B/binding | sipwake us/refresh | "
              "uac_reg all registered s | uac_reg B/binding | uac_reg us/refresh |")
    md.append("|---|---|---|---|---|---|---|---|")
    for row in r:
        o, u = row["sipwake"], row.get("uac_reg")
        ucells = (f"{u['cold_s']:.1f} | {u['rss_per_binding']:.0f} | {u['us_per_refresh']:.1f}"
                  if u else "- | - | -")
        md.append(f"| {row['n']} | {o['cold_s']:.1f} | {o['max_rate']:.0f} | {o['rss_per_binding']:.0f} | "
                  f"{o['us_per_refresh']:.1f} | {ucells} |")
    md.append("")


def main(d):
    os.makedirs(os.path.join(d, "plots"), exist_ok=True)
    meta = load_pairs(os.path.join(d, "meta.txt"))
    md = ["# sipwake benchmark report\n"]
    md.append("Produced by `bench/report.sh` in one sitting; every figure below comes from the raw "
              "results beside this file (`registration.json`, `memory.json`, `samples/`), the "
              "benchmarks' own output is in `logs/`.\n")
    md.append("| | |\n|---|---|")
    for k in ("date", "commit", "machine", "cpus", "load_before", "load_after", "quick",
              "reg_sizes", "reg_window", "reg_expires", "mem_steps", "bench_rates", "bench_seconds",
              "bench_pushes", "seconds_registration", "seconds_memory", "seconds_latency",
              "seconds_throughput", "failed"):
        if k in meta:
            md.append(f"| {k} | {meta[k]} |")
    md.append("")
    if meta.get("quick") == "1":
        md.append("**Quick run** (short durations, small sizes): checks that the report works; the "
                  "figures are not representative.\n")
    for section in (registration_section, memory_section, latency_section, throughput_section):
        try:
            if section is registration_section:
                section(d, md, meta)
            else:
                section(d, md)
        except (RuntimeError, KeyError, ValueError) as e:
            md.append(f"_Section failed: {e}_\n")
    with open(os.path.join(d, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(os.path.join(d, "REPORT.md"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
