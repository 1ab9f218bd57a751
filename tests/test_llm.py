"""The engine against transformers on tiny random-weight models (DESIGN.md section 6, tier 2).

transformers in float32 is the independent oracle; every CPU ISA runs in this one process
through the engine's internal switch.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

import slmcore
from slmcore import _core
from slmcore.config import ModelConfig, RopeConfig
from tiny_models import hf_logits, make_tiny_gemma3_multimodal, make_tiny_model

ISAS = _core.kernels.available_isas()

# (id, arch, config overrides). Every case uses GQA and odd-sized vocabularies; sequences are
# longer than every sliding window.
CASES = [
    ("llama-tied", "llama", dict(tie_word_embeddings=True)),
    ("llama-untied-llama3-rope-bias", "llama", dict(
        tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    )),
    ("llama-linear-rope-head-dim", "llama", dict(
        head_dim=24, num_attention_heads=6, num_key_value_heads=3, hidden_size=96,
        rope_scaling={"type": "linear", "factor": 2.0}, rope_theta=500.0,
    )),
    ("mistral-window", "mistral", dict(sliding_window=5)),
    ("qwen2-window-layers", "qwen2", dict(use_sliding_window=True, sliding_window=6, max_window_layers=1,
                                          num_hidden_layers=3)),
    ("qwen2-window-off", "qwen2", dict(use_sliding_window=False, sliding_window=4, tie_word_embeddings=True)),
    ("qwen3-qk-norm-bias", "qwen3", dict(head_dim=24, attention_bias=True, tie_word_embeddings=False)),
    ("qwen3-window-layers", "qwen3", dict(head_dim=16, use_sliding_window=True, sliding_window=5, max_window_layers=1,
                                          num_hidden_layers=3, tie_word_embeddings=True)),
    ("phi3-fused", "phi3", dict(sliding_window=7, tie_word_embeddings=False, pad_token_id=0)),
    # Phi-3.5-style LongRoPE with Phi-4-mini's partial rotary (3/4 of head_dim 16 -> 12 dims, 6 factors).
    # transformers uses short_factor while the sequence fits original_max_position_embeddings and
    # long_factor beyond; slmcore decides once for max_seq_len (default min(max_position_embeddings,
    # 4096)). Both cases agree with transformers on the 23-token test sequence:
    ("phi3-longrope-short", "phi3", dict(
        max_position_embeddings=8192, original_max_position_embeddings=4096, pad_token_id=0, rope_parameters={
            "rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
            "short_factor": [1.0, 1.1, 1.3, 1.7, 2.3, 3.1], "long_factor": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]},
    )),
    ("phi3-longrope-long", "phi3", dict(
        max_position_embeddings=64, original_max_position_embeddings=16, pad_token_id=0, rope_parameters={
            "rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
            "short_factor": [1.0, 1.1, 1.3, 1.7, 2.3, 3.1], "long_factor": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]},
    )),
    # StableLM 2: LayerNorm with bias, partial rotary (default 1/4 of head_dim), optional qkv bias.
    ("stablelm", "stablelm", dict(use_qkv_bias=True, tie_word_embeddings=False)),
    ("stablelm-half-rotary", "stablelm", dict(partial_rotary_factor=0.5, tie_word_embeddings=True)),
    # StableLM 2 12B: per-head q/k LayerNorms (a weight per head, GQA: 4 q and 2 k norms) and
    # attention + MLP in parallel from the one input_layernorm; and qk_layernorm alone.
    ("stablelm-12b", "stablelm", dict(qk_layernorm=True, use_parallel_residual=True, use_qkv_bias=True)),
    ("stablelm-qk-layernorm", "stablelm", dict(qk_layernorm=True, partial_rotary_factor=0.5)),
    # Gemma (1): GeGLU, (1+w) norms, scaled embedding, head_dim 256 default overridden, MQA.
    ("gemma", "gemma", dict(head_dim=24, num_key_value_heads=1, hidden_act="gelu")),
    # Gemma 2: attention and final logit soft-capping (small caps so they bite), sandwich norms,
    # alternating window (even layers), query_pre_attn_scalar.
    ("gemma2", "gemma2", dict(head_dim=16, num_hidden_layers=3, sliding_window=5, query_pre_attn_scalar=20,
                              attn_logit_softcapping=2.0, final_logit_softcapping=1.5)),
    # Falcon, all layouts: original multi-query + parallel (7B), new_decoder_architecture with
    # ln_attn/ln_mlp (40B), num_ln_in_parallel_attn=1 (Falcon2-11B), sequential, with biases.
    ("falcon-7b", "falcon", dict(num_kv_heads=None, new_decoder_architecture=False, multi_query=True)),
    ("falcon-40b", "falcon", dict(num_kv_heads=2, new_decoder_architecture=True, num_attention_heads=4)),
    ("falcon2-11b", "falcon", dict(num_kv_heads=2, new_decoder_architecture=True, num_ln_in_parallel_attn=1)),
    ("falcon-sequential-bias", "falcon", dict(multi_query=False, parallel_attn=False, bias=True,
                                              tie_word_embeddings=False)),
    # Phi-2: parallel attention + plain gelu MLP from one LayerNorm, partial rotary 0.5 (default), lm_head bias.
    ("phi2", "phi", dict(tie_word_embeddings=False)),
    # GPT-2: learned positions, LayerNorm with bias, plain gelu MLP, Conv1D weights, fused c_attn.
    ("gpt2", "gpt2", dict()),
    ("distilgpt2-like", "gpt2", dict(n_layer=3, n_head=2, n_inner=None)),
    # Falcon-RW (falcon-rw-1b's layout): ALiBi instead of rotary, fused qkv interleaved per head,
    # sequential blocks, biases. 8 heads: slopes 2^-1 .. 2^-8 (see HF_ATTENTION for the oracle).
    ("falcon-rw", "falcon", dict(alibi=True, multi_query=False, parallel_attn=False, bias=True, num_kv_heads=None,
                                 num_attention_heads=8, hidden_size=128)),
    # BLOOM: ALiBi with 6 heads (4 + 2 from the next power of two's odd slopes) and 5 heads, the
    # embedding LayerNorm, fused qkv interleaved per head, biases, tied and untied lm_head.
    ("bloom", "bloom", dict(hidden_size=96, num_attention_heads=6)),
    ("bloom-5-heads-untied", "bloom", dict(hidden_size=80, num_attention_heads=5, tie_word_embeddings=False)),
    # Gemma 3: GeGLU, q/k norms, sandwich norms, (1+w) norms, scaled embedding, query_pre_attn_scalar
    # != head_dim, MQA, window 6 on two of three layers with their own rope, linear scaling on the global one.
    ("gemma3", "gemma3_text", dict(
        head_dim=32, num_key_value_heads=1, num_hidden_layers=3, query_pre_attn_scalar=48, sliding_window=6,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0}},
    )),
]

# transformers 5.24's eager FalconAttention adds the ALiBi bias twice (once in the mask it builds,
# once in the scores); its sdpa path computes (q.k + alibi) / sqrt(head_dim) as the original
# Falcon-RW code does, and is the oracle for ALiBi Falcon (test_falcon_rw_eager_adds_alibi_twice).
HF_ATTENTION = {"falcon-rw": "sdpa"}

SEQ = [3, 17, 250, 4, 99, 1, 0, 288, 77, 12, 5, 160, 33, 2, 201, 45, 6, 7, 299, 88, 100, 150, 42]
F32_TOL = 1e-4  # max abs error vs transformers f32 (the bound for f32 weights)


def assert_decode_equals_full(llm: slmcore.LLM, prefix: int = 7) -> None:
    """Prefill SEQ[:prefix], then one token at a time: bitwise the logits of one full-sequence call."""
    full = llm.logits(SEQ)
    steps = [llm._prefill(SEQ[:prefix])] + [llm._decode(t) for t in SEQ[prefix:]]
    np.testing.assert_array_equal(np.stack(steps), full[prefix - 1 :])


def assert_threads_bitwise(llm: slmcore.LLM) -> None:
    """The logits of SEQ with 1 and with 2 threads are bitwise identical."""
    llm._engine.set_threads(1)
    one = llm.logits(SEQ)
    llm._engine.set_threads(2)
    assert llm.threads == 2
    np.testing.assert_array_equal(one, llm.logits(SEQ))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny checkpoints, built once: {(case_id, dtype, sharded): path}."""
    built = {}
    root = tmp_path_factory.mktemp("tiny")

    def get(case_id: str, dtype: str = "float32", sharded: bool = False):
        key = (case_id, dtype, sharded)
        if key not in built:
            _, arch, overrides = next(c for c in CASES if c[0] == case_id)
            built[key] = make_tiny_model(root / f"{case_id}-{dtype}-{int(sharded)}", arch=arch, dtype=dtype,
                                         sharded=sharded, **overrides)
        return built[key]

    return get


@pytest.fixture(scope="module")
def reference_logits(models):
    cache = {}

    def get(case_id: str, dtype: str = "float32", sharded: bool = False):
        key = (case_id, dtype, sharded)
        if key not in cache:
            cache[key] = hf_logits(models(case_id, dtype, sharded), SEQ, HF_ATTENTION.get(case_id, "eager"))
        return cache[key]

    return get


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_f32_logits_match_transformers(models, reference_logits, case_id, isa):
    with slmcore.LLM(models(case_id), threads=2) as llm:
        llm._engine.set_isa(isa)
        ours = llm.logits(SEQ)
    ref = reference_logits(case_id)
    assert ours.shape == ref.shape == (len(SEQ), llm.config.vocab_size)
    assert np.abs(ours - ref).max() <= F32_TOL


@pytest.mark.parametrize("isa", ISAS)
def test_bf16_checkpoint(models, reference_logits, isa):
    """bf16 weights are used as stored and widened exactly, so with a float32 KV cache the only
    difference from transformers (which upcasts the same bf16 values to f32) is summation order:
    the f32 tolerance holds. The default float16 KV cache rounds K and V to 11 significant bits
    (relative error 2^-12 per element); we bound the resulting logit error at 2e-3 of max|logit|,
    ~8x that unit, which the tiny models meet with a wide margin and a wrong kernel does not."""
    path = models("llama-untied-llama3-rope-bias", "bfloat16")
    ref = reference_logits("llama-untied-llama3-rope-bias", "bfloat16")
    with slmcore.LLM(path, kv_dtype="float32") as llm:
        assert llm.dtype == "bfloat16" and llm.kv_dtype == "float32"
        llm._engine.set_isa(isa)
        assert np.abs(llm.logits(SEQ) - ref).max() <= F32_TOL
    with slmcore.LLM(path) as llm:
        assert llm.kv_dtype == "float16"
        llm._engine.set_isa(isa)
        rel = np.abs(llm.logits(SEQ) - ref).max(axis=1) / np.abs(ref).max(axis=1)
        assert rel.max() <= 2e-3


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_dtype_conversion_at_load(models, reference_logits, dtype):
    """An f32 checkpoint loaded as each dtype: f32 is exact; 16-bit rounding of the weights
    (2^-9 relative for bf16, 2^-12 for f16) shows up in the logits at about that scale."""
    ref = reference_logits("mistral-window")
    with slmcore.LLM(models("mistral-window"), dtype=dtype, kv_dtype="float32") as llm:
        assert llm.dtype == dtype
        rel = (np.abs(llm.logits(SEQ) - ref).max(axis=1) / np.abs(ref).max(axis=1)).max()
    assert rel <= {"float32": 1e-5, "float16": 2e-3, "bfloat16": 2e-2}[dtype]


def test_sharded_checkpoint(models, reference_logits):
    with slmcore.LLM(models("qwen2-window-layers", sharded=True)) as llm:
        assert np.abs(llm.logits(SEQ) - reference_logits("qwen2-window-layers")).max() <= F32_TOL


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kv_dtype", ["float32", "float16"])
@pytest.mark.parametrize("case_id", ["mistral-window", "gemma3", "gemma2", "gpt2", "phi3-fused", "phi2", "falcon-40b",
                                     "bloom", "stablelm-12b", "falcon-rw"])
def test_incremental_decode_equals_full_sequence(models, isa, kv_dtype, case_id):
    """Prefill then one token at a time gives bitwise the logits of one full-sequence call: each
    output of the matmul kernels is reduced in an order independent of the number of tokens."""
    with slmcore.LLM(models(case_id), kv_dtype=kv_dtype) as llm:
        llm._engine.set_isa(isa)
        assert_decode_equals_full(llm)


@pytest.mark.parametrize("isa", ISAS)
def test_threads_are_bitwise_identical(models, isa):
    with slmcore.LLM(models("llama-untied-llama3-rope-bias"), threads=1) as llm:
        llm._engine.set_isa(isa)
        assert_threads_bitwise(llm)


def test_long_prompt_crosses_chunks(tmp_path):
    """Prompts longer than the engine's 512-token chunk run in several passes; the result must
    not depend on where the chunks split."""
    path = make_tiny_model(tmp_path / "m", arch="mistral", sliding_window=40, max_position_embeddings=1024,
                           num_hidden_layers=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 300, size=600).tolist()
    ref = hf_logits(path, ids)
    with slmcore.LLM(path) as llm:
        ours = llm.logits(ids)
    assert np.abs(ours - ref).max() <= F32_TOL


# -- bad input ------------------------------------------------------------------------------


def test_invalid_tokens(models):
    with slmcore.LLM(models("llama-tied")) as llm:
        vocab = llm.config.vocab_size
        for bad in ([vocab], [-1], [1, 2, 10**12], [2**70]):
            with pytest.raises(slmcore.InvalidTokenError):
                llm.logits(bad)
        for bad in ([], "hello", [1.5], [True], None, [[1, 2]]):
            with pytest.raises(slmcore.InvalidArgumentError):
                llm.logits(bad)
        # the engine is still usable after rejected input
        assert llm.logits([1, 2]).shape == (2, vocab)


def test_context_length(models):
    with slmcore.LLM(models("llama-tied"), max_seq_len=8) as llm:
        assert llm.logits(list(range(8))).shape[0] == 8
        with pytest.raises(slmcore.ContextLengthError):
            llm.logits(list(range(9)))
        llm._prefill(list(range(7)))
        llm._decode(3)
        with pytest.raises(slmcore.ContextLengthError):
            llm._decode(4)


def test_bad_arguments(models, tmp_path):
    path = models("llama-tied")
    for kwargs in (dict(dtype="int3"), dict(kv_dtype="bf17"), dict(threads=0), dict(threads=1.5),
                   dict(max_seq_len=0), dict(max_seq_len=10**9), dict(device="tpu")):
        with pytest.raises(slmcore.InvalidArgumentError):
            slmcore.LLM(path, **kwargs)
    with pytest.raises(slmcore.DeviceUnavailableError):
        slmcore.LLM(path, device="cuda")
    with pytest.raises(slmcore.InvalidArgumentError):
        slmcore.LLM(tmp_path / "does-not-exist")
    with pytest.raises(slmcore.ConfigError):
        slmcore.LLM(tmp_path)  # a directory without config.json


def test_close_and_context_manager(models):
    llm = slmcore.LLM(models("llama-tied"))
    assert "LlamaForCausalLM" in repr(llm)
    llm.close()
    llm.close()  # idempotent
    with pytest.raises(slmcore.ClosedError):
        llm.logits([1])
    with slmcore.LLM(models("llama-tied")) as llm2:
        llm2.logits([1])
    with pytest.raises(slmcore.ClosedError):
        llm2.logits([1])


def test_unknown_isa_is_a_typed_error(models):
    with slmcore.LLM(models("llama-tied")) as llm:
        with pytest.raises(slmcore.InvalidArgumentError):
            llm._engine.set_isa("sse9")


# -- sensitivity: the oracle comparison must catch rope and window bugs --------------------


def test_broken_rope_or_window_is_caught(models, reference_logits, monkeypatch):
    """The same comparison fails when rope angles or the sliding window are wrong, so the
    tolerance above is not loose enough to hide such bugs."""
    import slmcore.llm as llm_module

    ref = reference_logits("mistral-window")
    real_tables = llm_module.rope_tables

    def no_rotation(rope, rotary_dim, n):
        cos, sin = real_tables(rope, rotary_dim, n)
        return np.ones_like(cos), np.zeros_like(sin)

    def double_frequency(rope, rotary_dim, n):  # as if theta were wrong
        cos, sin = real_tables(rope, rotary_dim, 2 * n)
        return np.ascontiguousarray(cos[::2]), np.ascontiguousarray(sin[::2])

    for broken in (no_rotation, double_frequency):
        monkeypatch.setattr(llm_module, "rope_tables", broken)
        with slmcore.LLM(models("mistral-window")) as llm:
            assert np.abs(llm.logits(SEQ) - ref).max() > 100 * F32_TOL, broken.__name__
    monkeypatch.setattr(llm_module, "rope_tables", real_tables)

    real_from_file = ModelConfig.from_file

    def wider_window(cls, path):
        config = real_from_file(path)
        assert set(config.layer_windows) == {5}
        return replace(config, layer_windows=tuple(w + 1 for w in config.layer_windows))

    monkeypatch.setattr(ModelConfig, "from_file", classmethod(wider_window))
    with slmcore.LLM(models("mistral-window")) as llm:
        assert np.abs(llm.logits(SEQ) - ref).max() > 100 * F32_TOL


@pytest.mark.parametrize("isa", ISAS)
def test_slm_cpu_isa_environment_variable(models, isa, tmp_path):
    """SLM_CPU_ISA forces the kernel table an engine starts with."""
    import subprocess
    import sys

    code = f"import slmcore; print(slmcore.LLM({str(models('llama-tied'))!r})._engine.isa)"

    def run(value):  # from a neutral directory, so that `import slmcore` finds the installed package
        return subprocess.run([sys.executable, "-c", code], env={**os.environ, "SLM_CPU_ISA": value},
                              capture_output=True, text=True, cwd=tmp_path)

    good = run(isa)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == isa
    bad = run("mmx")
    assert bad.returncode != 0 and "InvalidArgumentError" in bad.stderr


@pytest.mark.parametrize("case_id,change", [
    ("gemma3", dict(rope_local=None)),
    ("gemma3", dict(embed_scale=1.0)),
    ("gemma3", dict(sandwich_norms=False)),
    ("gemma3", dict(attention_scale=32**-0.5)),
    ("gemma3", dict(activation="silu")),
    ("gemma3", dict(norm_weight_offset=0.0)),
    ("gemma3", dict(layer_windows=(0, 0, 0))),
    ("qwen3-qk-norm-bias", dict(qk_norm=False)),
    ("phi3-longrope-short", dict(rope=RopeConfig(theta=10000.0, rope_type="default"))),
    ("phi3-fused", dict(layer_windows=(0, 0))),
    ("gpt2", dict(norm="rms")),
    ("stablelm", dict(rotary_dim=16)),
    ("phi2", dict(parallel_residual=False)),
    # exact vs tanh GELU differ by ~1e-3 at most: a smaller, still decisive, margin
    ("falcon-7b", dict(activation="gelu_tanh")),
    ("gemma", dict(norm_weight_offset=0.0)),
    ("gemma2", dict(attn_softcap=0.0)),
    ("gemma2", dict(final_softcap=0.0)),
    ("gemma2", dict(layer_windows=(0, 0, 0))),
    ("gemma", dict(embed_scale=1.0)),
    ("phi2", dict(lm_head_bias=False)),
    ("stablelm-qk-layernorm", dict(qk_norm=False)),
    ("stablelm-12b", dict(qk_norm=False)),
    ("falcon-rw", dict(alibi_slopes=())),
    ("bloom", dict(alibi_slopes=())),
    ("bloom", dict(embed_norm=False)),
    # 5 heads: the plain geometric rule 2^(-8k/5) instead of transformers' 4 + 1 odd-power slopes
    ("bloom-5-heads-untied", dict(alibi_slopes=tuple(2.0 ** (-8 * k / 5) for k in range(1, 6)))),
])
def test_each_variant_switch_matters(models, reference_logits, monkeypatch, case_id, change):
    """Turning any one of a family's switches off moves the logits far outside the tolerance, so
    the comparison with transformers checks every switch."""
    real_from_file = ModelConfig.from_file
    monkeypatch.setattr(ModelConfig, "from_file", classmethod(lambda cls, path: replace(real_from_file(path), **change)))
    margin = 3 if change.get("activation") == "gelu_tanh" else 100
    with slmcore.LLM(models(case_id)) as llm:
        assert np.abs(llm.logits(SEQ) - reference_logits(case_id)).max() > margin * F32_TOL



def test_gpt2_hub_layout_without_prefix_and_with_mask_buffers(models, reference_logits, tmp_path):
    """Hub GPT-2 files name tensors without `transformer.` and carry attn.bias / attn.masked_bias
    buffers; both load. Without wpe the positions are missing: ModelFormatError."""
    import shutil

    from safetensors.numpy import load_file, save_file

    src = models("gpt2")
    dst = tmp_path / "hub-gpt2"
    shutil.copytree(src, dst)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(str(src / "model.safetensors")).items()}
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), np.float32))
    tensors["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    save_file(tensors, str(dst / "model.safetensors"))
    with slmcore.LLM(dst) as llm:
        assert np.abs(llm.logits(SEQ) - reference_logits("gpt2")).max() <= F32_TOL
    del tensors["wpe.weight"]
    save_file(tensors, str(dst / "model.safetensors"))
    with pytest.raises(slmcore.ModelFormatError, match="wpe"):
        slmcore.LLM(dst)


def test_alibi_slopes_match_transformers():
    """BLOOM's slopes for every head count up to 64, powers of two or not: exact below 32 heads;
    from 32 on (base 2^-1/4) torch's float32 pow can differ from the correctly rounded value by
    one unit in the last place."""
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    from slmcore.config import alibi_slopes

    for n in range(1, 65):
        ours = np.array(alibi_slopes(n), np.float32)
        theirs = _get_alibi_slopes(n, "cpu").numpy()
        assert ours.shape == theirs.shape == (n,)
        ulps = np.abs(ours.view(np.int32) - theirs.view(np.int32)).max()
        assert ulps <= (0 if n < 32 else 1), n


def test_bloom_hub_layout_without_prefix(models, reference_logits, tmp_path):
    """Hub BLOOM files name tensors without `transformer.`; they load the same. Without the
    embedding LayerNorm: ModelFormatError naming it."""
    import shutil

    from safetensors.numpy import load_file, save_file

    src = models("bloom")
    dst = tmp_path / "hub-bloom"
    shutil.copytree(src, dst)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(tensors, str(dst / "model.safetensors"))
    with slmcore.LLM(dst) as llm:
        assert np.abs(llm.logits(SEQ) - reference_logits("bloom")).max() <= F32_TOL
    del tensors["word_embeddings_layernorm.bias"]
    save_file(tensors, str(dst / "model.safetensors"))
    with pytest.raises(slmcore.ModelFormatError, match="word_embeddings_layernorm"):
        slmcore.LLM(dst)


@pytest.mark.parametrize("isa", ISAS)
def test_alibi_with_gqa_matches_reference_forward(models, monkeypatch, isa):
    """ALiBi on the llama graph (rope and GQA too) against the float64 reference forward: the
    engine gives each query head its own slope, with the sign and the query position right."""
    from slmcore.loader import Checkpoint
    from slmcore.models import family_for
    from slmcore.reference.forward import forward

    path = models("llama-untied-llama3-rope-bias")
    config = replace(ModelConfig.from_file(path), alibi_slopes=(0.5, -0.25, 0.125, 0.0))
    with Checkpoint.open(path) as checkpoint:
        ref = forward(config, family_for(config).engine_weights(config, checkpoint), SEQ)
        plain = forward(replace(config, alibi_slopes=()), family_for(config).engine_weights(config, checkpoint), SEQ)
    assert np.abs(ref - plain).max() > 100 * F32_TOL
    monkeypatch.setattr(ModelConfig, "from_file", classmethod(lambda cls, p: config))
    with slmcore.LLM(path) as llm:
        llm._engine.set_isa(isa)
        assert np.abs(llm.logits(SEQ) - ref).max() <= F32_TOL


def test_stablelm_missing_head_norm(models, tmp_path):
    """A qk_layernorm checkpoint without one head's norm: ModelFormatError naming the tensor."""
    import shutil

    from safetensors.numpy import load_file, save_file

    dst = tmp_path / "stablelm"
    shutil.copytree(models("stablelm-12b"), dst)
    tensors = load_file(str(dst / "model.safetensors"))
    del tensors["model.layers.1.self_attn.k_layernorm.norms.1.weight"]
    save_file(tensors, str(dst / "model.safetensors"))
    with pytest.raises(slmcore.ModelFormatError, match=r"layers\.1\.self_attn\.k_layernorm\.norms\.1"):
        slmcore.LLM(dst)


GEMMA3_MULTIMODAL_TEXT = dict(  # the text model of the `gemma3` case above
    head_dim=32, num_key_value_heads=1, num_hidden_layers=3, query_pre_attn_scalar=48, sliding_window=6,
    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
)


@pytest.fixture(scope="module")
def gemma3_multimodal(tmp_path_factory):
    """(path, transformers' text-only logits) of a tiny Gemma3ForConditionalGeneration."""
    path = make_tiny_gemma3_multimodal(tmp_path_factory.mktemp("gemma3-mm") / "m", **GEMMA3_MULTIMODAL_TEXT)
    return path, hf_logits(path, SEQ)


@pytest.mark.parametrize("isa", ISAS)
def test_gemma3_multimodal_text_part(gemma3_multimodal, isa):
    """The multimodal wrapper as transformers 5 saves it (language_model.model.*, vision_tower.*):
    the text part loads from text_config and matches transformers' text-only logits."""
    path, ref = gemma3_multimodal
    with slmcore.LLM(path, threads=2) as llm:
        assert (llm.config.model_type, llm.config.architecture) == ("gemma3", "Gemma3ForConditionalGeneration")
        assert llm.config.layer_windows == (6, 0, 6) and llm.config.qk_norm
        llm._engine.set_isa(isa)
        assert np.abs(llm.logits(SEQ) - ref).max() <= F32_TOL
        full = llm.logits(SEQ)
        steps = [llm._prefill(SEQ[:7])] + [llm._decode(t) for t in SEQ[7:]]
    np.testing.assert_array_equal(np.stack(steps), full[6:])


@pytest.mark.parametrize("untied", [False, True])
def test_gemma3_multimodal_module_layout(gemma3_multimodal, tmp_path, untied):
    """transformers 5's module names (model.language_model.*, lm_head) load the same, with the
    vision tensors dropped and, untied, an explicit lm_head (language_model.lm_head in the saved
    layout). A checkpoint without the text decoder: ModelFormatError."""
    import json
    import shutil

    from safetensors.numpy import load_file, save_file

    path, ref = gemma3_multimodal
    dst = tmp_path / "mm"
    shutil.copytree(path, dst)
    tensors = load_file(str(path / "model.safetensors"))
    renamed = {k.replace("language_model.model.", "model.language_model."): v for k, v in tensors.items()
               if not k.startswith("vision_tower.")}
    if untied:
        renamed["lm_head.weight"] = tensors["language_model.model.embed_tokens.weight"]
        config = json.loads((dst / "config.json").read_text())
        config["tie_word_embeddings"] = False
        (dst / "config.json").write_text(json.dumps(config))
    save_file(renamed, str(dst / "model.safetensors"))
    with slmcore.LLM(dst) as llm:
        assert llm.config.tie_word_embeddings is not untied
        assert np.abs(llm.logits(SEQ) - ref).max() <= F32_TOL
    save_file({k: v for k, v in tensors.items() if k.startswith("vision_tower.")}, str(dst / "model.safetensors"))
    with pytest.raises(slmcore.ModelFormatError, match="language_model"):
        slmcore.LLM(dst)


def test_falcon_rw_eager_adds_alibi_twice(models, reference_logits, monkeypatch):
    """Why the Falcon-RW oracle is transformers' sdpa path: its eager path equals ours with every
    slope doubled, i.e. it adds the bias twice."""
    eager = hf_logits(models("falcon-rw"), SEQ, "eager")
    assert np.abs(eager - reference_logits("falcon-rw")).max() > 100 * F32_TOL
    real_from_file = ModelConfig.from_file

    def doubled(cls, path):
        config = real_from_file(path)
        return replace(config, alibi_slopes=tuple(2 * s for s in config.alibi_slopes))

    monkeypatch.setattr(ModelConfig, "from_file", classmethod(doubled))
    with slmcore.LLM(models("falcon-rw")) as llm:
        assert np.abs(llm.logits(SEQ) - eager).max() <= F32_TOL
