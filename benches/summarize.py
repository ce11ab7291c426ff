#!/usr/bin/env python3
"""Copies a criterion run's small result files into results/benches-<date>/ and writes its
summary.md. Run after `cargo bench -p benches`:

  python3 benches/summarize.py [--criterion DIR] [--out results/benches-YYYY-MM-DD] [--notes FILE]

Copied per bench: new/estimates.json, new/benchmark.json (criterion) and latencies.json (our
per-publish latencies, fan-out benches only); plus idle_memory/result.json. The HTML report and
sample files stay under target/criterion.
"""

import argparse
import datetime
import glob
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.1f} ns"


def fmt_rate(per_s, unit):
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_s >= scale:
            return f"{per_s / scale:.2f} {prefix}{unit}/s"
    return f"{per_s:.0f} {unit}/s"


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--criterion", default=os.path.join(target, "criterion"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "benches-" + datetime.date.today().isoformat()))
    args = ap.parse_args()

    benches = []
    for bj in sorted(glob.glob(os.path.join(args.criterion, "**", "new", "benchmark.json"), recursive=True)):
        d = os.path.dirname(os.path.dirname(bj))
        meta = json.load(open(bj))
        est = json.load(open(os.path.join(d, "new", "estimates.json")))
        lat_path = os.path.join(d, "latencies.json")
        lat = json.load(open(lat_path)) if os.path.exists(lat_path) else None
        raw = os.path.join(args.out, "raw", meta["directory_name"])
        os.makedirs(raw, exist_ok=True)
        shutil.copy(bj, os.path.join(raw, "benchmark.json"))
        shutil.copy(os.path.join(d, "new", "estimates.json"), os.path.join(raw, "estimates.json"))
        if lat:
            shutil.copy(lat_path, os.path.join(raw, "latencies.json"))
        benches.append((meta, est, lat))
    mem_path = os.path.join(args.criterion, "idle_memory", "result.json")
    mem = json.load(open(mem_path)) if os.path.exists(mem_path) else None
    if mem:
        os.makedirs(os.path.join(args.out, "raw", "idle_memory"), exist_ok=True)
        shutil.copy(mem_path, os.path.join(args.out, "raw", "idle_memory", "result.json"))

    out = []
    fan = [(m, e, l) for m, e, l in benches if m["group_id"] in ("fanout_enqueue", "fanout_drain") and l]
    out.append("## Fan-out latency (one publish, one topic, 100 B data)\n")
    out.append("Per-publish times, each publish timed alone (`latencies.json`); criterion's median of")
    out.append("sample means beside it. ns/recipient = median / subscribers.\n")
    out.append("| bench | subscribers | median | p99 | criterion median | ns/recipient | deliveries/s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for m, e, l in fan:
        n = l["subscribers"]
        med = l["median_ns"]
        out.append(
            f"| `{m['full_id']}` | {n:,} | {fmt_ns(med)} | {fmt_ns(l['p99_ns'])} | "
            f"{fmt_ns(e['median']['point_estimate'])} | {med / n:.0f} | {fmt_rate(n / med * 1e9, '')} |"
        )
    out.append("")
    out.append("## Every criterion bench\n")
    out.append("| bench | median | 95% CI of the median | throughput at the median |")
    out.append("|---|---:|---:|---:|")
    for m, e, l in benches:
        med = e["median"]["point_estimate"]
        ci = e["median"]["confidence_interval"]
        thr = m.get("throughput") or {}
        rate = ""
        if "Elements" in thr:
            rate = fmt_rate(thr["Elements"] / med * 1e9, "elem")
        elif "Bytes" in thr:
            rate = fmt_rate(thr["Bytes"] / med * 1e9, "B")
        out.append(f"| `{m['full_id']}` | {fmt_ns(med)} | {fmt_ns(ci['lower_bound'])} – {fmt_ns(ci['upper_bound'])} | {rate} |")
    out.append("")
    if mem:
        out.append("## Memory per idle subscriber (10k subscribers, requested bytes)\n")
        out.append("| shape | bytes per idle subscriber |")
        out.append("|---|---:|")
        for k, v in mem["bytes_per_idle_subscriber"].items():
            out.append(f"| {k} | {v:.0f} |")
        out.append(f"| one_topic: more per subscriber while one 100 B update is queued | +{mem['bytes_per_subscriber_while_one_update_queued']:.0f} |")
        out.append(f"| one_topic: more per subscriber after the writers drained it (ring kept) | +{mem['bytes_per_subscriber_after_drain']:.0f} |")
        out.append("")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tables.md"), "w") as f:
        f.write("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
