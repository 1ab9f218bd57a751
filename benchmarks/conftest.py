"""Benchmark session: records the machine's load and prints a throughput table at the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

RESULTS: list[dict] = []
BANDWIDTH: dict[int, float] = {}  # threads -> measured read GB/s (test_bandwidth.py)


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("throughput (side by side, same weights, same threads)")
    tr.write_line(f"{'case':44s} {'tok/s':>9s} {'GB/s':>7s} {'of bw':>6s}  {'vs peer':>11s}  load")
    baselines: dict = {}  # key -> tokens/s of each llama.cpp variant run with it (default, then pure)
    for r in RESULTS:
        if r["engine"] == "llama.cpp":
            baselines.setdefault(r["key"], []).append(r["tokens_per_s"])
    for r in RESULTS:
        peers = baselines.get(r["key"], []) if r["engine"] != "llama.cpp" else []
        ratio = "/".join(f"{r['tokens_per_s'] / b:.2f}" for b in peers) or "-"
        share = r["gb_per_s"] / BANDWIDTH[r["threads"]] if r["threads"] in BANDWIDTH else float("nan")
        tr.write_line(
            f"{r['name']:44s} {r['tokens_per_s']:9.1f} {r['gb_per_s']:7.2f} {share:6.2f}  {ratio:>11s}  {r['load']}"
        )
    bw = ", ".join(f"{t} thread(s) {v:.1f} GB/s" for t, v in sorted(BANDWIDTH.items())) or "not measured"
    tr.write_line(f"machine: {os.cpu_count()} cpus; read bandwidth: {bw}")
    tr.write_line("'of bw' = decode GB/s of weights / read bandwidth; 'vs peer' = slmcore / llama.cpp tok/s in this run "
                  "(per llama.cpp variant run with the same key, in order: e.g. Q4_0 default / pure)")
