"""Single-thread timings of the quantized CPU kernels through slmcore._core.kernels.

Run standalone: python benchmarks/bench_quant_kernels.py [--isa avx512 avx2] [--repeats 7]

- GEMV (decode): GB/s of packed weight bytes over every matrix of a 135M Llama-shaped model
  (30 layers of q/o 576x576, k/v 192x576, gate/up 1536x576, down 576x1536, plus the 49152x576
  lm_head), int4 symmetric with G = 32 and 128, run back to back so that the working set
  (60-76 MB) is far larger than L3; also the lm_head as int8 rows (three copies, rotated).
- GEMM (prefill): GOP/s (2 * n_out * in * T) at T = 128 and 512 on 1536x576 and 5632x2048.
- The machine's single-thread read bandwidth (numpy max over 512 MiB), for the ratio.
Matrices run back to back inside C++ (bench_int4 / bench_int8), so no per-call Python overhead
is counted; the best of several sweeps is shown, with the load average. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from slmcore._core import kernels as K

LAYERS = 30
HIDDEN, INTER, KV, VOCAB = 576, 1536, 192, 49152
LAYER_SHAPES = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN), (INTER, HIDDEN), (INTER, HIDDEN), (HIDDEN, INTER)]
GEMM_SHAPES = [(1536, 576), (5632, 2048)]  # (n_out, in_features)
GEMM_TOKENS = [128, 512]


def read_bandwidth(rounds=5) -> float:
    data = np.ones(1 << 27, dtype=np.int32)  # 512 MiB
    best = 1e9
    for _ in range(rounds):
        t0 = time.perf_counter()
        data.max()
        best = min(best, time.perf_counter() - t0)
    return data.nbytes / best / 1e9


def packed_matrix(isa, n_out, in_features, group_size, sym, rng):
    ng = -(-in_features // group_size)
    qw = rng.integers(0, 256, (n_out, ng * group_size // 2), dtype=np.uint8)
    sc = (rng.random((n_out, ng), dtype=np.float32) * 0.02 + 0.001).astype(np.float16)
    mn = None if sym else (-8 * sc.astype(np.float32)).astype(np.float16)
    return K.int4_pack(isa, qw, sc, mn, group_size, in_features)


def model_shapes():
    return [s for _ in range(LAYERS) for s in LAYER_SHAPES] + [(VOCAB, HIDDEN)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    avail = [i for i in K.available_isas() if i != "generic"]
    ap.add_argument("--isa", nargs="+", default=avail[::-1] or ["generic"])
    ap.add_argument("--groups", nargs="+", type=int, default=[32, 128])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip", nargs="*", default=[], choices=["gemv", "int8", "gemm"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()}, ISAs {K.available_isas()}")
    bw = read_bandwidth()
    print(f"read bandwidth (numpy max over 512 MiB, 1 thread): {bw:.1f} GB/s")
    shapes = model_shapes()
    for isa in args.isa:
        if "gemv" not in args.skip:
            for g in args.groups:
                packed = [packed_matrix(isa, n, i, g, True, rng) for n, i in shapes]
                nbytes = sum(p.nbytes for p in packed)
                t = K.bench_int4(isa, packed, [n for n, _ in shapes], [i for _, i in shapes], g, True, 1, args.repeats)
                print(f"{isa:7s} int4 g{g:<3d} sym GEMV  135M model sweep ({len(shapes)} matrices, {nbytes / 1e6:5.1f} MB) "
                      f"{t * 1e3:7.2f} ms  {nbytes / t / 1e9:6.1f} GB/s  ({nbytes / t / 1e9 / bw:4.2f} of read bw)")
                del packed
        if "int8" not in args.skip:
            qs = [rng.integers(-127, 128, (VOCAB, HIDDEN), dtype=np.int8) for _ in range(3)]
            scs = [np.full(VOCAB, 0.01, np.float16) for _ in range(3)]
            nbytes = sum(q.nbytes for q in qs)
            t = K.bench_int8(isa, qs, scs, 1, args.repeats)
            print(f"{isa:7s} int8 rows    GEMV  3 x {VOCAB}x{HIDDEN} ({nbytes / 1e6:5.1f} MB)             "
                  f"{t * 1e3:7.2f} ms  {nbytes / t / 1e9:6.1f} GB/s  ({nbytes / t / 1e9 / bw:4.2f} of read bw)")
            del qs
        if "gemm" not in args.skip:
            for g in args.groups:
                for n_out, n_in in GEMM_SHAPES:
                    p = packed_matrix(isa, n_out, n_in, g, True, rng)
                    for n_tok in GEMM_TOKENS:
                        t = K.bench_int4(isa, [p], [n_out], [n_in], g, True, n_tok, max(3, args.repeats // 2))
                        ops = 2.0 * n_out * n_in * n_tok
                        print(f"{isa:7s} int4 g{g:<3d} sym GEMM  {n_out:5d}x{n_in:<5d} T={n_tok:<4d} {t * 1e3:8.2f} ms  {ops / t / 1e9:6.1f} GOP/s")
            q = rng.integers(-127, 128, (1536, 576), dtype=np.int8)
            sc = np.full(1536, 0.01, np.float16)
            for n_tok in GEMM_TOKENS:
                t = K.bench_int8(isa, [q], [sc], n_tok, max(3, args.repeats // 2))
                print(f"{isa:7s} int8 rows    GEMM   1536x576   T={n_tok:<4d} {t * 1e3:8.2f} ms  {2.0 * q.size * n_tok / t / 1e9:6.1f} GOP/s")


if __name__ == "__main__":
    main()
