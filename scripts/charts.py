#!/usr/bin/env python3
"""Charts for docs/performance.md from the load tool's JSON results.

    python3 scripts/charts.py docs/performance/results docs/performance

Each result file is named `<comparison>--<set-up>--r<run>.json` (as scripts/perf-report.sh
writes them). For every comparison it draws the median throughput of each set-up and its
median p50/p99 latency, and one overview of every set-up's throughput. Needs matplotlib
(`pip install matplotlib`).
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(results: Path):
    """{comparison: {set_up: [result, ...]}}"""
    runs = defaultdict(lambda: defaultdict(list))
    for path in sorted(results.glob("*.json")):
        parts = path.stem.split("--")
        if len(parts) != 3:
            continue
        comparison, set_up, _run = parts
        runs[comparison][set_up].append(json.loads(path.read_text()))
    return runs


def medians(results):
    return (
        statistics.median(r["throughput_rps"] for r in results),
        statistics.median(r["latency_us"]["p50"] for r in results) / 1000,
        statistics.median(r["latency_us"]["p99"] for r in results) / 1000,
    )


def comparison_chart(name, set_ups, out: Path):
    labels = list(set_ups)
    figures = [medians(set_ups[s]) for s in labels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.bar(labels, [f[0] for f in figures], color="#3b6ea5")
    left.set_ylabel("draws per second (median)")
    left.set_title(f"{name}: throughput")
    for i, f in enumerate(figures):
        left.annotate(f"{f[0]:,.0f}", (i, f[0]), ha="center", va="bottom", fontsize=8)
    width = 0.38
    xs = range(len(labels))
    right.bar([x - width / 2 for x in xs], [f[1] for f in figures], width, label="p50")
    right.bar([x + width / 2 for x in xs], [f[2] for f in figures], width, label="p99")
    right.set_xticks(list(xs), labels)
    right.set_ylabel("latency, ms (median of runs)")
    right.set_title(f"{name}: latency")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def overview_chart(runs, out: Path):
    rows = []
    for comparison, set_ups in sorted(runs.items()):
        for set_up, results in set_ups.items():
            rows.append((f"{comparison}: {set_up}", medians(results)[0]))
    fig, axis = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
    axis.barh([r[0] for r in rows], [r[1] for r in rows], color="#5a9e6f")
    axis.invert_yaxis()
    axis.set_xlabel("draws per second (median of runs)")
    axis.set_title("Every set-up measured")
    fig.tight_layout()
    path = out / "overview.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    runs = load(results)
    if not runs:
        sys.exit(f"no <comparison>--<set-up>--r<run>.json files in {results}")
    for name, set_ups in sorted(runs.items()):
        print(comparison_chart(name, set_ups, out))
    print(overview_chart(runs, out))


if __name__ == "__main__":
    main()
