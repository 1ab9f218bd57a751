"""Quick single-thread timings of the CPU matmul kernels through slmcore._core.kernels.

Run standalone: python benchmarks/bench_kernels.py [--isa avx512 avx2] [--repeat 5]
Reports, per ISA and weight dtype, the decode GEMV (n_tokens = 1) in GB/s of weight bytes read
and the prefill GEMM in GFLOP/s. Numbers include the binding's per-call overhead (a few us) and
are noisy on shared machines: the best of several rounds is shown, with the load average.
Not collected by pytest (no test_ functions).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from slmcore._core import kernels as K
from slmcore.reference.kernels import f32_to_bf16

GEMV_SHAPES = [(1536, 576), (576, 1536), (49152, 576), (5632, 2048)]  # (n_out, in_features)
GEMM_SHAPES = [(1536, 576, 128)]  # (n_out, in_features, n_tokens)
DTYPES = ["bfloat16", "float16", "float32"]


def weights(shape, dtype, rng):
    w = rng.standard_normal(shape, dtype=np.float32)
    if dtype == "float16":
        return w.astype(np.float16)
    if dtype == "bfloat16":
        return f32_to_bf16(w)
    return w


def best_time(fn, min_time=0.2, rounds=5):
    fn()  # warm up
    n = 1
    while True:  # calls per round so that one round takes about min_time / rounds
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / rounds:
            break
        n *= 2
    best = dt / n
    for _ in range(rounds - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    avail = [i for i in K.available_isas() if i != "generic"]
    ap.add_argument("--isa", nargs="+", default=avail[::-1] or ["generic"])
    ap.add_argument("--dtype", nargs="+", default=DTYPES)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()}, ISAs {K.available_isas()}")
    for isa in args.isa:
        for dtype in args.dtype:
            for n_out, n_in in GEMV_SHAPES:
                w = weights((n_out, n_in), dtype, rng)
                x = rng.standard_normal((1, n_in), dtype=np.float32)
                t = best_time(lambda: K.matmul(isa, x, w, dtype), rounds=args.rounds)
                print(f"{isa:7s} {dtype:9s} GEMV {n_out:6d}x{n_in:<5d} {t * 1e6:9.1f} us  {w.nbytes / t / 1e9:6.1f} GB/s")
            for n_out, n_in, n_tok in GEMM_SHAPES:
                w = weights((n_out, n_in), dtype, rng)
                x = rng.standard_normal((n_tok, n_in), dtype=np.float32)
                t = best_time(lambda: K.matmul(isa, x, w, dtype), rounds=args.rounds)
                flops = 2.0 * n_out * n_in * n_tok
                print(f"{isa:7s} {dtype:9s} GEMM {n_out:6d}x{n_in:<5d} T={n_tok:<4d} {t * 1e3:7.2f} ms  {flops / t / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
