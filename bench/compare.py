#!/usr/bin/env python3
"""Runs shmheap's benchmarks side by side with their limits and peers.

Runs each benchmark binary once (all in this one invocation, so every ratio
compares figures from the same run on the same machine), takes the median of
--repetitions repetitions of each measurement (machines are noisy: medians and
ratios, never single runs), and

  * prints Markdown tables: every measurement with shmheap / peer ratios,
    the large-array and compaction throughputs, issue 11's read workload
    (2^20 slots) with its ratios to the bare shared table, and issue 6's and
    issue 11's targets with PASS or MISS;
  * writes into the output directory (named on stderr): compare.md (the
    same tables), summary.md (the same at load 0.75 only), compare.json
    (medians, spreads, targets, the machine), compare.png (a plot), and raw/
    (each binary's own JSON and log).

Usage (from the workspace):
  ./bazelw run //bench:compare [-- --out DIR --repetitions N --filter RE]
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

# Binaries in the order they run: limits first, then shmheap, then peers.
BINARIES = [
    "limit_bench",
    "shmheap_bench",
    "std_bench",
    "boost_bench",
    "lmdb_bench",
    "bulk_bench",
    "anatomy_bench",
    "read_bench",
]

OPS = ["add", "get_hit", "get_miss", "mix90_10"]
OP_TITLES = {
    "add": "add of N distinct keys",
    "get_hit": "get, present keys",
    "get_miss": "get, absent keys",
    "mix90_10": "90% get / 10% add",
}
# Columns of the table benchmarks: (system, header).
TABLE_SYSTEMS = [
    ("shmheap", "shmheap"),
    ("shmheap_unpinned", "shmheap unpinned"),
    ("shmheap_addmany", "shmheap AddMany"),
    ("bare", "bare array"),
    ("bare_copy", "bare+copy"),
    ("std", "std (threads)"),
    ("boost", "Boost.IPC"),
    ("lmdb", "LMDB"),
]
RATIO_PEERS = [
    ("bare", "÷bare"),
    ("bare_copy", "÷bare+copy"),
    ("std", "÷std"),
    ("boost", "÷Boost"),
    ("lmdb", "÷LMDB"),
]

TABLE_RE = re.compile(
    r"^(?P<system>[a-z_]+)/(?P<op>[a-z0-9_]+)/floats:(?P<floats>\d+)"
    r"/load:(?P<load>\d+)/workers:(?P<workers>\d+)")
BULK_RE = re.compile(r"^(?P<system>[a-z_]+)/(?P<op>[a-z_]+)/(?P<param>[a-z]+:\d+)")
# Issue 11's read workload (read_bench): keys ("read20", system, op, bytes,
# keys, workers).
READ_RE = re.compile(
    r"^read20/(?P<system>[a-z]+)/(?P<op>[a-z0-9_]+)/bytes:(?P<bytes>\d+)"
    r"/keys:(?P<keys>[a-z]+)/workers:(?P<workers>\d+)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bindir", required=True,
                   help="directory holding the benchmark binaries")
    p.add_argument("--out", default=None,
                   help="output directory (default /tmp/shmheap-bench-<time>);"
                   " relative to the workspace under bazel run")
    p.add_argument("--repetitions", type=int, default=3,
                   help="repetitions per measurement; the median is reported")
    p.add_argument("--filter", default=None,
                   help="only benchmarks matching this regex (partial runs "
                   "leave ratios and targets without their peers)")
    p.add_argument("--binaries", default=",".join(BINARIES),
                   help="comma-separated subset of: " + ", ".join(BINARIES))
    p.add_argument("--reuse", default=None,
                   help="render from an earlier run's output directory (its "
                   "raw/*.json) instead of running the benchmarks")
    return p.parse_args()


def output_dir(arg):
    if arg is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"/tmp/shmheap-bench-{stamp}"
    if os.path.isabs(arg):
        return arg
    # bazel run starts us in the runfiles tree; a relative --out means the
    # directory the user typed the command in.
    base = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    return os.path.join(base, arg)


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["load_before"] = os.getloadavg()
    except OSError:
        pass
    return info


def run_binary(path, name, out, args):
    json_path = os.path.join(out, "raw", name + ".json")
    log_path = os.path.join(out, "raw", name + ".log")
    cmd = [
        path,
        "--benchmark_out=" + json_path,
        "--benchmark_out_format=json",
        f"--benchmark_repetitions={args.repetitions}",
        "--benchmark_report_aggregates_only=true",
        "--benchmark_counters_tabular=true",
    ]
    if args.filter:
        cmd.append("--benchmark_filter=" + args.filter)
    start = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    took = time.monotonic() - start
    print(f"  {name}: {took:.1f} s" + (f" (exit {rc}, see {log_path})"
                                        if rc else ""), file=sys.stderr)
    if rc != 0 or not os.path.exists(json_path):
        return None, took
    try:
        with open(json_path) as f:
            return json.load(f), took
    except ValueError:
        # Nothing written: a --filter that matches none of its benchmarks.
        return None, took


def collect(reports):
    """{key: {"median": v, "cv": c, "unit": u}} from the binaries' JSON."""
    results = {}
    errors = []
    contexts = {}
    for name, report in reports.items():
        if report is None:
            continue
        contexts[name] = report.get("context", {})
        for b in report.get("benchmarks", []):
            run = b.get("run_name", b["name"])
            if b.get("error_occurred"):
                errors.append(f"{run}: {b.get('error_message')}")
                continue
            agg = b.get("aggregate_name")
            if agg is None and b.get("run_type") == "iteration":
                # One repetition: no aggregates are reported, the run itself
                # is the median.
                agg = "median"
            if agg not in ("median", "cv"):
                continue
            if run.startswith("gcwall/"):
                # Issue 15's collection: wall milliseconds (manual time).
                name = "/".join(run.split("/")[1:3])
                key = ("gcwall", name)
                entry = results.setdefault(key, {"unit": "ms"})
                entry[agg] = b["real_time"]
                continue
            if run.startswith("anatomy/"):
                # Single-process ns per get: real and CPU time (the CPU time
                # is the steadier one on a shared machine).
                name = run.split("/", 1)[1].split("/min_time:")[0]
                key = ("anatomy", name)
                entry = results.setdefault(key, {"unit": "ns"})
                entry[agg] = b["real_time"]
                entry[agg + "_cpu"] = b["cpu_time"]
                continue
            if "ops_per_s" in b:
                value, unit = b["ops_per_s"], "ops/s"
            elif "bytes_per_second" in b:
                value, unit = b["bytes_per_second"], "B/s"
            else:
                continue
            m = READ_RE.match(run)
            if m:
                key = ("read20", m["system"], m["op"], int(m["bytes"]),
                       m["keys"], int(m["workers"]))
                entry = results.setdefault(key, {"unit": unit})
                entry[agg] = value
                if "cpu_ops_per_s" in b:
                    # Lookups per CPU-second of the workers: steadier than
                    # wall time on a shared machine, blind to scaling.
                    entry[agg + "_cpu"] = b["cpu_ops_per_s"]
                continue
            m = TABLE_RE.match(run)
            if m:
                key = (m["system"], m["op"], int(m["floats"]), int(m["load"]),
                       int(m["workers"]))
                if "cpu_ops_per_s" in b:
                    entry = results.setdefault(key, {"unit": unit})
                    entry[agg + "_cpu"] = b["cpu_ops_per_s"]
            else:
                m = BULK_RE.match(run)
                if not m:
                    continue
                key = (m["system"], m["op"], m["param"])
            entry = results.setdefault(key, {"unit": unit})
            entry[agg] = value
    return results, errors, contexts


def mops(v):
    return "—" if v is None else f"{v / 1e6:.2f}"


def gbs(v):
    return "—" if v is None else f"{v / 1e9:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}"


def median(results, key):
    e = results.get(key)
    return None if e is None else e.get("median")


def table_markdown(results, loads=None):
    """One table per op: rows floats × load × workers."""
    lines = []
    for op in OPS:
        rows = sorted({(k[2], k[3], k[4]) for k in results
                       if len(k) == 5 and k[1] == op})
        if loads is not None:
            rows = [r for r in rows if r[1] in loads]
        if not rows:
            continue
        present = [(s, h) for s, h in TABLE_SYSTEMS
                   if any((s, op) + r in results for r in rows)]
        peers = [(s, h) for s, h in RATIO_PEERS if any(s == p for p, _ in present)]
        lines.append(f"**{OP_TITLES[op]}** (Mops/s, median; ratios are "
                     "shmheap ÷ peer; bare arrays are single-process)")
        lines.append("")
        header = ["floats", "load", "workers"] + [h for _, h in present] + \
                 [h for _, h in peers]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * 3 + "---:|" * (len(header) - 3))
        for floats, load, workers in rows:
            cells = [str(floats), f"{load / 100:.2f}", str(workers)]
            shm = median(results, ("shmheap", op, floats, load, workers))
            for s, _ in present:
                cells.append(mops(median(results, (s, op, floats, load, workers))))
            for s, _ in peers:
                # The bare arrays are single-process limits: shmheap with any
                # number of workers is compared with the one-process figure
                # only when it has one worker too.
                peer = median(results, (s, op, floats, load, workers))
                cells.append(fmt_ratio(ratio(shm, peer)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


BULK_ROWS = [
    # (title, shmheap key, limit key, context key)
    ("large array write (Reserve+fill+Publish, 64 MiB)",
     ("shmheap", "large_write", "mib:64"), ("memcpy", "large", "mib:64"),
     ("memcpy_fresh", "large", "mib:64")),
    ("large array write into pages a collection kept (64 MiB)",
     ("shmheap", "large_write_reused", "mib:64"), ("memcpy", "large", "mib:64"),
     ("memcpy_fresh", "large", "mib:64")),
    ("large array read (Get + copy out, 64 MiB)",
     ("shmheap", "large_read", "mib:64"), ("memcpy", "large", "mib:64"), None),
    ("compaction, 1,024-float values, half dead (128 MiB)",
     ("shmheap", "compact", "floats:1024"), ("memmove", "compact", "floats:1024"),
     None),
    ("compaction, 16-float values, half dead (128 MiB)",
     ("shmheap", "compact", "floats:16"), ("memmove", "compact", "floats:16"),
     None),
]


def bulk_markdown(results):
    lines = ["**large arrays and compaction** (GB/s, median)", "",
             "| workload | shmheap | limit | limit is | shmheap ÷ limit |"
             " memcpy into fresh shared pages |",
             "|---|---:|---:|---|---:|---:|"]
    any_row = False
    for title, shm_key, lim_key, ctx_key in BULK_ROWS:
        shm = median(results, shm_key)
        lim = median(results, lim_key)
        if shm is None and lim is None:
            continue
        any_row = True
        ctx = median(results, ctx_key) if ctx_key else None
        lines.append(f"| {title} | {gbs(shm)} | {gbs(lim)} | {lim_key[0]} | "
                     f"{fmt_ratio(ratio(shm, lim))} | {gbs(ctx) if ctx_key else ''} |")
    lines.append("")
    return lines if any_row else []


ANATOMY_ROWS = [
    ("probe", "bare array probe (random key, 2^16 slots)"),
    ("probe+blob", "+ follow the slot to a blob-like record, compare the "
     "16-byte key, read a float"),
    ("probe+blob+xxh3", "+ XXH3 of the key"),
    ("probe+blob+xxh3+2rmw", "+ 2 locked RMWs (enter and leave a pin)"),
    ("probe+blob+xxh3+4rmw", "+ 4 locked RMWs"),
    ("probe+blob+64", "probe+blob + 64 independent register additions "
     "(no memory access)"),
    ("probe+blob+128", "probe+blob + 128 additions"),
    ("probe+blob+192", "probe+blob + 192 additions"),
    ("shmheap_contains", "shmheap `Contains` (in a held Pin)"),
    ("shmheap_getraw", "shmheap `GetRaw` (in a held Pin)"),
    ("shmheap_get", "shmheap `Get<float>` (in a held Pin)"),
    ("shmheap_contains_absent", "shmheap `Contains`, absent key"),
    ("shmheap_get_absent", "shmheap `Get<float>`, absent key (`kNotFound` "
     "with a message)"),
    ("scope_contains", "`ReadScope::Contains` (in a held ReadScope)"),
    ("scope_get", "`ReadScope::Get<float>` (in a held ReadScope)"),
    ("scope_find", "`ReadScope::Find<float>` (in a held ReadScope)"),
    ("scope_contains_absent", "`ReadScope::Contains`, absent key"),
    ("scope_find_absent", "`ReadScope::Find<float>`, absent key"),
]


def anatomy_markdown(results):
    rows = [(name, title, results.get(("anatomy", name)))
            for name, title in ANATOMY_ROWS]
    if not any(e for _, _, e in rows):
        return []
    lines = ["**anatomy of one get** (1 process, 16 floats, load 0.75, 2^16 "
             "slots; ns per get, median)", "",
             "| step | real ns | CPU ns |", "|---|---:|---:|"]
    for name, title, e in rows:
        if e is None:
            continue
        lines.append(f"| {title} | {e['median']:.1f} | "
                     f"{e.get('median_cpu', 0):.1f} |")
    lines.append("")
    return lines


def targets(results):
    """Issue 6's targets: (name, needed, worst ratio, where, all ratios)."""
    out = []

    def table_target(name, needed, op, peer, workers, peer_workers):
        ratios = []
        for floats in (16, 1024):
            for load in (50, 75, 90):
                r = ratio(median(results, ("shmheap", op, floats, load, workers)),
                          median(results, (peer, op, floats, load, peer_workers)))
                if r is not None:
                    ratios.append((r, f"floats {floats}, load {load / 100:.2f}"))
        out.append((name, needed, ratios))

    table_target("get hit ≥ 0.7× bare array (1 process)", 0.7, "get_hit",
                 "bare", 1, 1)
    table_target("add ≥ 0.5× bare array (1 process)", 0.5, "add", "bare", 1, 1)
    table_target("90/10 mix ≥ 10× Boost.Interprocess (4 processes)", 10.0,
                 "mix90_10", "boost", 4, 4)
    table_target("90/10 mix ≥ 3× LMDB (4 processes)", 3.0, "mix90_10", "lmdb",
                 4, 4)
    for name, needed, r in ratio_targets(results, [
        ("large-array write ≥ 0.8× memcpy", 0.8,
         ("shmheap", "large_write", "mib:64"), ("memcpy", "large", "mib:64")),
        ("large-array read ≥ 0.8× memcpy", 0.8,
         ("shmheap", "large_read", "mib:64"), ("memcpy", "large", "mib:64")),
        ("compaction ≥ 0.5× memmove (1,024-float values)", 0.5,
         ("shmheap", "compact", "floats:1024"),
         ("memmove", "compact", "floats:1024")),
        ("compaction ≥ 0.5× memmove (16-float values)", 0.5,
         ("shmheap", "compact", "floats:16"),
         ("memmove", "compact", "floats:16")),
    ]):
        out.append((name, needed, [] if r is None else [(r, "")]))
    return out


def ratio_targets(results, rows):
    """(name, needed, shmheap ÷ limit or None) for rows of (name, needed,
    shmheap key, limit key)."""
    return [(name, needed,
             ratio(median(results, shm_key), median(results, lim_key)))
            for name, needed, shm_key, lim_key in rows]


def issue15_targets(results):
    """Issue 15's targets: (name, needed, at_most, value or None)."""
    out = []
    for name, needed, r in ratio_targets(results, [
        ("large-array write into reused pages ≥ 0.8× memcpy", 0.8,
         ("shmheap", "large_write_reused", "mib:64"),
         ("memcpy", "large", "mib:64")),
        ("compaction ≥ 0.8× memmove (1,024-float values)", 0.8,
         ("shmheap", "compact", "floats:1024"),
         ("memmove", "compact", "floats:1024")),
        ("compaction ≥ 0.4× memmove (16-float values)", 0.4,
         ("shmheap", "compact", "floats:16"),
         ("memmove", "compact", "floats:16")),
    ]):
        out.append((name, needed, False, r))
    for name, title in [
        ("collect_4k", "default slack"),
        ("collect_4k_keep_all", "every freed page kept, as hh_shared"),
        ("collect_4k_keep_none", "every freed page returned"),
    ]:
        wall = median(results, ("gcwall", name + "/values:500000"))
        out.append((f"collection of 500,000 × 4 KiB half dead ≤ 0.25 s "
                    f"({title})", 0.25, True,
                    None if wall is None else wall / 1e3))
    return out


def issue15_targets_markdown(tgts):
    if all(v is None for _, _, _, v in tgts):
        return []
    lines = ["**issue 15 targets** (ratios of medians from this run; the "
             "collection in seconds)", "",
             "| target | measured | result |", "|---|---:|---|"]
    for name, needed, at_most, v in tgts:
        if v is None:
            lines.append(f"| {name} | — | not measured |")
            continue
        ok = v <= needed if at_most else v >= needed
        lines.append(f"| {name} | {v:.2f} | {'PASS' if ok else 'MISS'} |")
    lines.append("")
    return lines


def targets_markdown(tgts, title="issue 6 targets", partial_note=True):
    lines = [f"**{title}** (ratios of medians from this run)", "",
             "| target | worst | best | result |", "|---|---:|---:|---|"]
    for name, needed, ratios in tgts:
        if not ratios:
            lines.append(f"| {name} | — | — | not measured |")
            continue
        worst = min(ratios)
        best = max(ratios)
        verdict = "PASS" if worst[0] >= needed else (
            "MISS" if best[0] < needed else "PARTIAL")
        where = f" ({worst[1]})" if worst[1] else ""
        lines.append(f"| {name} | {worst[0]:.2f}{where} | {best[0]:.2f} | "
                     f"{verdict} |")
    lines.append("")
    if partial_note:
        lines.append("PARTIAL: met for some value sizes and loads, not for "
                     "all.")
        lines.append("")
    return lines


def issue15_adds(results):
    """Issue 15's add figures: {(floats, load): {...}} of medians."""
    rows = {}
    for floats in (16, 1024):
        for load in (50, 75, 90):
            def m(system, workers, cpu=False):
                e = results.get((system, "add", floats, load, workers))
                if e is None:
                    return None
                return e.get("median_cpu" if cpu else "median")
            row = {
                "bare_copy": m("bare_copy", 1),
                "add1": m("shmheap", 1), "add2": m("shmheap", 2),
                "many1": m("shmheap_addmany", 1),
                "many2": m("shmheap_addmany", 2),
                "bare_copy_cpu": m("bare_copy", 1, True),
                "add1_cpu": m("shmheap", 1, True),
                "many1_cpu": m("shmheap_addmany", 1, True),
            }
            if any(v is not None for v in row.values()):
                rows[(floats, load)] = row
    return rows


def issue15_add_targets(results):
    """Issue 15's add targets: (name, needed, [(ratio, where)]). The
    targets are stated for 16-float values; 1,024-float values are shown in
    the table above them, not judged."""
    rows = issue15_adds(results)
    out = []

    def target(name, needed, num, den):
        ratios = []
        for (floats, load), row in sorted(rows.items()):
            if floats != 16:
                continue
            r = ratio(row[num], row[den])
            if r is not None:
                ratios.append((r, f"load {load / 100:.2f}"))
        out.append((name, needed, ratios))

    target("add of 16 floats ≥ 0.4× the bare table plus copy (1 process)",
           0.4, "add1", "bare_copy")
    target("AddMany ≥ 1.5× single adds (16 floats, 1 process)", 1.5, "many1",
           "add1")
    target("2 processes ≥ 1.8× one: single adds (16 floats)", 1.8, "add2",
           "add1")
    target("2 processes ≥ 1.8× one: AddMany (16 floats)", 1.8, "many2",
           "many1")
    return out


def issue15_markdown(results):
    rows = issue15_adds(results)
    if not rows:
        return []
    lines = ["**issue 15: adds** (add of N distinct keys into an empty table "
             "of 2^16 slots; Mops/s, median; `AddMany` adds each batch of 256 "
             "keys in one call; the bare table plus copy is the one-process "
             "limit from this run; \"by CPU\" ratios divide operations per "
             "CPU-second of the workers, which preemption by other work on "
             "the machine does not dilute)", "",
             "| floats | load | bare+copy 1p | add 1p | ÷bare+copy |"
             " by CPU | AddMany 1p | ÷bare+copy | by CPU | AddMany ÷ add |"
             " by CPU | add 2p | 2p ÷ 1p | AddMany 2p | 2p ÷ 1p |",
             "|---|---|" + "---:|" * 13]
    for (floats, load), r in sorted(rows.items()):
        cells = [str(floats), f"{load / 100:.2f}", mops(r["bare_copy"]),
                 mops(r["add1"]), fmt_ratio(ratio(r["add1"], r["bare_copy"])),
                 fmt_ratio(ratio(r["add1_cpu"], r["bare_copy_cpu"])),
                 mops(r["many1"]),
                 fmt_ratio(ratio(r["many1"], r["bare_copy"])),
                 fmt_ratio(ratio(r["many1_cpu"], r["bare_copy_cpu"])),
                 fmt_ratio(ratio(r["many1"], r["add1"])),
                 fmt_ratio(ratio(r["many1_cpu"], r["add1_cpu"])),
                 mops(r["add2"]),
                 fmt_ratio(ratio(r["add2"], r["add1"])), mops(r["many2"]),
                 fmt_ratio(ratio(r["many2"], r["many1"]))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    tgts = issue15_add_targets(results)
    if any(rs for _, _, rs in tgts):
        lines += targets_markdown(tgts, "issue 15 add targets",
                                  partial_note=False)
    return lines


READ_OPS = [
    ("contains_hit", "contains hit"),
    ("contains_miss", "contains miss"),
    ("get_one", "get hit, read element 0"),
    ("get_all", "get hit, read every byte"),
    ("get_miss", "get miss"),
    ("get_batch64", "batched get of 64 (per key)"),
]
READ_KEYS = [("kept", "key kept"), ("hash", "hash only")]


def read_median(results, system, op, nbytes, keys, workers, cpu=False):
    if system == "bare":
        keys = "none"
    e = results.get(("read20", system, op, nbytes, keys, workers))
    return None if e is None else e.get("median_cpu" if cpu else "median")


def read_markdown(results):
    """Issue 11's workload: one row per value size, key mode and op."""
    sizes = sorted({k[3] for k in results if k[0] == "read20"})
    if not sizes:
        return []
    lines = ["**issue 11 read workload** (2^20 slots, 500,000 keys of 16 bytes, "
             "random order; Mops/s, median; ÷bare is the ratio to the bare "
             "shared table with as many processes, by wall time, and for 1 "
             "process also by lookups per CPU-second; `scope` is a ReadScope, "
             "`Heap::` the calls that predate it, in a Pin held per 256 "
             "lookups)", "",
             "| value | keys | operation | bare 1p | scope 1p | ÷bare |"
             " ÷bare by CPU time | Heap:: 1p | ÷bare | bare 2p | scope 2p |"
             " ÷bare | scope 2p ÷ 1p | bare 2p ÷ 1p |",
             "|---|---|---|" + "---:|" * 11]
    for nbytes in sizes:
        for keys, keys_title in READ_KEYS:
            for op, title in READ_OPS:
                bare1 = read_median(results, "bare", op, nbytes, keys, 1)
                bare2 = read_median(results, "bare", op, nbytes, keys, 2)
                scope1 = read_median(results, "scope", op, nbytes, keys, 1)
                scope2 = read_median(results, "scope", op, nbytes, keys, 2)
                heap1 = read_median(results, "heap", op, nbytes, keys, 1)
                if all(v is None for v in (bare1, scope1, heap1)):
                    continue
                value = "64 B" if nbytes == 64 else f"{nbytes // 1024} KiB"
                by_cpu = ratio(
                    read_median(results, "scope", op, nbytes, keys, 1, True),
                    read_median(results, "bare", op, nbytes, keys, 1, True))
                cells = [value, keys_title, title, mops(bare1), mops(scope1),
                         fmt_ratio(ratio(scope1, bare1)), fmt_ratio(by_cpu),
                         mops(heap1),
                         fmt_ratio(ratio(heap1, bare1)), mops(bare2),
                         mops(scope2), fmt_ratio(ratio(scope2, bare2)),
                         fmt_ratio(ratio(scope2, scope1)),
                         fmt_ratio(ratio(bare2, bare1))]
                lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def issue11_targets(results):
    """Issue 11's targets: (name, needed, at_most, [(ratio, where)],
    [(ratio by CPU time, where)]). Verdicts use the first list (medians of
    wall-time throughput); the second, where it applies (one process),
    cross-checks it with lookups per CPU-second, which time-slicing by other
    work on the machine does not dilute."""
    out = []
    sizes = (64, 4096)

    def where(nbytes, keys, op=None):
        value = "64 B" if nbytes == 64 else "4 KiB"
        parts = [value, dict(READ_KEYS)[keys]]
        if op:
            parts.append(dict(READ_OPS)[op])
        return ", ".join(parts)

    def pairs(name, needed, num, den, sizes_, keys_, ops=(None,)):
        """num(op, nbytes, keys, cpu) / den(...) over the cells."""
        wall, cpu = [], []
        for nbytes in sizes_:
            for keys in keys_:
                for op in ops:
                    w = where(nbytes, keys, op)
                    r = ratio(num(op, nbytes, keys, False),
                              den(op, nbytes, keys, False))
                    if r is not None:
                        wall.append((r, w))
                    r = ratio(num(op, nbytes, keys, True),
                              den(op, nbytes, keys, True))
                    if r is not None:
                        cpu.append((r, w))
        out.append((name, needed, False, wall, cpu))

    def vs_bare(name, needed, op, sizes_, keys_):
        pairs(name, needed,
              lambda _, n, k, c: read_median(results, "scope", op, n, k, 1, c),
              lambda _, n, k, c: read_median(results, "bare", op, n, k, 1, c),
              sizes_, keys_)

    vs_bare("contains hit, key checked ≥ 0.8× the bare probe", 0.8,
            "contains_hit", sizes, ["kept"])
    vs_bare("contains miss, key checked ≥ 0.9× the bare probe", 0.9,
            "contains_miss", sizes, ["kept"])
    vs_bare("get hit of 64 B reading every byte, key checked ≥ 0.5× the "
            "bare probe", 0.5, "get_all", (64,), ["kept"])
    vs_bare("get miss ≥ 0.9× the bare probe's miss", 0.9, "get_miss", sizes,
            ["kept", "hash"])
    pairs("batched get of 64 keys ≥ 2× the unbatched get per key", 2.0,
          lambda _, n, k, c: read_median(results, "scope", "get_batch64", n, k,
                                         1, c),
          lambda _, n, k, c: read_median(results, "scope", "get_one", n, k, 1,
                                         c),
          sizes, [k for k, _ in READ_KEYS])
    pairs("2 processes ≥ 1.8× one process for every read (ReadScope)", 1.8,
          lambda op, n, k, c: None if c else read_median(
              results, "scope", op, n, k, 2),
          lambda op, n, k, c: read_median(results, "scope", op, n, k, 1),
          sizes, [k for k, _ in READ_KEYS], [op for op, _ in READ_OPS])
    # CPU time: both are single-threaded loops in one process, and on a
    # shared machine CPU time is the steadier measure of the same work.
    model = results.get(("anatomy", "probe+blob+xxh3"))
    get = results.get(("anatomy", "scope_get"))
    wall, cpu = [], []
    if model and get and model.get("median"):
        wall.append((get["median"] / model["median"],
                     f"{get['median']:.1f} ns vs {model['median']:.1f} ns"))
    if model and get and model.get("median_cpu"):
        cpu.append((get["median_cpu"] / model["median_cpu"],
                    f"{get['median_cpu']:.1f} ns vs "
                    f"{model['median_cpu']:.1f} ns"))
    out.append(("2^16 tables: `ReadScope::Get<float>` within 1.5× the anatomy "
                "model (probe + key check + hash)", 1.5, True, wall, cpu))
    return out


def issue11_targets_markdown(tgts):
    if not any(wall for _, _, _, wall, _ in tgts):
        return []
    lines = ["**issue 11 targets** (ratios of medians from this run; 1 process "
             "unless named; the verdict is on wall-time throughput, the last "
             "column the same ratio by CPU time, a cross-check that other "
             "work on the machine does not dilute)", "",
             "| target | worst | best | result | worst by CPU time |",
             "|---|---:|---:|---|---:|"]
    for name, needed, at_most, wall, cpu in tgts:
        if not wall:
            lines.append(f"| {name} | — | — | not measured | — |")
            continue
        key = (lambda rw: -rw[0]) if at_most else (lambda rw: rw[0])
        worst = min(wall, key=key)
        best = max(wall, key=key)
        met = [(r <= needed) if at_most else (r >= needed) for r, _ in wall]
        verdict = "PASS" if all(met) else (
            "PARTIAL" if any(met) else "MISS")
        if verdict == "PARTIAL":
            verdict += f" ({sum(met)} of {len(met)})"
        cpu_cell = "—"
        if cpu:
            c = min(cpu, key=key)
            cpu_cell = f"{c[0]:.2f} ({c[1]})"
        lines.append(f"| {name} | {worst[0]:.2f} ({worst[1]}) | "
                     f"{best[0]:.2f} ({best[1]}) | {verdict} | {cpu_cell} |")
    lines.append("")
    return lines


def plot(results, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as e:
        print(f"compare: no plot ({e}); install python3-matplotlib",
              file=sys.stderr)
        return False
    load = 75
    styles = {
        "shmheap": dict(color="tab:blue", marker="o", linewidth=2.2),
        "shmheap_unpinned": dict(color="tab:cyan", marker="s", linestyle=":"),
        "std": dict(color="tab:green", marker="^"),
        "boost": dict(color="tab:red", marker="v"),
        "lmdb": dict(color="tab:purple", marker="D"),
    }
    labels = dict(TABLE_SYSTEMS)
    fig, axes = plt.subplots(3, 3, figsize=(16, 13))
    panels = [(op, floats) for op in OPS for floats in (16, 1024)]
    for ax, (op, floats) in zip(axes.flat, panels):
        for system, style in styles.items():
            xs, ys = [], []
            for w in (1, 2, 4, 8):
                v = median(results, (system, op, floats, load, w))
                if v is not None:
                    xs.append(w)
                    ys.append(v / 1e6)
            if xs:
                ax.plot(xs, ys, label=labels[system], **style)
        for system, color in (("bare", "black"), ("bare_copy", "gray")):
            v = median(results, (system, op, floats, load, 1))
            if v is not None:
                ax.axhline(v / 1e6, color=color, linestyle="--", linewidth=1,
                           label=labels[system] + " (1 process)")
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8])
        ax.set_xticklabels(["1", "2", "4", "8"])
        ax.set_yscale("log")
        # Plain numbers on the log axis, minor ticks labelled too (a panel
        # may span less than a decade).
        ax.yaxis.set_major_formatter(
            ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(
                v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_title(f"{OP_TITLES[op]}, {floats} floats", fontsize=10)
        ax.set_xlabel("processes (threads for std); 2 cores")
        ax.set_ylabel("Mops/s (median)")
        ax.grid(True, which="both", alpha=0.3)
    handles, lbls = axes.flat[0].get_legend_handles_labels()
    ax = axes.flat[8]
    names, shm, lim = [], [], []
    for row_title, shm_key, lim_key, _ in BULK_ROWS:
        names.append(row_title.split(" (")[0]
                     .replace("compaction, ", "compact\n")
                     .replace("large array ", "64 MiB\n")
                     .replace("-float values, half dead", " floats"))
        shm.append((median(results, shm_key) or 0) / 1e9)
        lim.append((median(results, lim_key) or 0) / 1e9)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], shm, width=0.4, color="tab:blue",
           label="shmheap")
    ax.bar([x + 0.2 for x in xs], lim, width=0.4, color="gray",
           label="memcpy / memmove")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("GB/s (median)")
    ax.set_title("large arrays and compaction", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(handles, lbls, loc="lower center", ncol=7, fontsize=9)
    fig.suptitle(title + f"\ntable benchmarks at load {load / 100:.2f}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main():
    args = parse_args()
    out = output_dir(args.out)
    os.makedirs(os.path.join(out, "raw"), exist_ok=True)
    info = machine()
    now = datetime.datetime.now()
    print(f"compare: writing to {out}", file=sys.stderr)
    reports = {}
    took = {}
    for name in args.binaries.split(","):
        name = name.strip()
        if args.reuse:
            raw = os.path.join(output_dir(args.reuse), "raw", name + ".json")
            try:
                with open(raw) as f:
                    reports[name], took[name] = json.load(f), 0.0
            except (OSError, ValueError):
                pass
            continue
        path = os.path.join(args.bindir, name)
        if not os.path.exists(path):
            print(f"compare: no binary {path}", file=sys.stderr)
            continue
        reports[name], took[name] = run_binary(path, name, out, args)
    try:
        info["load_after"] = os.getloadavg()
    except OSError:
        pass
    results, errors, contexts = collect(reports)
    if args.reuse and contexts:
        # The run being rendered, not this one: its date and load.
        # In the order the binaries ran (--binaries may differ from it).
        ctxs = sorted(contexts.values(), key=lambda c: c.get("date", ""))
        try:
            now = datetime.datetime.fromisoformat(ctxs[0]["date"])
        except (KeyError, ValueError):
            pass
        if ctxs[0].get("load_avg"):
            info["load_before"] = ctxs[0]["load_avg"]
        if ctxs[-1].get("load_avg"):
            info["load_after"] = ctxs[-1]["load_avg"]
    for ctx in contexts.values():
        if ctx.get("compiled") not in (None, "optimized"):
            errors.append("a benchmark binary was not compiled optimized")
            break

    header = (f"{now:%Y-%m-%d %H:%M}, {info.get('cpu', '?')}, "
              f"{info['nproc']} CPUs, Linux {info['kernel']}; medians of "
              f"{args.repetitions} repetitions; load average "
              f"{info.get('load_before', (0,))[0]:.2f} before, "
              f"{info.get('load_after', (0,))[0]:.2f} after")
    md = ["# shmheap benchmarks", "", header, ""]
    md += targets_markdown(targets(results))
    md += issue11_targets_markdown(issue11_targets(results))
    md += issue15_targets_markdown(issue15_targets(results))
    md += issue15_markdown(results)
    md += read_markdown(results)
    md += bulk_markdown(results)
    md += anatomy_markdown(results)
    md += table_markdown(results)
    if errors:
        md += ["**errors**", ""] + [f"- {e}" for e in errors] + [""]
    text = "\n".join(md)
    print(text)

    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(text + "\n")
    # The same, with the table benchmarks at load 0.75 only: short enough
    # for a README.
    summary = ["# shmheap benchmarks (summary)", "", header, ""]
    summary += targets_markdown(targets(results))
    summary += issue11_targets_markdown(issue11_targets(results))
    summary += issue15_targets_markdown(issue15_targets(results))
    summary += issue15_markdown(results)
    summary += read_markdown(results)
    summary += bulk_markdown(results)
    summary += anatomy_markdown(results)
    summary += table_markdown(results, loads={75})
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(summary) + "\n")
    flat = []
    for key, e in sorted(results.items(), key=lambda kv: str(kv[0])):
        row = {"system": key[0], "op": key[1], "unit": e["unit"],
               "median": e.get("median"), "cv": e.get("cv")}
        if key[0] == "read20":
            row.update(system=key[1], op=key[2], workload="read20",
                       value_bytes=key[3], keys=key[4], workers=key[5])
        elif len(key) == 5:
            row.update(floats=key[2], load=key[3] / 100, workers=key[4])
        elif key[0] in ("anatomy", "gcwall"):
            row["op"] = key[1]
            row["median_cpu"] = e.get("median_cpu")
        else:
            row["param"] = key[2]
        flat.append(row)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump({
            "date": now.isoformat(timespec="seconds"),
            "machine": info,
            "repetitions": args.repetitions,
            "seconds_per_binary": took,
            "results": flat,
            "targets": [{"target": n, "needed": need,
                         "ratios": [{"ratio": r, "where": w} for r, w in rs]}
                        for n, need, rs in targets(results)],
            "issue11_targets": [
                {"target": n, "needed": need,
                 "at_most" if at_most else "at_least": need,
                 "ratios": [{"ratio": r, "where": w} for r, w in rs],
                 "ratios_by_cpu_time": [{"ratio": r, "where": w}
                                        for r, w in cpu]}
                for n, need, at_most, rs, cpu in issue11_targets(results)],
            "issue15_targets": [
                {"target": n, "at_most" if at_most else "at_least": need,
                 "measured": v}
                for n, need, at_most, v in issue15_targets(results)],
            "issue15_add_targets": [
                {"target": n, "needed": need,
                 "ratios": [{"ratio": r, "where": w} for r, w in rs]}
                for n, need, rs in issue15_add_targets(results)],
            "errors": errors,
        }, f, indent=1)
    png = os.path.join(out, "compare.png")
    plotted = plot(results, png,
                   f"shmheap vs peers — {now:%Y-%m-%d}, {info.get('cpu', '?')}"
                   f", {info['nproc']} CPUs")
    print(f"compare: wrote {out}/compare.md, summary.md, compare.json"
          + (", compare.png" if plotted else "") + " and raw/",
          file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
