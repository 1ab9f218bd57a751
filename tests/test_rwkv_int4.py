"""RWKV-4 with int4 weights (DESIGN.md section 4): quantize at load, save, reload.

Oracles: the numpy reference forward (slmcore.reference.forward.rwkv_forward) running the same
Int4Tensor / Int8Rows weights through the reference integer kernels, with activations quantized as
the engine does; and, loosely, transformers' float32 RwkvForCausalLM on the unquantized weights.
The tiny models are tests/test_rwkv.py's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

import slmcore
from slmcore import _core
from slmcore import quant as Q
from slmcore.errors import ModelFormatError
from slmcore.loader import Checkpoint
from slmcore.models import canonical_naming
from slmcore.models import rwkv as rwkv_family
from slmcore.reference.forward import rwkv_forward
from test_llm_int4 import FLIP, MOST, TIGHT, broken_copy, engine_weight_shapes, relative_error
from test_rwkv import CASES, SEQ, models, reference_logits  # noqa: F401 (fixtures)

ISAS = _core.kernels.available_isas()
LAYER_MATRICES = ("attention.key", "attention.value", "attention.receptance", "attention.output",
                  "feed_forward.key", "feed_forward.receptance", "feed_forward.value")  # fmt: skip

# Fresh 4-token sequences: the last positions run the token shift and the WKV recurrence on a
# state the earlier ones built. Each starts from a zero state, so an int8 code that flips between
# the engine and the reference (see test_llm_int4.py: a value on a rounding boundary) spoils only
# its own sequence, as a single token does in the llama family's test.
WINDOWS = np.random.default_rng(0).integers(0, 300, size=(30, 4)).tolist()


def canonical_values(llm: slmcore.LLM) -> dict:
    return {name: Q.canonical_value(entry) for name, entry in llm._entries.items()}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("case", ["rwkv", "rwkv-rescale-2", "rwkv-tied-eps"])
def test_int4_matches_reference_integer_forward(models, case, group_size, isa):
    """Same standard as the llama family: a sequence without a flipped code agrees to float32
    rounding (TIGHT); one with a flip stays within FLIP; at least MOST of them are flip-free."""
    with slmcore.LLM(models(case), quant="int4", group_size=group_size, threads=1) as llm:
        llm._engine.set_isa(isa)
        values = canonical_values(llm)
        for layer in range(llm.config.num_hidden_layers):
            for name in LAYER_MATRICES:
                assert isinstance(values[f"layers.{layer}.{name}"], Q.Int4Tensor), name
        assert isinstance(values["embed_tokens"], Q.Int8Rows) and isinstance(values["lm_head"], Q.Int8Rows)
        assert (llm._entries["lm_head"] is llm._entries["embed_tokens"]) == llm.config.tie_word_embeddings
        err = np.array([relative_error(llm.logits(w), rwkv_forward(llm.config, values, w)).max() for w in WINDOWS])
    assert err.max() <= FLIP, err
    assert (err <= TIGHT).mean() >= MOST, err


def test_integer_reference_differs_from_the_float_one(models):
    """The comparison above can fail: the reference on the dequantized float weights (the
    activations not quantized) is already far outside TIGHT of the integer reference."""
    with slmcore.LLM(models("rwkv"), quant="int4", group_size=64) as llm:
        values = canonical_values(llm)
        floats = {
            name: (Q.dequantize_int4(v), "float32") if isinstance(v, Q.Int4Tensor)
            else (Q.dequantize_int8_rows(v), "float32") if isinstance(v, Q.Int8Rows) else v
            for name, v in values.items()
        }  # fmt: skip
        integer = rwkv_forward(llm.config, values, SEQ)
        float_ref = rwkv_forward(llm.config, floats, SEQ)
    assert relative_error(float_ref, integer).min() > 100 * TIGHT


# Loose, and stated: measured on these models the relative logit error of int4 against the float32
# model (transformers) is at most 0.074 per position (mean 0.016 - 0.054 by case, G = 32 .. 128).
# Their hidden size (40) fits one or two groups, and the LayerNorms bound the activations, so
# the error is far below the llama family's on its random models.
NEAR_FLOAT = 0.15


@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("case", ["rwkv", "rwkv-rescale-2", "rwkv-tied-eps"])
def test_int4_stays_near_the_float_model(models, reference_logits, case, group_size):
    with slmcore.LLM(models(case), quant="int4", group_size=group_size) as llm:
        err = relative_error(llm.logits(SEQ), reference_logits(case))
    assert err.max() <= NEAR_FLOAT, err


# --- generation (incremental decode and thread counts: tests/test_rwkv.py runs those with int4 too) ----


def test_int4_generate(models):
    """Greedy generation (prefill, then decode steps) picks the argmax of the full-sequence logits
    at every step, and stream() yields the same tokens."""
    params = slmcore.SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    prompt = SEQ[:5]
    with slmcore.LLM(models("rwkv-square"), quant="int4", group_size=32) as llm:
        out = llm.generate(prompt, params)[0]
        streamed = [t for chunk in llm.stream(prompt, params) for t in chunk.token_ids]
        expected = []
        for _ in range(params.max_tokens):
            expected.append(int(np.argmax(llm.logits(prompt + expected)[-1])))
    assert out.token_ids == expected == streamed
    assert out.finish_reason == "length" and len(set(expected)) > 1


# --- names, save and reload ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_weight_shapes_describe_the_engine_weights(models, case):
    """A quantized checkpoint stores exactly the canonical weights that engine_weights hands over,
    under transformers' names (checkpoint_names(...)[0], with the `rwkv.` prefix)."""
    config, shapes = engine_weight_shapes(models(case))
    assert canonical_naming(config) is rwkv_family
    assert shapes == rwkv_family.weight_shapes(config)
    with Checkpoint.open(models(case)) as checkpoint:
        assert {rwkv_family.checkpoint_names(name)[0] for name in shapes if name != "lm_head"} <= set(checkpoint.tensors)


@pytest.mark.parametrize("case", ["rwkv", "rwkv-tied-eps"])
def test_save_quantized_then_load_gives_identical_logits(models, tmp_path, case):
    with slmcore.LLM(models(case), quant="int4", group_size=64) as llm:
        before = llm.logits(SEQ)
        out = llm.save_quantized(tmp_path / "q")
        tied = llm.config.tie_word_embeddings
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert (qc["quant_method"], qc["group_size"], qc["sym"], qc["unquantized"]) == ("slmcore", 64, True, [])
    assert sorted(qc["int8"]) == (["rwkv.embeddings"] if tied else ["head", "rwkv.embeddings"])
    tensors = load_file(out / "model.safetensors")
    assert tensors["rwkv.blocks.0.attention.key.qweight"].dtype == np.uint8
    assert tensors["rwkv.blocks.2.feed_forward.time_mix_key"].shape == (40,)
    assert ("head.qweight" in tensors) != tied
    with slmcore.LLM(out) as again:  # no quant= needed
        assert again.quant == "int4" and again.group_size == 64
        np.testing.assert_array_equal(again.logits(SEQ), before)
        again.save_quantized(tmp_path / "q2")  # a loaded quantized model saves the same tensors
    resaved = load_file(tmp_path / "q2" / "model.safetensors")
    assert set(tensors) == set(resaved)
    for name, array in tensors.items():
        assert array.dtype == resaved[name].dtype and np.array_equal(array, resaved[name]), name


def test_corrupt_quantized_checkpoint_is_a_model_format_error(models, tmp_path):
    with slmcore.LLM(models("rwkv"), quant="int4", group_size=32) as llm:
        out = llm.save_quantized(tmp_path / "q")
    head = load_file(out / "model.safetensors")["head.qweight"]
    for name, change in (("rwkv.blocks.1.feed_forward.value.scales", None),
                         ("rwkv.blocks.0.attention.time_first", np.zeros(23, np.float32)),
                         ("head.qweight", head[:, :-1].copy())):  # fmt: skip
        with pytest.raises(ModelFormatError, match=name.replace(".", r"\.")):
            slmcore.LLM(broken_copy(out, tmp_path / "bad", name, change))


def test_engine_refuses_an_int4_embedding(models):
    """The graph reads single embedding rows: int8 rows or 16/32-bit, never int4 (a ModelFormatError)."""
    with slmcore.LLM(models("rwkv"), quant="int4", group_size=32) as llm:
        weights = dict(llm._entries)
        config = rwkv_family.engine_config(llm.config, max_seq_len=16, threads=1)
    embed = Q.dequantize_int8_rows(Q.canonical_value(weights["embed_tokens"]))
    weights["embed_tokens"] = Q.engine_entry(Q.quantize_int4(embed, 32))
    with pytest.raises(ModelFormatError, match="embed_tokens cannot be int4"):
        _core.Engine("rwkv", config, weights)
