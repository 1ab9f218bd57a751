"""The int8 KV cache (kv_dtype="int8") end to end, on the tiny models of tests/test_llm.py.

Oracles: the numpy reference forward with the same int8 rounding of every K and V row (llama
family: tight), and the engine's own float32 cache, which tests/test_llm.py checks against
transformers (every family: the quantization error, within a stated bound).
"""

from __future__ import annotations

import numpy as np
import pytest

import slmcore
from slmcore import _core
from slmcore.models import family_for
from slmcore.reference.forward import forward
from test_llm import CASES, SEQ, assert_decode_equals_full, assert_threads_bitwise, models  # noqa: F401 (fixture)
from test_llm_int4 import relative_error

ISAS = _core.kernels.available_isas()
FAMILY_CASES = [c[0] for c in CASES]


# The engine against the reference forward over the same int8-rounded K/V: measured <= 4e-7 per
# position (float32 arithmetic only). The reference rounds its float64 K/V to float32 before
# quantizing; a value sitting on a rounding boundary could move one int8 code (~1e-3 here), which
# these fixed inputs do not hit on any ISA.
TIGHT = 1e-5


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case_id", ["llama-tied", "llama-untied-llama3-rope-bias", "mistral-window", "qwen2-window-layers"])
def test_int8_cache_matches_reference_forward(models, case_id, isa):
    with slmcore.LLM(models(case_id), kv_dtype="int8", threads=2) as llm:
        llm._engine.set_isa(isa)
        ours = llm.logits(SEQ)
        weights = family_for(llm.config).engine_weights(llm.config, llm._checkpoint, "float32")
    ref = forward(llm.config, weights, SEQ, kv_dtype="int8")
    assert relative_error(ours, ref).max() <= TIGHT
    # the rounding is really there: exact K/V are ~1e-2 away
    assert relative_error(ours, forward(llm.config, weights, SEQ)).max() > 100 * TIGHT


# Each cached element moves by at most half a step, amax(row) / 254 (0.4% of the row's largest
# value), against 2^-12 for float16. Measured over every family (SEQ, 23 positions), the relative
# logit error against the float32 cache is 0.3%..1.7% (mean ~0.7%) for most cases and at most 3.6%
# with Gemma 2's small soft-caps and Gemma 3, about 20x float16's error, as the step sizes predict.
NEAR_FLOAT = 0.06


@pytest.mark.parametrize("case_id", FAMILY_CASES)
def test_every_family_runs_int8_cache(models, case_id):
    with slmcore.LLM(models(case_id), kv_dtype="float32") as llm:
        ref = llm.logits(SEQ)
        f32_bytes = llm._engine.kv_cache_bytes
    with slmcore.LLM(models(case_id), kv_dtype="int8") as llm:
        assert llm.kv_dtype == "int8"
        ours = llm.logits(SEQ)
        head_dim = llm.config.head_dim
        # int8 values plus a float32 scale per row, against 4 bytes per value
        assert llm._engine.kv_cache_bytes * 4 * head_dim == f32_bytes * (head_dim + 4)
    err = relative_error(ours, ref)
    assert err.max() <= NEAR_FLOAT, err
    assert err.max() > 1e-4  # quantized, not a float cache


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case_id", FAMILY_CASES)
def test_int8_incremental_decode_equals_full_sequence(models, isa, case_id):
    """Prefill then one token at a time gives bitwise the logits of one full-sequence call: a row's
    int8 values and scale depend on that row alone. Covers sliding windows, ALiBi and soft-caps."""
    with slmcore.LLM(models(case_id), kv_dtype="int8") as llm:
        llm._engine.set_isa(isa)
        assert_decode_equals_full(llm)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case_id", ["gemma3", "gemma2", "bloom", "mistral-window"])
def test_int8_threads_are_bitwise_identical(models, isa, case_id):
    with slmcore.LLM(models(case_id), kv_dtype="int8", threads=1) as llm:
        llm._engine.set_isa(isa)
        assert_threads_bitwise(llm)


def test_int8_truncate_then_continue(models):
    """Rolling back and writing new positions overwrites their int8 rows and scales: the logits
    equal those of a fresh sequence with the same tokens."""
    with slmcore.LLM(models("mistral-window"), kv_dtype="int8") as llm:
        engine = llm._engine
        engine.reset()
        engine.forward(np.asarray(SEQ), "none")
        engine.truncate(10)
        other = [5, 9, 250, 31, 7]
        resumed = engine.forward(np.asarray(other), "all")
        fresh = llm.logits(SEQ[:10] + other)[10:]
    np.testing.assert_array_equal(resumed, fresh)


@pytest.mark.parametrize("case_id", ["gemma3", "falcon-rw"])
def test_int8_generate(models, case_id):
    """Greedy generation with the int8 cache picks, at every step, the argmax of the full-sequence
    logits of what it has generated so far."""
    params = slmcore.SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)
    with slmcore.LLM(models(case_id), kv_dtype="int8") as llm:
        out = llm.generate([SEQ[:6]], params)[0]
        assert len(out.token_ids) == 10 and out.finish_reason == "length"
        logits = llm.logits(SEQ[:6] + list(out.token_ids)[:-1])
    np.testing.assert_array_equal(np.argmax(logits[5:], axis=1), out.token_ids)


# int4 weights quantize the activations to int8 in blocks of 32 before every matmul, so the cache's
# rounding can also move activation codes downstream, which these random models' norms amplify.
# Measured against int4 weights with the float32 cache over every family (SEQ): mean relative
# logit error per model 0.6%..5.4%, max 15% (Gemma 3, one position; 10% Gemma 2), about a tenth of
# what int4 weights themselves cost against float weights (mean 7%..73%).
INT4_MEAN, INT4_MAX = 0.06, 0.2


@pytest.mark.parametrize("case_id", ["llama-tied", "gemma3", "qwen3-qk-norm-bias", "bloom"])
def test_int4_weights_with_int8_cache(models, case_id):
    with slmcore.LLM(models(case_id), quant="int4", group_size=32, kv_dtype="float32") as llm:
        ref = llm.logits(SEQ)
    with slmcore.LLM(models(case_id), quant="int4", group_size=32, kv_dtype="int8") as llm:
        assert llm.dtype == "int4" and llm.kv_dtype == "int8"
        full = llm.logits(SEQ)
        assert_decode_equals_full(llm, prefix=5)
    err = relative_error(full, ref)
    assert err.mean() <= INT4_MEAN and err.max() <= INT4_MAX, err
    assert err.max() > 1e-4  # quantized, not a float cache


def test_rwkv_ignores_kv_dtype(tmp_path):
    """RWKV has no KV cache: kv_dtype is accepted and has no effect, int8 included (as documented)."""
    from tiny_models import make_tiny_model

    path = make_tiny_model(tmp_path / "rwkv", arch="rwkv")
    with slmcore.LLM(path, kv_dtype="float32") as llm:
        ref = llm.logits(SEQ[:8])
        assert llm._engine.kv_cache_bytes == 0
    with slmcore.LLM(path, kv_dtype="int8") as llm:
        np.testing.assert_array_equal(llm.logits(SEQ[:8]), ref)


def test_kv_cache_size_is_logged(models, caplog):
    with caplog.at_level("INFO", logger="slmcore"):
        with slmcore.LLM(models("llama-tied"), kv_dtype="int8", max_seq_len=64) as llm:
            mib = llm._engine.kv_cache_bytes / 2**20
    assert f"KV cache: int8, {mib:.1f} MiB for 64 positions" in caplog.text
