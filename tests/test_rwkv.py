"""RWKV-4 (graph "rwkv") against transformers' RwkvForCausalLM on tiny random-weight models.

The models have odd sizes and attention_hidden_size != hidden_size; their time parameters are
drawn where trained models have them (tests/tiny_models.py). RWKV's LayerNorms make the residual
stream's scale almost irrelevant, so transformers' inference rescaling (rescale_every) only shows
with a large layer_norm_epsilon: the rescaling cases use one.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers

import slmcore
from slmcore import _core
from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import family_for
from slmcore.reference import forward as reference
from tiny_models import hf_logits, make_tiny_model

ISAS = _core.kernels.available_isas()

CASES = {
    # rescale_every keeps RwkvConfig's default (6): no rescaling in 3 layers; untied head.
    "rwkv": dict(),
    # blocks 2 and 3 rescaled by 1/2, x halved after blocks 1 and 3; eps large enough to notice.
    "rwkv-rescale-2": dict(rescale_every=2, num_hidden_layers=4, layer_norm_epsilon=0.05),
    # no rescaling, tied head, a layer_norm_epsilon that differs from ln_out's fixed 1e-5.
    "rwkv-tied-eps": dict(rescale_every=0, tie_word_embeddings=True, layer_norm_epsilon=1e-2),
    # a square time mix: transformers' generate needs it (its cached state is sized hidden_size).
    "rwkv-square": dict(attention_hidden_size=40),
}  # fmt: skip

SEQ = [3, 17, 250, 4, 99, 1, 0, 288, 77, 12, 5, 160, 33, 2, 201, 45, 6, 7, 299, 88, 100, 150, 42]
F32_TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    built = {}

    def get(case: str, dtype: str = "float32"):
        if (case, dtype) not in built:
            path = tmp_path_factory.mktemp(f"{case}-{dtype}")
            built[case, dtype] = make_tiny_model(path, arch="rwkv", dtype=dtype, **CASES[case])
        return built[case, dtype]

    return get


@pytest.fixture(scope="module")
def reference_logits(models):
    cache = {}

    def get(case: str, dtype: str = "float32"):
        if (case, dtype) not in cache:
            cache[case, dtype] = hf_logits(models(case, dtype), SEQ)
        return cache[case, dtype]

    return get


def numpy_reference(model_dir, ids, change_weights=None) -> np.ndarray:
    config = ModelConfig.from_file(model_dir)
    with Checkpoint.open(model_dir) as checkpoint:
        weights = family_for(config).engine_weights(config, checkpoint)
        if change_weights is not None:
            weights = change_weights(dict(weights))
        return reference.rwkv_forward(config, weights, ids)


# -- logits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(CASES))
def test_f32_logits_match_transformers(models, reference_logits, case, isa):
    with slmcore.LLM(models(case), threads=2) as llm:
        llm._engine.set_isa(isa)
        ours = llm.logits(SEQ)
    ref = reference_logits(case)
    assert ours.shape == ref.shape == (len(SEQ), 300)
    assert np.abs(ref).max() > 1.0
    assert np.abs(ours - ref).max() <= F32_TOL


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_reference_matches_transformers(models, reference_logits, case):
    ours = numpy_reference(models(case), SEQ)
    assert ours.dtype == np.float64
    assert np.abs(ours - reference_logits(case)).max() <= F32_TOL


@pytest.mark.parametrize("isa", ISAS)
def test_bf16_checkpoint(models, reference_logits, isa):
    """bf16 weights are used as stored and widened exactly, and the recurrent state is float32,
    so the only difference from transformers (which upcasts the same values) is summation order."""
    with slmcore.LLM(models("rwkv", "bfloat16")) as llm:
        assert llm.dtype == "bfloat16"
        llm._engine.set_isa(isa)
        assert np.abs(llm.logits(SEQ) - reference_logits("rwkv", "bfloat16")).max() <= F32_TOL


# Weights as stored (float32), or quantized at load: int4 layer matrices, int8-row embedding and
# head (tests/test_rwkv_int4.py compares those with the reference).
WEIGHTS = {"f32": dict(), "int4": dict(quant="int4", group_size=32)}


@pytest.mark.parametrize("weights", list(WEIGHTS))
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", ["rwkv", "rwkv-rescale-2"])
def test_incremental_decode_equals_full_sequence(models, isa, case, weights):
    """Prefill, then one token at a time (the state carried over), gives bitwise the logits of one
    full-sequence call. With quantized weights, a decode step quantizes its activations per thread
    and a prefill shares them across threads: the same bits either way."""
    with slmcore.LLM(models(case), threads=1, **WEIGHTS[weights]) as llm:
        llm._engine.set_isa(isa)
        full = llm.logits(SEQ)
        steps = [llm._prefill(SEQ[:7])]
        steps += [llm._decode(t) for t in SEQ[7:]]
        assert llm._engine.n_past == len(SEQ)
        chunks = [llm._prefill(SEQ[:3]), llm._engine.forward(np.array(SEQ[3:12]), "all"),
                  llm._engine.forward(np.array(SEQ[12:]), "all")]  # fmt: skip
    np.testing.assert_array_equal(np.stack(steps), full[6:])
    np.testing.assert_array_equal(np.vstack([chunks[0][None], *chunks[1:]]), full[2:])


@pytest.mark.parametrize("weights", list(WEIGHTS))
@pytest.mark.parametrize("isa", ISAS)
def test_threads_are_bitwise_identical(models, isa, weights):
    """A full sequence and decode steps; 3 threads: more than some row ranges have tiles."""
    with slmcore.LLM(models("rwkv-rescale-2"), threads=1, **WEIGHTS[weights]) as llm:
        llm._engine.set_isa(isa)
        one = llm.logits(SEQ)
        decode_one = [llm._prefill(SEQ[:2])] + [llm._decode(t) for t in SEQ[2:6]]
        for threads in (2, 3):
            llm._engine.set_threads(threads)
            np.testing.assert_array_equal(llm.logits(SEQ), one)
            np.testing.assert_array_equal([llm._prefill(SEQ[:2])] + [llm._decode(t) for t in SEQ[2:6]], decode_one)


def test_long_prompt_crosses_chunks(tmp_path):
    """Prompts longer than the engine's 512-token chunk carry the state across passes."""
    path = make_tiny_model(tmp_path / "m", arch="rwkv", num_hidden_layers=2, context_length=1024)
    ids = np.random.default_rng(0).integers(0, 300, size=600).tolist()
    with slmcore.LLM(path) as llm:
        assert np.abs(llm.logits(ids) - hf_logits(path, ids)).max() <= F32_TOL


# -- generation -------------------------------------------------------------------------------


def test_greedy_generation_matches_transformers(models):
    """Greedy tokens equal transformers' generate (which runs the model step by step on its own
    state), up to the first near tie of transformers' logits (DESIGN.md section 6)."""
    path = models("rwkv-square")
    prompt, n_new = SEQ[:5], 24
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=0)
    expected = out.sequences[0, len(prompt):].tolist()
    assert len(set(expected)) > n_new // 2  # not a model stuck on one token
    scores = torch.stack(out.scores)[:, 0].numpy()
    params = slmcore.SamplingParams(temperature=0, max_tokens=n_new, ignore_eos=True)
    with slmcore.LLM(path) as llm:
        ours = llm.generate(prompt, params)[0].token_ids
        again = llm.generate(prompt, params)[0].token_ids  # a second call starts from a fresh state
        streamed = [t for chunk in llm.stream(prompt, params) for t in chunk.token_ids]
    assert ours == again == streamed
    for step, (a, b) in enumerate(zip(ours, expected)):
        if a != b:
            top2 = np.sort(scores[step])[-2:]
            assert top2[1] - top2[0] < 0.01 * np.abs(scores[step]).max(), f"diverged at step {step}"
            break
    assert len(ours) == n_new


# -- sequence operations and bad input ---------------------------------------------------------


def test_truncate_supports_only_reset_and_no_op(models):
    """A recurrent state cannot go back to a middle position: truncate(n) works for n == n_past
    (nothing to do) and n == 0 (a fresh sequence), and raises InvalidArgumentError otherwise,
    leaving the sequence as it was."""
    with slmcore.LLM(models("rwkv")) as llm:
        engine = llm._engine
        full = llm.logits(SEQ)
        engine.forward(np.array(SEQ[:10]), "none")
        engine.truncate(10)
        assert engine.n_past == 10
        for bad in (5, 1, 11, -1):
            with pytest.raises(slmcore.InvalidArgumentError, match="truncate"):
                engine.truncate(bad)
        assert engine.n_past == 10
        rest = engine.forward(np.array(SEQ[10:]), "all")
        np.testing.assert_array_equal(rest, full[10:])
        engine.truncate(0)
        assert engine.n_past == 0
        np.testing.assert_array_equal(engine.forward(np.array(SEQ), "all"), full)


def test_invalid_tokens_and_context_length(models):
    with slmcore.LLM(models("rwkv"), max_seq_len=8) as llm:
        for bad in ([300], [-1], [1, 2, 10**12]):
            with pytest.raises(slmcore.InvalidTokenError):
                llm.logits(bad)
        assert llm.logits(list(range(8))).shape == (8, 300)
        with pytest.raises(slmcore.ContextLengthError):
            llm.logits(list(range(9)))
        llm._prefill(list(range(7)))
        llm._decode(3)
        with pytest.raises(slmcore.ContextLengthError):
            llm._decode(4)
        with pytest.raises(slmcore.ContextLengthError):
            llm.generate([1, 2, 3], slmcore.SamplingParams(max_tokens=6))
    # context_length plays max_position_embeddings' part: the default bound and the largest allowed
    with pytest.raises(slmcore.InvalidArgumentError, match="512"):
        slmcore.LLM(models("rwkv"), max_seq_len=513)


def test_config(models, tmp_path):
    config = ModelConfig.from_file(models("rwkv"))
    assert (config.model_type, config.hidden_size, config.attention_hidden_size, config.intermediate_size) == (
        "rwkv", 40, 24, 75)
    assert (config.rescale_every, config.max_position_embeddings, config.tie_word_embeddings) == (6, 512, False)
    assert config.num_attention_heads == 0 and config.head_dim == 0
    bare = ModelConfig.from_dict({"model_type": "rwkv", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                                  "rescale_every": -1})  # fmt: skip
    assert (bare.attention_hidden_size, bare.intermediate_size, bare.rescale_every, bare.eos_token_ids) == (8, 32, 0, (0,))
    for field, value in (("attention_hidden_size", 0), ("intermediate_size", "4"), ("layer_norm_epsilon", -1)):
        with pytest.raises(slmcore.ConfigError, match=field):
            ModelConfig.from_dict({"model_type": "rwkv", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                                   field: value})  # fmt: skip


def test_missing_or_misshapen_weights(models, tmp_path):
    from safetensors.numpy import load_file, save_file

    src = models("rwkv")
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    tensors = load_file(str(src / "model.safetensors"))
    # hub-style names without the `rwkv.` prefix load too
    save_file({k.removeprefix("rwkv."): v for k, v in tensors.items()}, str(dst / "model.safetensors"))
    with slmcore.LLM(dst) as llm:
        np.testing.assert_array_equal(llm.logits(SEQ[:4]), slmcore.LLM(src).logits(SEQ[:4]))
    for name, change in (("head.weight", None), ("rwkv.blocks.1.attention.time_first", np.zeros(23, np.float32))):
        broken = dict(tensors)
        if change is None:
            del broken[name]
        else:
            broken[name] = change
        save_file(broken, str(dst / "model.safetensors"))
        with pytest.raises(slmcore.ModelFormatError, match=name.split(".")[-1]):
            slmcore.LLM(dst)


# -- sensitivity: the comparison must catch each part of the model going wrong ------------------


@pytest.mark.parametrize("case,change", [
    ("rwkv-rescale-2", dict(rescale_every=0)),
    ("rwkv-rescale-2", dict(rescale_every=1)),
    ("rwkv-tied-eps", dict(rms_norm_eps=1e-5)),
])  # fmt: skip
def test_each_config_switch_matters(models, reference_logits, monkeypatch, case, change):
    real_from_file = ModelConfig.from_file
    monkeypatch.setattr(ModelConfig, "from_file", classmethod(lambda cls, path: replace(real_from_file(path), **change)))
    with slmcore.LLM(models(case)) as llm:
        assert np.abs(llm.logits(SEQ) - reference_logits(case)).max() > 100 * F32_TOL


def _set(weights, suffix, fn):
    for name, (array, dtype) in weights.items():
        if name.endswith(suffix):
            weights[name] = (fn(array.astype(np.float32)), dtype)
    return weights


BUGS = {
    "no time_first bonus": lambda w: _set(w, "attention.time_first", np.zeros_like),
    "time_decay with the wrong sign": lambda w: _set(w, "attention.time_decay", np.negative),
    "no token shift in the time mix": lambda w: _set(w, "attention.time_mix_key", np.ones_like),
    "no token shift in the channel mix": lambda w: _set(w, "feed_forward.time_mix_receptance", np.ones_like),
    "shift weights swapped": lambda w: _set(w, "attention.time_mix_value", lambda a: 1 - a),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_tiny_models_catch_wrong_recurrence(models, reference_logits, bug):
    """The tiny models' logits move far outside the tolerance when one ingredient of the time or
    channel mix is wrong, so matching transformers checks each of them."""
    error = np.abs(numpy_reference(models("rwkv"), SEQ, BUGS[bug]) - reference_logits("rwkv")).max()
    assert error > 100 * F32_TOL, f"{bug}: error {error:.2e}"
