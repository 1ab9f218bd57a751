"""CUDA backend timings on the GPU of this machine (not collected by pytest).

    python benchmarks/bench_cuda.py [--json OUT.json]

Measures the device-to-device copy bandwidth (bytes read plus bytes written, the ceiling the
issue's goals are stated against) and the int4 GEMV of decode at the shapes of a 7-8B model's
projections: each timing is the median over replays of a CUDA graph of many launches, with the
weights rotated through sets whose total is four times the L2 cache, so no launch finds its
weights in L2. GB/s counts every byte a launch must move: int4 weights, fp16 scales (and mins),
the fp16 input and the float32 output.
"""

from __future__ import annotations

import argparse
import json

from slmcore import _core

GEMV_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (2048, 2048), (5632, 2048), (32000, 2048)]  # (rows, cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--launches", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    if _core.cuda.device_count() == 0:
        raise SystemExit(f"no CUDA device: {_core.cuda.unavailable_reason()}")
    info = _core.cuda.device_info(0)
    rotate = 4 * info["l2_bytes"]
    copy_bytes = 1 << 30
    copy_s = _core.cuda.bench_copy(copy_bytes, 20)
    copy_gbs = 2 * copy_bytes / copy_s / 1e9
    results = {"device": info, "copy_GBps": copy_gbs, "gemv": []}
    print(f"{info['name']}: {info['multiprocessors']} SMs, L2 {info['l2_bytes'] / 2**20:.0f} MiB")
    print(f"device-to-device copy of 1 GiB: {copy_gbs:.0f} GB/s (read + write)")
    print()
    print("| rows x cols | G | format | launch | us / launch | GB/s | share of copy bw | weight sets |")
    print("|---|---|---|---|---|---|---|---|")
    for rows, cols in GEMV_SHAPES:
        for group_size, asym, pdl in ((128, False, False), (128, False, True), (32, False, True), (32, True, True)):
            t = _core.cuda.bench_int4_gemv(rows, cols, group_size, asym, rotate, args.launches, args.repeats, pdl)
            gbs = t["bytes"] / t["seconds"] / 1e9
            row = dict(rows=rows, cols=cols, group_size=group_size, asym=asym, pdl=pdl, us=t["seconds"] * 1e6,
                       GBps=gbs, share=gbs / copy_gbs, sets=t["sets"])
            results["gemv"].append(row)
            print(f"| {rows} x {cols} | {group_size} | {'asym' if asym else 'sym'} | {'PDL' if pdl else 'plain'} | "
                  f"{row['us']:.2f} | {gbs:.0f} | {row['share']:.2f} | {t['sets']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
