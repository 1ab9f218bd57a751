"""config.json -> ModelConfig, checked against transformers' own config classes and rotary embedding."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
import transformers
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from slmcore.config import SUPPORTED_ARCHITECTURES, ModelConfig, RopeConfig
from slmcore.errors import ConfigError, InvalidArgumentError
from slmcore.rope import inverse_frequencies, rope_tables, rotary_style

BASE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 512,
}

LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


def config(**changes) -> dict:
    d = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is _DELETE:
            d.pop(key, None)
        else:
            d[key] = value
    return d


_DELETE = object()


def parse(**changes) -> ModelConfig:
    return ModelConfig.from_dict(config(**changes))


# --- both spellings -------------------------------------------------------------------------------


def test_basic_fields() -> None:
    c = parse(bos_token_id=5, eos_token_id=[7, 8], tie_word_embeddings=True)
    assert (c.architecture, c.model_type) == ("LlamaForCausalLM", "llama")
    assert (c.vocab_size, c.hidden_size, c.intermediate_size) == (300, 64, 160)
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (3, 4, 2, 16)
    assert c.rms_norm_eps == 1e-5 and c.max_position_embeddings == 512
    assert c.tie_word_embeddings and c.hidden_act == "silu"
    assert c.bos_token_id == 5 and c.eos_token_ids == (7, 8)
    assert c.rope == RopeConfig(theta=10000.0, rope_type="default")
    assert c.layer_windows == (0, 0, 0)
    assert c.raw["vocab_size"] == 300
    assert parse(eos_token_id=3).eos_token_ids == (3,)


@pytest.mark.parametrize(
    "hub, v5",
    [
        (
            {"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", **LLAMA3}, "torch_dtype": "bfloat16"},
            {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", **LLAMA3}, "dtype": "bfloat16"},
        ),
        (
            {"rope_theta": 1234.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "torch_dtype": "float16"},
            {"rope_parameters": {"rope_theta": 1234.0, "rope_type": "linear", "factor": 2.0}, "dtype": "float16"},
        ),
        ({"rope_theta": 1e6, "rope_scaling": None}, {"rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}),
    ],
)
def test_hub_and_transformers5_spellings_agree(hub: dict, v5: dict) -> None:
    a, b = parse(**hub), parse(**v5)
    assert a == b
    assert a.rope.theta == hub["rope_theta"]
    # and both agree with what transformers itself standardises them to
    ref = transformers.LlamaConfig.from_dict(config(**hub))
    assert ref.rope_parameters["rope_type"] == a.rope.rope_type
    assert ref.rope_parameters["rope_theta"] == a.rope.theta


def test_dtype_spellings() -> None:
    assert parse(torch_dtype="bfloat16").torch_dtype == "bfloat16"
    assert parse(dtype="float32").torch_dtype == "float32"
    assert parse(dtype="float16", torch_dtype="float32").torch_dtype == "float16"  # dtype wins, as in transformers
    assert parse().torch_dtype is None


def test_llama3_original_max_position_defaults_to_max_position_embeddings() -> None:
    scaling = {k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"}
    c = parse(rope_scaling={"rope_type": "llama3", **scaling})
    assert c.rope.original_max_position_embeddings == 512
    assert c.rope.factor == 8.0 and c.rope.low_freq_factor == 1.0 and c.rope.high_freq_factor == 4.0


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
def test_saved_by_transformers(tiny_model, arch: str) -> None:
    c = ModelConfig.from_file(tiny_model(arch))
    assert c.model_type == arch and c.torch_dtype == "float32"
    assert c.architecture == {v: k for k, v in SUPPORTED_ARCHITECTURES.items()}[arch]
    assert ModelConfig.from_file(tiny_model(arch) / "config.json") == c


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
@pytest.mark.parametrize("value", [_DELETE, None])
def test_optional_fields_absent_or_null_as_in_transformers(arch: str, value) -> None:
    names = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
    d = config(architectures=[names[arch]], model_type=arch, num_attention_heads=64, hidden_size=1024)
    for name in ("num_key_value_heads", "bos_token_id", "eos_token_id"):
        d.pop(name, None)
        if value is None and (arch, name) != ("mistral", "num_key_value_heads"):  # MistralConfig refuses null
            d[name] = None
    if value is _DELETE:  # (transformers refuses an explicit null max_position_embeddings)
        d.pop("max_position_embeddings")
    ours = ModelConfig.from_dict(d)
    ref = {"llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig, "qwen2": transformers.Qwen2Config}
    theirs = ref[arch].from_dict(d)
    assert ours.num_key_value_heads == theirs.num_key_value_heads
    assert ours.bos_token_id == theirs.bos_token_id
    assert ours.eos_token_ids == (() if theirs.eos_token_id is None else (theirs.eos_token_id,))
    assert ours.max_position_embeddings == theirs.max_position_embeddings
    assert parse(num_key_value_heads=None).num_key_value_heads == 4  # null = num_attention_heads


def test_model_type_fallback_when_architectures_absent() -> None:
    c = parse(architectures=_DELETE, model_type="qwen2")
    assert (c.architecture, c.model_type) == ("Qwen2ForCausalLM", "qwen2")


def test_head_dim_given() -> None:
    assert parse(head_dim=32).head_dim == 32
    assert parse(hidden_size=60, num_attention_heads=4, head_dim=16).head_dim == 16  # 60 % 4 == 0 not needed
    assert parse(head_dim=None).head_dim == 16


def test_biases_per_family() -> None:
    c = parse(attention_bias=True, mlp_bias=True)
    assert (c.qkv_bias, c.o_proj_bias, c.mlp_bias) == (True, True, True)
    c = parse()
    assert (c.qkv_bias, c.o_proj_bias, c.mlp_bias) == (False, False, False)
    c = parse(architectures=["Qwen2ForCausalLM"], model_type="qwen2")
    assert (c.qkv_bias, c.o_proj_bias, c.mlp_bias) == (True, False, False)
    c = parse(architectures=["MistralForCausalLM"], model_type="mistral", attention_bias=True, mlp_bias=True)
    assert (c.qkv_bias, c.o_proj_bias, c.mlp_bias) == (False, False, False)


# --- sliding windows, compared with transformers' own config classes --------------------------------


def transformers_windows(d: dict) -> tuple[int, ...]:
    """Per-layer windows as transformers 5.24's modeling code derives them from a config dict."""
    model_type = d["model_type"]
    cfg = {"mistral": transformers.MistralConfig, "qwen2": transformers.Qwen2Config}[model_type].from_dict(d)
    if model_type == "mistral":  # MistralModel: every layer uses the sliding mask when sliding_window is set
        return (cfg.sliding_window or 0,) * cfg.num_hidden_layers
    # Qwen2Attention: sliding_window only on "sliding_attention" layers
    return tuple(cfg.sliding_window if t == "sliding_attention" else 0 for t in cfg.layer_types)


QWEN2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 3}
MISTRAL = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "num_hidden_layers": 3}


@pytest.mark.parametrize(
    "changes, expected",
    [
        # Qwen2.5 checkpoints: use_sliding_window false disables the sliding_window value they carry
        ({**QWEN2, "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": 1}, (0, 0, 0)),
        ({**QWEN2, "use_sliding_window": True, "sliding_window": 5, "max_window_layers": 1}, (0, 5, 5)),
        ({**QWEN2, "use_sliding_window": True, "sliding_window": 7, "max_window_layers": 0}, (7, 7, 7)),
        ({**QWEN2, "use_sliding_window": True, "sliding_window": 7, "max_window_layers": 3}, (0, 0, 0)),
        ({**QWEN2, "use_sliding_window": True, "sliding_window": None, "max_window_layers": 1}, (0, 0, 0)),
        # default max_window_layers is 28
        ({**QWEN2, "num_hidden_layers": 30, "use_sliding_window": True, "sliding_window": 9}, (0,) * 28 + (9, 9)),
        (
            {**QWEN2, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 0,
             "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]},
            (4, 0, 4),
        ),  # fmt: skip
        ({**MISTRAL, "sliding_window": 5}, (5, 5, 5)),
        ({**MISTRAL, "sliding_window": None}, (0, 0, 0)),
        ({**MISTRAL, "sliding_window": _DELETE}, (4096, 4096, 4096)),  # MistralConfig's default
    ],
)
def test_layer_windows_match_transformers(changes: dict, expected: tuple[int, ...]) -> None:
    d = config(**changes)
    assert ModelConfig.from_dict(d).layer_windows == expected
    assert transformers_windows(d) == expected


def test_layer_windows_ignored_where_transformers_ignores_them() -> None:
    # use_sliding_window=false wins over a layer_types list that says otherwise
    qwen = parse(**QWEN2, use_sliding_window=False, sliding_window=4, layer_types=["sliding_attention"] * 3)
    assert qwen.layer_windows == (0, 0, 0)
    # llama never slides
    assert parse(sliding_window=4).layer_windows == (0, 0, 0)
    # MistralModel ignores layer_types
    assert parse(**MISTRAL, sliding_window=4, layer_types=["full_attention"] * 3).layer_windows == (4, 4, 4)


# --- rope tables, compared with transformers' rotary embedding module ------------------------------

ROPE_CASES = {
    "default": {"rope_theta": 10000.0},
    "default-500k": {"rope_theta": 500000.0},
    "linear": {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0}},
    "linear-old-type-key": {"rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.5}},
    "llama3": {"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", **LLAMA3}},
    "llama3-v5": {"rope_parameters": {"rope_theta": 10000.0, "rope_type": "llama3", **LLAMA3, "factor": 32.0}},
}


@pytest.mark.parametrize("head_dim", [16, 64, 128])
@pytest.mark.parametrize("case", list(ROPE_CASES))
def test_rope_tables_match_transformers(case: str, head_dim: int) -> None:
    d = config(hidden_size=4 * head_dim, **copy.deepcopy(ROPE_CASES[case]))
    ours = ModelConfig.from_dict(d)
    module = LlamaRotaryEmbedding(transformers.LlamaConfig.from_dict(d))
    assert module.attention_scaling == 1.0

    # inv_freq: float32 throughout; transformers' vectorised powf may be 1 ulp off the correctly rounded value
    inv_freq = inverse_frequencies(ours.rope, head_dim)
    ref_inv_freq = module.inv_freq.numpy()
    assert inv_freq.dtype == np.float32
    ulps = np.abs(inv_freq.view(np.int32).astype(np.int64) - ref_inv_freq.view(np.int32))
    assert ulps.max() <= 1

    n = 512
    cos, sin = rope_tables(ours.rope, head_dim, n)
    assert cos.dtype == sin.dtype == np.float32 and cos.shape == sin.shape == (n, head_dim // 2)
    ref_cos, ref_sin = module(torch.zeros(1), torch.arange(n)[None])
    # transformers repeats the half table (cat(freqs, freqs)): rotate_half pairs i with i + head_dim/2
    assert torch.equal(ref_cos[0, :, : head_dim // 2], ref_cos[0, :, head_dim // 2 :])
    np.testing.assert_allclose(cos, ref_cos[0, :, : head_dim // 2].numpy(), rtol=0, atol=2e-6)
    np.testing.assert_allclose(sin, ref_sin[0, :, : head_dim // 2].numpy(), rtol=0, atol=2e-6)
    assert rotary_style == "neox"


def test_rope_table_arguments() -> None:
    rope = RopeConfig(theta=10000.0, rope_type="default")
    assert rope_tables(rope, 8, 0)[0].shape == (0, 4)
    with pytest.raises(InvalidArgumentError, match="rotary dimension"):
        rope_tables(rope, 7, 4)
    with pytest.raises(InvalidArgumentError, match="n_positions"):
        rope_tables(rope, 8, -1)
    with pytest.raises(ConfigError, match="yarn"):
        rope_tables(RopeConfig(theta=1.0, rope_type="yarn"), 8, 4)


def test_rope_scaling_changes_the_tables() -> None:
    cos = {name: rope_tables(parse(**copy.deepcopy(c)).rope, 64, 100)[0] for name, c in ROPE_CASES.items()}
    assert not np.allclose(cos["default"], cos["linear"])
    assert not np.allclose(cos["default-500k"], cos["llama3"])


# --- validation errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"]
)
def test_missing_required_field(field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}' is missing"):
        parse(**{field: _DELETE})


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("hidden_size", "64", "integer"),
        ("hidden_size", 64.0, "integer"),
        ("hidden_size", True, "integer"),
        ("hidden_size", -64, "positive"),
        ("vocab_size", 0, "positive"),
        ("num_hidden_layers", [2], "integer"),
        ("num_key_value_heads", 0, "positive"),
        ("num_key_value_heads", 3, "multiple"),
        ("num_attention_heads", 5, "multiple"),
        ("head_dim", 0, "positive"),
        ("head_dim", 15, "even"),
        ("rms_norm_eps", 0, "positive"),
        ("rms_norm_eps", -1e-6, "positive"),
        ("rms_norm_eps", "1e-6", "number"),
        ("max_position_embeddings", 0, "positive"),
        ("tie_word_embeddings", "yes", "true or false"),
        ("attention_bias", 1, "true or false"),
        ("rope_theta", -1.0, "positive"),
        ("rope_theta", "big", "number"),
        ("hidden_act", "gelu", "SwiGLU"),
        ("torch_dtype", "float64", "float32"),
        ("bos_token_id", -1, ">= 0"),
        ("eos_token_id", [2, "x"], "integer"),
        ("partial_rotary_factor", 0.5, "whole head"),
        ("architectures", "LlamaForCausalLM", "list"),
        ("rope_scaling", [1, 2], "object"),
    ],
)
def test_invalid_field(field: str, value, words: str) -> None:
    with pytest.raises(ConfigError, match=field) as e:
        parse(**{field: value})
    assert words in str(e.value)


def test_hidden_not_divisible_by_heads_without_head_dim() -> None:
    with pytest.raises(ConfigError, match="'hidden_size' \\(62\\) must be a multiple of 'num_attention_heads'"):
        parse(hidden_size=62)


@pytest.mark.parametrize(
    "changes",
    [
        {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox"},
        {"architectures": ["LlamaModel"]},
        {"architectures": _DELETE, "model_type": "mamba"},
        {"architectures": _DELETE, "model_type": _DELETE},
    ],
)
def test_unsupported_architecture_lists_supported(changes: dict) -> None:
    with pytest.raises(ConfigError) as e:
        parse(**changes)
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "llama", "mistral", "qwen2",
                 "BloomForCausalLM", "bloom"):
        assert name in str(e.value)


@pytest.mark.parametrize("rope_type", ["yarn", "dynamic", "longrope", "proportional"])
@pytest.mark.parametrize("spelling", ["rope_scaling", "rope_parameters"])
def test_unsupported_rope_type(rope_type: str, spelling: str) -> None:
    with pytest.raises(ConfigError, match=rope_type) as e:
        parse(**{spelling: {"rope_type": rope_type, "factor": 4.0, "original_max_position_embeddings": 64}})
    assert "default, linear, llama3" in str(e.value)


@pytest.mark.parametrize(
    "scaling, field",
    [
        ({"rope_type": "linear"}, "factor"),
        ({"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0}, "low_freq_factor"),
        ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}, "high_freq_factor"),
        ({"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0}, "factor"),
        ({"rope_type": "llama3", **LLAMA3, "high_freq_factor": 1.0}, "high_freq_factor"),
        ({"rope_type": "linear", "factor": 0}, "factor"),
    ],
)
def test_bad_rope_scaling(scaling: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"rope_scaling.{field}"):
        parse(rope_scaling=scaling)


@pytest.mark.parametrize("method", ["gptq", "awq", "compressed-tensors", "bitsandbytes", "fp8"])
def test_prequantized_checkpoints_refused(method: str) -> None:
    with pytest.raises(ConfigError, match="not supported yet") as e:
        parse(quantization_config={"quant_method": method, "bits": 4})
    assert repr(method) in str(e.value)


def test_own_int4_quantization_config_accepted() -> None:
    config = parse(quantization_config={"quant_method": "slmcore", "bits": 4, "group_size": 128, "sym": True})
    assert config.hidden_size == 64 and config.quantization.group_size == 128 and config.quantization.sym
    assert parse().quantization is None
    with pytest.raises(ConfigError, match="quantization_config"):
        parse(quantization_config="gptq")


SLIDING_QWEN2 = {**QWEN2, "use_sliding_window": True, "sliding_window": 4}


@pytest.mark.parametrize(
    "changes, words",
    [
        ({**SLIDING_QWEN2, "layer_types": ["full_attention"] * 2}, "3 entries"),
        ({**SLIDING_QWEN2, "layer_types": ["chunked_attention"] * 3}, "layer_types[0]"),
        ({**SLIDING_QWEN2, "sliding_window": None, "layer_types": ["sliding_attention"] * 3}, "null"),
        ({**SLIDING_QWEN2, "sliding_window": -4, "max_window_layers": 0}, "sliding_window"),
        ({**SLIDING_QWEN2, "use_sliding_window": "yes"}, "use_sliding_window"),
        ({**SLIDING_QWEN2, "max_window_layers": -1}, "max_window_layers"),
        ({**MISTRAL, "sliding_window": 0}, "sliding_window"),
        ({**MISTRAL, "sliding_window": 4.5}, "sliding_window"),
    ],
)
def test_bad_window_fields(changes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse(**changes)


def test_from_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config.json not found"):
        ModelConfig.from_file(tmp_path)
    with pytest.raises(ConfigError, match="config.json not found"):
        ModelConfig.from_file(tmp_path / "missing.json")
    path = tmp_path / "config.json"
    for content, words in [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"llama"', "must be a JSON object"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
    ]:
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=words) as e:
            ModelConfig.from_file(tmp_path)
        assert str(path) in str(e.value)
    path.write_text(json.dumps(config(hidden_size=-1)))
    with pytest.raises(ConfigError, match="hidden_size") as e:
        ModelConfig.from_file(tmp_path)
    assert str(path) in str(e.value)


def test_from_dict_refuses_non_objects() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_gemma3_hub_spelling() -> None:
    """Hub Gemma 3 configs: rope_theta (+ rope_scaling for global layers only), rope_local_base_freq,
    sliding_window_pattern; defaults as Gemma3TextConfig (global 1e6, local 1e4, every 6th layer global)."""
    from slmcore.config import RopeConfig

    base = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 16, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 7, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 4, "sliding_window": 3}
    c = ModelConfig.from_dict(base)
    assert c.rope == RopeConfig(theta=1_000_000.0, rope_type="default")
    assert c.rope_local == RopeConfig(theta=10_000.0, rope_type="default")
    assert c.layer_windows == (3, 3, 3, 3, 3, 0, 3)
    assert c.activation == "gelu_tanh" and c.qk_norm and c.sandwich_norms and c.norm_weight_offset == 1.0
    assert c.attention_scale == 256**-0.5 and c.embed_scale == 8**0.5 and c.tie_word_embeddings
    c = ModelConfig.from_dict({**base, "rope_theta": 5e5, "rope_local_base_freq": 5e3, "sliding_window_pattern": 2,
                               "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "query_pre_attn_scalar": 64})
    assert c.rope == RopeConfig(theta=5e5, rope_type="linear", factor=8.0)
    assert c.rope_local == RopeConfig(theta=5e3, rope_type="default")
    assert c.layer_windows == (3, 0, 3, 0, 3, 0, 3) and c.attention_scale == 64**-0.5
    c = ModelConfig.from_dict({**base, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0})
    assert (c.final_softcap, c.attn_softcap) == (30.0, 50.0)
    assert ModelConfig.from_dict(base).final_softcap == 0.0  # Gemma 3 default: none
    for bad in ({"use_bidirectional_attention": True}, {"hidden_activation": "relu"}, {"attn_logit_softcapping": -1}):
        with pytest.raises(ConfigError):
            ModelConfig.from_dict({**base, **bad})


def test_qwen3_defaults() -> None:
    base = {"architectures": ["Qwen3ForCausalLM"], "vocab_size": 16, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1}
    c = ModelConfig.from_dict(base)
    assert c.head_dim == 128 and c.qk_norm and not c.qkv_bias and c.layer_windows == (0, 0)  # Qwen3Config defaults
    c = ModelConfig.from_dict({**base, "attention_bias": True, "use_sliding_window": True, "sliding_window": 4,
                               "max_window_layers": 1, "head_dim": 4})
    assert c.qkv_bias and c.o_proj_bias and c.layer_windows == (0, 4)


# --- BLOOM ----------------------------------------------------------------------------------------

BLOOM_HUB = {  # bigscience/bloom-560m's spelling, sizes shrunk
    "architectures": ["BloomForCausalLM"], "model_type": "bloom", "vocab_size": 300, "n_embed": 96,
    "n_layer": 2, "num_attention_heads": 6, "layer_norm_epsilon": 1e-5, "seq_length": 2048,
    "apply_residual_connection_post_layernorm": False, "offset_alibi": 100, "skip_bias_add": True,
}  # fmt: skip


def test_bloom_hub_spelling() -> None:
    from slmcore.config import alibi_slopes

    c = ModelConfig.from_dict(BLOOM_HUB)
    assert (c.model_type, c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == ("bloom", 96, 2, 6)
    assert (c.num_key_value_heads, c.head_dim, c.intermediate_size) == (6, 16, 384)
    assert c.alibi_slopes == alibi_slopes(6) and c.embed_norm and c.rotary_dim == 0 and c.tie_word_embeddings
    assert c.max_position_embeddings == 2048 and (c.bos_token_id, c.eos_token_ids) == (1, (2,))
    # transformers 5 writes hidden_size / n_head / n_layer
    d = {k: v for k, v in BLOOM_HUB.items() if k not in ("n_embed", "num_attention_heads")}
    assert ModelConfig.from_dict({**d, "hidden_size": 96, "n_head": 6}).alibi_slopes == c.alibi_slopes


@pytest.mark.parametrize("changes, words", [
    ({"apply_residual_connection_post_layernorm": True}, "apply_residual_connection_post_layernorm"),
    ({"n_embed": 100}, "multiple of 'n_head'"),
    ({"n_layer": None}, "'n_layer' is missing"),
])  # fmt: skip
def test_bloom_refusals(changes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        ModelConfig.from_dict({**BLOOM_HUB, **changes})


# --- Gemma 3 multimodal wrapper -------------------------------------------------------------------

GEMMA3_4B_IT = {  # google/gemma-3-4b-it's config.json, vision_config shortened
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "boi_token_index": 255999,
    "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144, "mm_tokens_per_image": 256,
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16", "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152},
}  # fmt: skip


def test_gemma3_multimodal_hub_config_matches_transformers() -> None:
    c = ModelConfig.from_dict(GEMMA3_4B_IT)
    text = transformers.Gemma3Config(**copy.deepcopy(GEMMA3_4B_IT)).text_config
    assert (c.architecture, c.model_type, c.torch_dtype) == ("Gemma3ForConditionalGeneration", "gemma3", "bfloat16")
    for ours, theirs in (("vocab_size", "vocab_size"), ("hidden_size", "hidden_size"),
                         ("num_attention_heads", "num_attention_heads"), ("num_key_value_heads", "num_key_value_heads"),
                         ("head_dim", "head_dim"), ("num_hidden_layers", "num_hidden_layers"),
                         ("max_position_embeddings", "max_position_embeddings")):  # fmt: skip
        assert getattr(c, ours) == getattr(text, theirs), ours
    assert c.layer_windows == tuple(1024 if t == "sliding_attention" else 0 for t in text.layer_types)
    assert (c.rope.rope_type, c.rope.factor, c.rope_local.theta) == ("linear", 8.0, 10000.0)
    assert c.eos_token_ids == (1, 106) and c.tie_word_embeddings and c.qk_norm


def test_gemma3_multimodal_bad_text_config() -> None:
    with pytest.raises(ConfigError, match="text_config"):
        ModelConfig.from_dict({**GEMMA3_4B_IT, "text_config": [1]})
    with pytest.raises(ConfigError, match=r"text_config.*num_key_value_heads"):
        ModelConfig.from_dict({**GEMMA3_4B_IT, "text_config": {"num_key_value_heads": 3}})


def test_falcon_rw_alibi() -> None:
    """falcon-rw-1b (32 heads of 64): no rotary; slopes as BLOOM's, rounded to bfloat16 as
    transformers' Falcon build_alibi_tensor does, then divided by sqrt(head_dim)."""
    from slmcore.config import alibi_slopes

    d = {"architectures": ["FalconForCausalLM"], "model_type": "falcon", "alibi": True, "bias": True,
         "hidden_size": 2048, "multi_query": False, "new_decoder_architecture": False, "num_attention_heads": 32,
         "num_hidden_layers": 24, "parallel_attn": False, "vocab_size": 50304}  # fmt: skip
    c = ModelConfig.from_dict(d)
    bf16 = torch.tensor(alibi_slopes(32)).bfloat16().float().numpy()
    assert c.rotary_dim == 0 and len(c.alibi_slopes) == 32
    np.testing.assert_array_equal(np.array(c.alibi_slopes, np.float32), (bf16 / np.float32(8.0)).astype(np.float32))
    assert bf16[0] != np.float32(alibi_slopes(32)[0])  # 2^-1/4 is not a bfloat16 value
    assert ModelConfig.from_dict({**d, "alibi": False}).alibi_slopes == ()
