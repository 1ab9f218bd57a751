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


def _config(shape: dict):
    import json
    import tempfile
    from pathlib import Path

    from slmcore.config import ModelConfig

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(dict(shape, model_type="llama", rms_norm_eps=1e-5,
                                                             rope_theta=500000.0, tie_word_embeddings=False)))
        return ModelConfig.from_file(d)


def random_weights(shape: dict, group_size: int = 128, seed: int = 0):
    """(canonical name, value) of a random int4 llama model, one tensor at a time: Int4Tensor layer
    matrices (random codes, scales 0.001-0.004), Int8Rows embedding / lm_head, float32 norms of 1."""
    import numpy as np

    from slmcore.models.llama import weight_shapes
    from slmcore.quant import Int4Tensor, Int8Rows

    rng = np.random.default_rng(seed)
    for name, shp in weight_shapes(_config(shape)).items():
        if len(shp) == 1:
            yield name, (np.ones(shp, np.float32), "float32")
        elif name in ("embed_tokens", "lm_head"):
            q = rng.integers(-127, 128, size=shp, dtype=np.int8)
            yield name, Int8Rows(q, rng.uniform(1e-4, 2e-4, size=shp[0]).astype(np.float16))
        else:
            rows, cols = shp
            qweight = rng.integers(0, 256, size=(rows, cols // 2), dtype=np.uint8)
            scales = rng.uniform(0.001, 0.004, size=(rows, cols // group_size)).astype(np.float16)
            yield name, Int4Tensor(qweight, scales, None, group_size, cols, True)


def random_int4_llm(shape: dict, group_size: int = 128, max_seq_len: int = 1024, device: int = 0):
    """A llama-graph engine (on CUDA device `device`, -1 for the CPU) with random_weights, built
    without a checkpoint; returns (engine, weight bytes read per decode step)."""
    from slmcore.llm import _attention_engine_config
    from slmcore.quant import Int4Tensor, Int8Rows, engine_entry

    weights, nbytes = {}, 0
    for name, value in random_weights(shape, group_size):
        weights[name] = engine_entry(value)
        if isinstance(value, Int4Tensor):
            nbytes += value.qweight.nbytes + value.scales.nbytes
        elif isinstance(value, Int8Rows):
            nbytes += value.qweight.nbytes + value.scales.nbytes if name == "lm_head" else value.qweight.shape[1]
    kv = "float16" if device >= 0 else "float32"
    engine_config = _attention_engine_config(_config(shape), max_seq_len, kv, 1)
    return _core.Engine("llama", engine_config, weights, device=device), nbytes


def random_torch_llm(shape: dict, group_size: int = 128, device: str = "cuda", dtype: str = "float16"):
    """transformers' LlamaForCausalLM with the same weights as random_int4_llm, dequantized to
    `dtype` on `device`, loaded one tensor at a time."""
    import numpy as np
    import torch
    import transformers

    from slmcore.quant import Int4Tensor, Int8Rows, dequantize_int4, dequantize_int8_rows

    torch_dtype = getattr(torch, dtype)
    config = transformers.LlamaConfig(**shape, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    state = {}
    for name, value in random_weights(shape, group_size):
        if isinstance(value, Int4Tensor):
            array = dequantize_int4(value)
        elif isinstance(value, Int8Rows):
            array = dequantize_int8_rows(value)
        else:
            array = value[0]
        hf = "lm_head.weight" if name == "lm_head" else f"model.{name}.weight"
        state[hf] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device=device, dtype=torch_dtype)
    model.load_state_dict(state, assign=True)
    # Buffers that are not in the state dict (the rotary inverse frequencies) are made afresh.
    with torch.device(device):
        model.model.rotary_emb = type(model.model.rotary_emb)(config)
    return model.to(device).eval()


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


def torch_decode_speed(size: str, tokens: int = 64) -> dict:
    """transformers fp16 on the same weights: 64 decode steps with its dynamic cache, eager."""
    import time

    import torch

    model = random_torch_llm(DECODE_SHAPES[size])
    ids = torch.randint(0, DECODE_SHAPES[size]["vocab_size"], (1, 8 + tokens), device="cuda")
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            out = model(ids[:, :8], use_cache=True)
            cache = out.past_key_values
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(8, 8 + tokens):
                out = model(ids[:, i : i + 1], past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    del model
    torch.cuda.empty_cache()
    return dict(size=size, tokens_per_s=tokens / best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--launches", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--decode", nargs="*", default=[], choices=sorted(DECODE_SHAPES),
                    help="also time batch-1 decode of random int4 models of these shapes")
    ap.add_argument("--no-gemv", action="store_true", help="skip the GEMV table")
    ap.add_argument("--torch", action="store_true", help="with --decode: also transformers fp16 on the same weights")
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
        if args.torch:
            t = torch_decode_speed(size)
            r["torch_fp16_tokens_per_s"] = t["tokens_per_s"]
            print(f"decode {size}: transformers fp16 on the same weights {t['tokens_per_s']:.1f} tok/s "
                  f"(slmcore int4 / torch fp16 = {r['tokens_per_s'] / t['tokens_per_s']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
