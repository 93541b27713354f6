#!/usr/bin/env python3
"""report.py SAMPLES --runs R --bulk-runs B --idle-seconds S [--meta LINE...] - the benchmark table of `run`.

SAMPLES holds "KEY VALUE" lines (ms, KiB, counts) and "fail:KEY 1" for a run of KEY that
failed. Prints markdown: the meta lines, one table (median, min, max per row; ratios of
medians), the targets line and how it was measured.
"""
import argparse
import statistics
import sys
from collections import defaultdict

PROTOS = [("pcp", "PCP"), ("natpmp", "NAT-PMP"), ("upnp", "UPnP")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("samples")
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--bulk-runs", type=int, required=True)
    p.add_argument("--idle-seconds", type=int, required=True)
    p.add_argument("--meta", action="append", default=[])
    a = p.parse_args()

    vals, fails = defaultdict(list), defaultdict(int)
    with open(a.samples) as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            if key.startswith("fail:"):
                fails[key[5:]] += 1
            elif value:
                vals[key].append(float(value))

    rows = []  # (section, label, median, min, max, unit)

    def med(key, scale=None):
        v = [scale(x) for x in vals[key]] if scale else vals[key]
        return statistics.median(v) if v else None

    def row(sec, label, key, unit, scale=None):
        v = sorted(scale(x) for x in vals[key]) if scale else sorted(vals[key])
        if fails[key]:
            label += f" ({fails[key]} run{'s' if fails[key] > 1 else ''} failed)"
        if not v:  # a section that did not run shows no rows
            if fails[key]:
                rows.append((sec, label, None, None, None, unit))
            return None
        m = statistics.median(v)
        rows.append((sec, label, m, v[0], v[-1], unit))
        return m

    def ratio(sec, label, num, den):
        r = num / den if num and den else None
        if r is not None:
            rows.append((sec, label, r, None, None, "×"))
        return r

    # a. discovery
    listed = min(vals["disc.count"], default=0)
    nk_disc = row("a", f"natkeeper --discover ({int(listed)} of 3 protocols listed in every run)", "disc.nk", "ms")
    for key, name in PROTOS:
        row("a", f"  {name} answer_ms (--discover --json)", f"disc.{key}", "ms")
    up = row("a", "upnpc -m eth0 -l", "disc.upnpc", "ms")
    row("a", "natpmpc -g 10.77.0.1", "disc.natpmpc", "ms")
    ratio("a", "upnpc -l / natkeeper --discover", up, nk_disc)

    # b. --once, Ring profile (per protocol: f)
    auto = row("b", "natkeeper --once (protocol auto), verified (reflector)", "once.auto.verified", "ms")
    upnpc = row("b", "upnpc -u URL -r (108 port pairs, one process)", "once.upnpc", "ms")
    pmpc = row("b", "natpmpc -a loop (108 processes)", "once.natpmpc", "ms")
    ratio("b", "upnpc -r / natkeeper upnp --no-verify (f)", upnpc, med("verify.upnp.noverify"))
    up_ratio = ratio("b", "upnpc -r / natkeeper auto verified", upnpc, auto)
    ratio("b", "natpmpc loop / natkeeper natpmp --no-verify (f)", pmpc, med("verify.natpmp.noverify"))

    # c. bulk throughput
    bulk_ratio = {}
    for n in (100, 1000):
        def rate(ms, n=n):
            return n * 1000.0 / ms
        for key, name in PROTOS:
            nk = row("c", f"N={n} {name}: natkeeper --once --map", f"bulk.{n}.nk.{key}", "mappings/s", rate)
            ref = row("c", f"N={n} {name}: reference_client.py", f"bulk.{n}.ref.{key}", "mappings/s", rate)
            bulk_ratio[(n, key)] = ratio("c", f"N={n} {name}: natkeeper / reference", nk, ref)
        row("c", f"N={n} UPnP: upnpc -r (one process)", f"bulk.{n}.upnpc.upnp", "mappings/s", rate)

    # d. CPU for 1000 mappings
    for key, name in PROTOS:
        row("d", f"{name}: natkeeper user+sys per 1000 mappings", f"cpu.1000.nk.{key}", "ms")
        row("d", f"{name}: miniupnpd CPU, same natkeeper run", f"gwcpu.1000.nk.{key}", "ms")
        row("d", f"{name}: miniupnpd CPU, reference run", f"gwcpu.1000.ref.{key}", "ms")

    # e. memory
    mib = lambda kib: kib / 1024.0
    for key, name in PROTOS:
        row("e", f"{name}: natkeeper --once N=1000, peak RSS", f"rss.1000.nk.{key}", "MiB", mib)
    for key, name in PROTOS:
        row("e", f"{name}: service idle, RSS", f"idle.rss.{key}", "MiB", mib)
        row("e", f"{name}: service idle, peak RSS (VmHWM)", f"idle.hwm.{key}", "MiB", mib)
        row("e", f"{name}: service idle, CPU over {a.idle_seconds} s", f"idle.cpu.{key}", "ms")
        row("e", f"{name}: service idle, wakeups over {a.idle_seconds} s", f"idle.wakeups.{key}", "")

    # f. what verification costs: the Ring profile, per protocol, in pairs
    verify_cost = {}
    for key, name in PROTOS:
        plain = row("f", f"{name}: natkeeper --once --no-verify", f"verify.{key}.noverify", "ms")
        checked = row("f", f"{name}: natkeeper --once, verified (reflector)", f"verify.{key}.verified", "ms")
        verify_cost[key] = ratio("f", f"{name}: verified / --no-verify", checked, plain)

    # g. --status of a plan of tens of thousands of mappings
    status_ms, status_hwm = {}, {}
    for n in (48509, 131070):
        status_ms[n] = row("g", f"N={n:,}: natkeeper --status --json", f"status.{n}.ms", "ms")
        row("g", f"N={n:,}: its output", f"status.{n}.bytes", "KiB", lambda b: b / 1024.0)
        status_hwm[n] = row("g", f"N={n:,}: service peak RSS (VmHWM) after it", f"status.{n}.hwm", "MiB", mib)

    # the table, padded so that it reads in a terminal as well
    head = ("", "measurement", "median", "min", "max", "unit")
    body = [(s, l, fmt(m, u), fmt(lo, u), fmt(hi, u), u) for s, l, m, lo, hi, u in rows]
    width = [max(len(r[i]) for r in [head] + body) for i in range(6)]
    right = (False, False, True, True, True, False)

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, width, right)) + " |"

    out = ["# natkeeper benchmarks", ""] + [f"- {m}" for m in a.meta] + [""]
    def runs(n):
        return f"{n} run" + ("s" if n != 1 else "")
    out.append(f"Median of {runs(a.runs)}, with min and max ({runs(a.bulk_runs)} at N=1000; "
               f"the idle service once). Lower is better except mappings/s.")
    out.append("")
    out.append(line(head))
    out.append("|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(width, right)) + "|")
    out += [line(b) for b in body]
    out.append("")

    # targets
    def ok(cond, *values):
        return "n/a" if None in values else "ok" if cond else "MISS"
    t = []
    for key, name in PROTOS:
        r = bulk_ratio.get((1000, key))
        t.append(f"{name} {fmt(r, '×')} {ok(r is not None and r >= 0.95 and not fails[f'bulk.1000.nk.{key}'], r)}")
    parts = ["natkeeper ≥ 0.95 × reference at N=1000: " + ", ".join(t)]
    parts.append(f"--once verified ≤ 500 ms: {fmt(auto, 'ms')} ms {ok(auto is not None and auto <= 500, auto)}, "
                 f"≥ 4× faster than upnpc -r: {fmt(up_ratio, '×')} {ok(up_ratio is not None and up_ratio >= 4, up_ratio)}")
    t = []
    for key, name in PROTOS:
        r = verify_cost.get(key)
        bad = fails[f"verify.{key}.verified"] or fails[f"verify.{key}.noverify"]
        t.append(f"{name} {fmt(r, '×')} {ok(r is not None and r <= 1.15 and not bad, r)}")
    parts.append("--once verified ≤ 1.15 × --no-verify: " + ", ".join(t))
    parts.append(f"--discover ≤ 100 ms with 3 protocols: {fmt(nk_disc, 'ms')} ms, {int(listed)} protocols "
                 f"{ok(nk_disc is not None and nk_disc <= 100 and listed >= 3, nk_disc)}")

    ms, hwm = status_ms[48509], status_hwm[48509]
    parts.append(f"--status --json at 48,509 mappings ≤ 100 ms: {fmt(ms, 'ms')} ms "
                 f"{ok(ms is not None and ms <= 100 and not fails['status.48509.ms'], ms)}, service < 32 MiB: "
                 f"{fmt(hwm, 'MiB')} MiB {ok(hwm is not None and hwm < 32, hwm)}")
    out.append("**targets:** " + "; ".join(parts))
    out.append("")
    out += [
        "How: each client runs in the lab's LAN namespace against miniupnpd in the gateway namespace; "
        "times are the wall clock of the whole process (start-up and discovery included), except "
        "reference_client.py, which times itself from its first request to its last answer (the "
        "gateway's own limit, without Python's start-up). Every mapping run starts from an empty "
        "gateway (`lab.sh gw-reboot`, untimed). The reference pipelines PCP/NAT-PMP requests (64 in "
        "flight) and sends UPnP AddPortMapping over 4 parallel connections (miniupnpd's listen backlog "
        "is 5); natkeeper and the reference run in pairs, one right after the other, and natkeeper / "
        "reference is the ratio of the medians over the pairs. CPU and RSS of "
        "natkeeper from GNU time, miniupnpd's CPU from /proc/PID/stat before and after. "
        "miniupnpd (nftables backend) re-reads all its rules at every change, so each mapping "
        "costs it more the more it holds: 1000 take it ~35 s of CPU, whatever the client. "
        "--status (g) asks a service holding 48,509 (then 131,070) NAT-PMP mappings granted by "
        "natpmp_gateway.py, which stands in for miniupnpd there; the service's peak RSS is VmHWM "
        "from /proc/PID/status after the --status runs.",
    ]
    print("\n".join(out))


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "×":
        return f"{v:.2f}×"
    if unit == "MiB":
        return f"{v:.1f}"
    if unit == "" or v == 0 or abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())
