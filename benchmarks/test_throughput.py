"""Decode and prefill throughput of slmcore and llama.cpp on the same random ~135M Llama weights.

    pip install ".[bench]"          # builds llama-cpp-python from source (~7 minutes)
    pytest benchmarks/ -p no:randomly --benchmark-columns=median,rounds

Decode: 64 tokens one at a time after an 8-token prompt. Prefill: one 512-token prompt.
slmcore bf16 runs against llama.cpp F16 (same bytes per weight), f32 against F32. Nothing else
may run on the machine meanwhile: the 1-minute load average is recorded with every result.
"""

from __future__ import annotations

import numpy as np
import pytest

import slmcore
from conftest import RESULTS, loadavg
from models import gguf_file, hf_checkpoint, weight_bytes_per_token

DECODE_TOKENS = 64
PREFILL_TOKENS = 512
GGUF_TYPE = {"float32": "F32", "bfloat16": "F16"}

_engines: dict = {}


@pytest.fixture(scope="module", autouse=True)
def close_engines():
    """Close every model while the interpreter is intact (llama-cpp-python's __del__ at exit is noisy)."""
    yield
    for model in _engines.values():
        model.close()
    _engines.clear()


def slm_model(dtype: str, threads: int) -> slmcore.LLM:
    key = ("slmcore", dtype, threads)
    if key not in _engines:
        _engines[key] = slmcore.LLM(hf_checkpoint(dtype), threads=threads, max_seq_len=1024)
    return _engines[key]


def llama_cpp_model(dtype: str, threads: int):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the bench extra")
    key = ("llama.cpp", dtype, threads)
    if key not in _engines:
        _engines[key] = llama_cpp.Llama(
            model_path=str(gguf_file(hf_checkpoint(dtype), GGUF_TYPE[dtype])),
            n_ctx=1024, n_batch=PREFILL_TOKENS, n_ubatch=PREFILL_TOKENS, n_threads=threads,
            n_threads_batch=threads, flash_attn=True, verbose=False,
        )
    return _engines[key]


def prompt(n: int) -> list[int]:
    return np.random.default_rng(n).integers(300, 49152, size=n).tolist()


@pytest.mark.parametrize("engine", ["slmcore", "llama.cpp"])
@pytest.mark.parametrize("phase", ["decode", "prefill"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_throughput(benchmark, dtype, threads, phase, engine):
    ids = prompt(8 + DECODE_TOKENS) if phase == "decode" else prompt(PREFILL_TOKENS)
    if engine == "slmcore":
        core = slm_model(dtype, threads)._engine

        def setup():
            core.reset()
            if phase == "decode":
                core.forward(ids[:8], "last")

        def run():
            if phase == "decode":
                for t in ids[8:]:
                    core.forward([t], "last")
            else:
                core.forward(ids, "last")
    else:
        llm = llama_cpp_model(dtype, threads)

        def setup():
            llm.reset()
            if phase == "decode":
                llm.eval(ids[:8])

        def run():
            if phase == "decode":
                for t in ids[8:]:
                    llm.eval([t])
            else:
                llm.eval(ids)

    load_before = loadavg()
    benchmark.pedantic(run, setup=setup, rounds=5 if phase == "decode" else 3, iterations=1, warmup_rounds=1)
    n_tokens = DECODE_TOKENS if phase == "decode" else PREFILL_TOKENS
    tokens_per_s = n_tokens / benchmark.stats.stats.median
    bytes_per_token = weight_bytes_per_token(hf_checkpoint(dtype))
    gb_per_s = tokens_per_s * bytes_per_token / 1e9 if phase == "decode" else float("nan")
    label = f"{dtype}/{GGUF_TYPE[dtype]}" if engine == "llama.cpp" else dtype
    benchmark.extra_info.update(tokens_per_s=tokens_per_s, gb_per_s=gb_per_s, bytes_per_token=bytes_per_token,
                                load=f"{load_before}->{loadavg()}")
    RESULTS.append(dict(
        name=f"{phase} {engine} {label} t{threads}", key=(dtype, threads, phase), engine=engine, threads=threads,
        tokens_per_s=tokens_per_s, gb_per_s=gb_per_s, load=f"{load_before}->{loadavg()}",
    ))
