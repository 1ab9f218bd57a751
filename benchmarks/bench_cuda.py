"""CUDA backend timings on the GPU of this machine (not collected by pytest).

    python benchmarks/bench_cuda.py [--json OUT.json] [--decode 1.1b 8b]

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

# Random-weight int4 models for --decode, made directly in the int4 format (no float checkpoint):
# TinyLlama-1.1B's shape and Llama-3-8B's.
DECODE_SHAPES = {
    "1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192),
}  # fmt: skip

GEMV_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336), (2048, 2048), (5632, 2048), (32000, 2048)]  # (rows, cols)


def random_int4_llm(shape: dict, group_size: int = 128, max_seq_len: int = 1024):
    """A llama-graph engine on the GPU with random int4 layer matrices and int8-row embedding /
    lm_head, built without a checkpoint; returns (engine, weight bytes read per decode step)."""
    import json
    import tempfile
    from pathlib import Path

    import numpy as np

    from slmcore.config import ModelConfig
    from slmcore.llm import _attention_engine_config
    from slmcore.models.llama import weight_shapes
    from slmcore.quant import Int4Tensor, Int8Rows, engine_entry

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(dict(shape, model_type="llama", rms_norm_eps=1e-5,
                                                             rope_theta=500000.0, tie_word_embeddings=False)))
        config = ModelConfig.from_file(d)
    rng = np.random.default_rng(0)
    weights, nbytes = {}, 0
    for name, shp in weight_shapes(config).items():
        if len(shp) == 1:
            weights[name] = (np.ones(shp, np.float32), "float32")
        elif name in ("embed_tokens", "lm_head"):
            q = rng.integers(-127, 128, size=shp, dtype=np.int8)
            scales = rng.uniform(1e-4, 2e-4, size=shp[0]).astype(np.float16)
            weights[name] = engine_entry(Int8Rows(q, scales))
            nbytes += q.nbytes + scales.nbytes if name == "lm_head" else shp[1]
        else:
            rows, cols = shp
            qweight = rng.integers(0, 256, size=(rows, cols // 2), dtype=np.uint8)
            scales = rng.uniform(0.001, 0.004, size=(rows, cols // group_size)).astype(np.float16)
            weights[name] = engine_entry(Int4Tensor(qweight, scales, None, group_size, cols, True))
            nbytes += qweight.nbytes + scales.nbytes
    engine_config = _attention_engine_config(config, max_seq_len, "float16", 1)
    return _core.Engine("llama", engine_config, weights, device=0), nbytes


def decode_speed(size: str, tokens: int = 64) -> dict:
    import time

    import numpy as np

    engine, nbytes = random_int4_llm(DECODE_SHAPES[size])
    ids = np.random.default_rng(1).integers(0, DECODE_SHAPES[size]["vocab_size"], size=8 + tokens)
    best = float("inf")
    for _ in range(3):
        engine.reset()
        engine.forward(ids[:8], "last")
        t0 = time.perf_counter()
        for t in ids[8:]:
            engine.forward(np.asarray([t]), "last")
        best = min(best, time.perf_counter() - t0)
    tok_s = tokens / best
    engine.close()
    return dict(size=size, tokens_per_s=tok_s, GBps=tok_s * nbytes / 1e9, weight_bytes=nbytes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--launches", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--decode", nargs="*", default=[], choices=sorted(DECODE_SHAPES),
                    help="also time batch-1 decode of random int4 models of these shapes")
    ap.add_argument("--no-gemv", action="store_true", help="skip the GEMV table")
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
    for rows, cols in [] if args.no_gemv else GEMV_SHAPES:
        for group_size, asym, pdl in ((128, False, False), (128, False, True), (32, False, True), (32, True, True)):
            t = _core.cuda.bench_int4_gemv(rows, cols, group_size, asym, rotate, args.launches, args.repeats, pdl)
            gbs = t["bytes"] / t["seconds"] / 1e9
            row = dict(rows=rows, cols=cols, group_size=group_size, asym=asym, pdl=pdl, us=t["seconds"] * 1e6,
                       GBps=gbs, share=gbs / copy_gbs, sets=t["sets"])
            results["gemv"].append(row)
            print(f"| {rows} x {cols} | {group_size} | {'asym' if asym else 'sym'} | {'PDL' if pdl else 'plain'} | "
                  f"{row['us']:.2f} | {gbs:.0f} | {row['share']:.2f} | {t['sets']} |")
    for size in args.decode:
        r = decode_speed(size)
        results.setdefault("decode", []).append(r)
        print(f"decode {size}: {r['tokens_per_s']:.1f} tok/s, {r['GBps']:.0f} GB/s of weights "
              f"({r['GBps'] / copy_gbs:.2f} of copy bw; {r['weight_bytes'] / 1e9:.2f} GB per token)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
