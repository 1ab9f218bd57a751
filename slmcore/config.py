"""HF config.json -> ModelConfig: one frozen dataclass, validated (DESIGN.md sections 1 and 5).

Defaults and per-family quirks follow transformers 5.24's own config classes (LlamaConfig,
MistralConfig, Qwen2Config), which are the test oracle: a config that transformers reads, we read
the same way; a config that it would misread or reject, we reject with a ConfigError that names
the field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from slmcore.errors import ConfigError
from slmcore.loader import convert

# architectures[0] -> model_type of the family that runs it.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma3ForCausalLM": "gemma3_text",
    "Phi3ForCausalLM": "phi3",
    "GPT2LMHeadModel": "gpt2",
    "StableLmForCausalLM": "stablelm",
    "PhiForCausalLM": "phi",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "FalconForCausalLM": "falcon",
    "RwkvForCausalLM": "rwkv",
    "BloomForCausalLM": "bloom",
    "Gemma3ForConditionalGeneration": "gemma3",
}

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "longrope")

# Per-family defaults for optional fields, as in transformers 5.24's config classes. Note the two
# surprising ones: MistralConfig's sliding_window is 4096 when the key is absent, and Qwen2Config's
# num_key_value_heads is 32 when absent (not num_attention_heads).
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"max_position_embeddings": 2048, "num_key_value_heads": None, "bos_token_id": 1, "eos_token_id": 2},
    "mistral": {
        "max_position_embeddings": 4096 * 32,
        "num_key_value_heads": 8,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "sliding_window": 4096,
    },
    "qwen2": {
        "max_position_embeddings": 32768,
        "num_key_value_heads": 32,
        "bos_token_id": None,
        "eos_token_id": None,
        "sliding_window": 4096,
        "use_sliding_window": False,
        "max_window_layers": 28,
    },
    "qwen3": {
        "max_position_embeddings": 32768,
        "num_key_value_heads": 32,
        "head_dim": 128,
        "bos_token_id": None,
        "eos_token_id": None,
        "sliding_window": 4096,
        "use_sliding_window": False,
        "max_window_layers": 28,
    },
    "phi": {
        "max_position_embeddings": 2048,
        "num_key_value_heads": None,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
    "stablelm": {
        "max_position_embeddings": 4096,
        "num_key_value_heads": 32,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
    "phi3": {
        "max_position_embeddings": 4096,
        "num_key_value_heads": None,
        "bos_token_id": 1,
        "eos_token_id": 32000,
        "sliding_window": None,
    },
    "gemma": {
        "max_position_embeddings": 8192,
        "num_key_value_heads": 16,
        "head_dim": 256,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "tie_word_embeddings": True,
    },
    "gemma2": {
        "max_position_embeddings": 8192,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "sliding_window": 4096,
        "tie_word_embeddings": True,
        "query_pre_attn_scalar": 256,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
    },
    "gemma3_text": {
        "max_position_embeddings": 131072,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "sliding_window": 4096,
        "tie_word_embeddings": True,
        "query_pre_attn_scalar": 256,
    },
}

_REQUIRED_INT_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")

# hidden_act values that transformers maps to SiLU (ACT2FN): the MLP is then SwiGLU.
_SILU_NAMES = ("silu", "swish")
# ... and to GELU with the tanh approximation: the MLP is then GeGLU (Gemma).
_GELU_TANH_NAMES = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new")

_DTYPE_NAMES = ("float32", "float16", "bfloat16")

# quant_method values we load ourselves (DESIGN.md section 4); every other method is refused.
_OWN_QUANT_METHODS = ("slmcore",)

# slmcore's int4 format (DESIGN.md section 4): the only bit width and the group sizes it defines.
QUANT_BITS = 4
QUANT_GROUP_SIZES = (32, 64, 128)
_QUANT_KEYS = ("quant_method", "bits", "group_size", "sym", "unquantized", "int8")


@dataclass(frozen=True)
class QuantizationConfig:
    """config.json's quantization_config for quant_method "slmcore" (DESIGN.md section 4), validated.

    `unquantized` and `int8` name matrices by their checkpoint name without ".weight" (e.g.
    "model.embed_tokens", "lm_head"); every other matrix is int4. Norms and biases are never listed.
    """

    group_size: int
    sym: bool
    unquantized: tuple[str, ...] = ()
    int8: tuple[str, ...] = ()
    bits: int = QUANT_BITS
    quant_method: str = "slmcore"

    def to_dict(self) -> dict:
        """The JSON object written into config.json."""
        return {
            "quant_method": self.quant_method,
            "bits": self.bits,
            "group_size": self.group_size,
            "sym": self.sym,
            "unquantized": list(self.unquantized),
            "int8": list(self.int8),
        }


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters (transformers' rope_parameters, standardised)."""

    theta: float
    rope_type: str  # "default" | "linear" | "llama3"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int | None = None
    # longrope (Phi-3 "su"): per-frequency divisors for contexts up to / beyond the original
    # length, and the factor cos and sin are multiplied by.
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None
    attention_factor: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything the engine needs from config.json, validated."""

    architecture: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool
    o_proj_bias: bool
    mlp_bias: bool
    hidden_act: str
    rope: RopeConfig
    # One per layer: 0 = full causal attention; w > 0 = token i attends to j with i - w < j <= i.
    layer_windows: tuple[int, ...]
    torch_dtype: str | None
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    raw: dict = field(compare=False, repr=False)
    # Variant switches of the decoder (defaults: Llama).
    activation: str = "silu"  # "silu" (SwiGLU) | "gelu_tanh" (GeGLU, GPT-2) | "gelu_erf" (exact GELU, Falcon's plain MLP) | "relu_squared" (RWKV)
    qk_norm: bool = False  # RMSNorm of each q and k head before rope (Qwen3, Gemma 3)
    sandwich_norms: bool = False  # RMSNorm of attention and MLP outputs before the residual add (Gemma)
    norm_weight_offset: float = 0.0  # RMSNorm scales by (offset + w): Gemma stores w - 1
    embed_scale: float = 1.0  # token embeddings are multiplied by this (Gemma: sqrt(hidden_size))
    attention_scale: float | None = None  # None: head_dim ** -0.5 (Gemma: query_pre_attn_scalar ** -0.5)
    rope_local: RopeConfig | None = None  # rope of sliding-window layers when it differs (Gemma 3)
    rotary_dim: int | None = None  # dimensions of each head that rotate (None: all; Phi-4-mini 3/4; GPT-2 0)
    norm: str = "rms"  # "rms" (RMSNorm) | "layer" (LayerNorm with bias, eps in rms_norm_eps)
    mlp: str = "gated"  # "gated" (act(x Wgate) * x Wup) | "plain" (act(x Wup + b), GPT-2)
    learned_positions: bool = False  # absolute position embeddings added to the tokens' (GPT-2)
    parallel_residual: bool = False  # x += attn(norm(x)) + mlp(norm(x)) (Phi-2)
    lm_head_bias: bool = False  # Phi-2's lm_head has a bias
    attn_softcap: float = 0.0  # Gemma 2: attention scores -> cap * tanh(scores / cap); 0 = none
    final_softcap: float = 0.0  # Gemma 2: logits -> cap * tanh(logits / cap); 0 = none
    # RWKV-4 (no attention heads: num_attention_heads, num_key_value_heads and head_dim are 0).
    attention_hidden_size: int | None = None  # width of the time mix's key / value / receptance
    rescale_every: int = 0  # > 0: transformers halves the residual stream after every n-th block at inference
    embed_norm: bool = False  # LayerNorm (with bias) of the token embeddings (BLOOM's word_embeddings_layernorm)
    # ALiBi (BLOOM, Falcon-RW): per query head, the slope of the score bias slope * (j - i) for key j
    # and query i, already multiplied by any factor the family applies to it; () = none.
    alibi_slopes: tuple[float, ...] = ()
    # The q/k head norms when qk_norm is set: "rms" (RMSNorm, one [head_dim] weight shared by the
    # heads: Qwen3, Gemma 3) | "layer_per_head" (LayerNorm without bias, one weight per head: StableLM).
    head_norm: str = "rms"
    # quantization_config of an slmcore-quantized checkpoint; None for unquantized ones.
    quantization: QuantizationConfig | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Parse and validate a config.json already loaded as a dict."""
        return _parse(d, "config.json")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ModelConfig":
        """Read config.json (path to the file, or to the model directory that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ConfigError(f"{path}: config.json not found; a model directory needs config.json next to its weights")
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config.json: {e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: config.json is not UTF-8 text: {e}") from e
        try:
            d = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise ConfigError(f"{path}: config.json is not valid JSON: {e}") from e
        return _parse(d, str(path))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _Fields:
    """Typed access to config.json fields; every failure names the field and the file."""

    def __init__(self, d: dict, source: str) -> None:
        self.d = d
        self.source = source

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {message}")

    def get(self, name: str, default: Any = None) -> Any:
        """The field's value; default when it is absent or null."""
        value = self.d.get(name, default)
        return default if value is None else value

    def given_or(self, name: str, default: Any) -> Any:
        """The field's value, null included; default only when it is absent."""
        return self.d[name] if name in self.d else default

    def integer(self, name: str, value: Any, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"field '{name}' must be an integer, got {value!r}")
        if value < minimum:
            word = "positive" if minimum == 1 else f">= {minimum}"
            raise self.error(f"field '{name}' must be {word}, got {value}")
        return value

    def required_int(self, name: str) -> int:
        if self.d.get(name) is None:
            raise self.error(f"required field '{name}' is missing")
        return self.integer(name, self.d[name])

    def number(self, name: str, value: Any, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"field '{name}' must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.error(f"field '{name}' must be a positive finite number, got {value}")
        return value

    def boolean(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"field '{name}' must be true or false, got {value!r}")
        return value


def _parse(d: Any, source: str) -> ModelConfig:
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: config.json must be a JSON object, got {type(d).__name__}")
    f = _Fields(d, source)

    architecture, model_type = _architecture(f)
    quantization = _quantization(f)
    if model_type == "gpt2":
        return replace(_parse_gpt2(f, architecture), quantization=quantization)
    if model_type == "falcon":
        return replace(_parse_falcon(f, architecture), quantization=quantization)
    if model_type == "rwkv":
        return replace(_parse_rwkv(f, architecture), quantization=quantization)
    if model_type == "bloom":
        return replace(_parse_bloom(f, architecture), quantization=quantization)
    if model_type == "gemma3":
        return replace(_parse_gemma3_multimodal(f, architecture), quantization=quantization)
    defaults = _FAMILY_DEFAULTS[model_type]

    vocab_size = f.required_int("vocab_size")
    hidden_size = f.required_int("hidden_size")
    intermediate_size = f.required_int("intermediate_size")
    num_hidden_layers = f.required_int("num_hidden_layers")
    num_attention_heads = f.required_int("num_attention_heads")

    # transformers: absent -> the family default; null -> num_attention_heads.
    num_key_value_heads = f.given_or("num_key_value_heads", defaults["num_key_value_heads"])
    if num_key_value_heads is None:
        num_key_value_heads = num_attention_heads
    num_key_value_heads = f.integer("num_key_value_heads", num_key_value_heads)
    if num_attention_heads % num_key_value_heads != 0:
        raise f.error(
            f"field 'num_attention_heads' ({num_attention_heads}) must be a multiple of "
            f"'num_key_value_heads' ({num_key_value_heads})"
        )
    if d.get("head_dim") is not None:
        head_dim = f.integer("head_dim", d["head_dim"])
    elif "head_dim" in defaults and "head_dim" not in d:  # Qwen3Config, Gemma3TextConfig: a fixed default
        head_dim = defaults["head_dim"]
    else:
        if hidden_size % num_attention_heads != 0:
            raise f.error(
                f"field 'hidden_size' ({hidden_size}) must be a multiple of 'num_attention_heads' "
                f"({num_attention_heads}) when 'head_dim' is not given"
            )
        head_dim = hidden_size // num_attention_heads
    if head_dim % 2 != 0:
        raise f.error(f"field 'head_dim' must be even for rotary embeddings, got {head_dim}")

    rms_norm_eps = f.number("rms_norm_eps", f.get("rms_norm_eps", 1e-6))
    max_position_embeddings = f.integer(
        "max_position_embeddings", f.get("max_position_embeddings", defaults["max_position_embeddings"])
    )
    tie_word_embeddings = f.boolean(
        "tie_word_embeddings", f.get("tie_word_embeddings", defaults.get("tie_word_embeddings", False))
    )

    gemma = model_type in ("gemma3_text", "gemma2")
    # Gemma2/3 configs name it hidden_activation; the others hidden_act.
    act_field = "hidden_activation" if gemma and d.get("hidden_activation") is not None else "hidden_act"
    hidden_act = f.get(act_field, "gelu_pytorch_tanh" if model_type.startswith("gemma") else "silu")
    if model_type == "gemma" and hidden_act == "gelu":
        hidden_act = "gelu_pytorch_tanh"  # GemmaConfig: the legacy "gelu" of the official releases means tanh
    if hidden_act in _SILU_NAMES:
        activation = "silu"
    elif hidden_act in _GELU_TANH_NAMES:
        activation = "gelu_tanh"
    else:
        raise f.error(
            f"field '{act_field}' is {hidden_act!r}; the gated MLP supports SwiGLU "
            f"({', '.join(map(repr, _SILU_NAMES))}) and GeGLU ({', '.join(map(repr, _GELU_TANH_NAMES))})"
        )

    if model_type == "llama":
        # LlamaAttention builds q/k/v AND o_proj with bias=attention_bias.
        attention_bias = f.boolean("attention_bias", f.get("attention_bias", False))
        qkv_bias, o_proj_bias = attention_bias, attention_bias
        mlp_bias = f.boolean("mlp_bias", f.get("mlp_bias", False))
    elif model_type == "qwen2":
        qkv_bias, o_proj_bias, mlp_bias = True, False, False
    elif model_type == "phi3":
        qkv_bias, o_proj_bias, mlp_bias = False, False, False
    elif model_type == "stablelm":
        qkv_bias = f.boolean("use_qkv_bias", f.get("use_qkv_bias", False))
        o_proj_bias, mlp_bias = False, False
    elif model_type == "phi":
        qkv_bias, o_proj_bias, mlp_bias = True, True, True
    elif model_type in ("qwen3", "gemma3_text", "gemma", "gemma2"):
        # Qwen3Attention and Gemma(3)Attention give q/k/v/o bias=attention_bias; their MLPs have none.
        attention_bias = f.boolean("attention_bias", f.get("attention_bias", False))
        qkv_bias, o_proj_bias, mlp_bias = attention_bias, attention_bias, False
    else:  # mistral: no biases anywhere, whatever the JSON says
        qkv_bias, o_proj_bias, mlp_bias = False, False, False

    if gemma:
        if model_type == "gemma3_text":
            rope, rope_local = _gemma3_ropes(f, max_position_embeddings)
        else:
            rope, rope_local = _rope(f, max_position_embeddings), None
        caps = {}
        for cap in ("final_logit_softcapping", "attn_logit_softcapping"):
            value = f.given_or(cap, defaults.get(cap))
            caps[cap] = 0.0 if value is None else f.number(cap, value)
        if f.get("use_bidirectional_attention"):
            raise f.error("field 'use_bidirectional_attention' is true; only causal attention is supported")
        scalar = f.number("query_pre_attn_scalar", f.get("query_pre_attn_scalar", defaults["query_pre_attn_scalar"]))
        variants = dict(
            activation=activation, qk_norm=model_type == "gemma3_text", sandwich_norms=True, norm_weight_offset=1.0,
            embed_scale=math.sqrt(hidden_size), attention_scale=scalar**-0.5, rope_local=rope_local,
            attn_softcap=caps["attn_logit_softcapping"], final_softcap=caps["final_logit_softcapping"],
        )  # fmt: skip
    elif model_type in ("phi3", "stablelm", "phi"):
        params = f.d.get("rope_scaling") or f.d.get("rope_parameters") or {}
        default_partial = {"stablelm": 0.25, "phi": 0.5}.get(model_type, 1.0)  # StableLmConfig's, PhiConfig's defaults
        partial = f.d.get("partial_rotary_factor", default_partial)
        partial = params.get("partial_rotary_factor", partial) if isinstance(params, dict) else partial
        partial = f.number("partial_rotary_factor", partial)
        rotary_dim = int(head_dim * partial)
        if rotary_dim < 2 or rotary_dim % 2 or partial > 1.0:
            raise f.error(f"field 'partial_rotary_factor' ({partial}) must leave an even number of rotary dimensions")
        if model_type == "phi3":
            rope = _rope(f, max_position_embeddings, allow_partial=True, rotary_dim=rotary_dim)
            variants = dict(activation=activation, rotary_dim=rotary_dim)
        else:
            rope = _rope(f, max_position_embeddings, allow_partial=True)
            variants = dict(activation=activation, rotary_dim=rotary_dim, norm="layer")
            if model_type == "stablelm":
                # StableLM 2 12B: per-head LayerNorms (no bias) of q and k before rope; attention and
                # MLP in parallel from the one input_layernorm (there is no post_attention_layernorm).
                variants.update(
                    qk_norm=f.boolean("qk_layernorm", f.get("qk_layernorm", False)), head_norm="layer_per_head",
                    parallel_residual=f.boolean("use_parallel_residual", f.get("use_parallel_residual", False)),
                )  # fmt: skip
            elif f.boolean("qk_layernorm", f.get("qk_layernorm", False)):
                raise f.error(f"field 'qk_layernorm' is true; not supported yet for {model_type}")
            if model_type == "phi":  # Phi-2: one LayerNorm feeds attention and a plain MLP in parallel
                if activation != "gelu_tanh":
                    raise f.error(f"field 'hidden_act' is {hidden_act!r}; phi models run gelu_new / gelu_pytorch_tanh")
                variants.update(mlp="plain", parallel_residual=True, lm_head_bias=True)
            rms_norm_eps = f.number("layer_norm_eps", f.get("layer_norm_eps", 1e-5))
    elif model_type == "gemma":
        if f.get("use_bidirectional_attention"):
            raise f.error("field 'use_bidirectional_attention' is true; only causal attention is supported")
        rope = _rope(f, max_position_embeddings)
        variants = dict(activation=activation, norm_weight_offset=1.0, embed_scale=math.sqrt(hidden_size))
    else:
        rope = _rope(f, max_position_embeddings)
        variants = dict(activation=activation, qk_norm=model_type == "qwen3")
    layer_windows = _layer_windows(f, model_type, num_hidden_layers)

    bos_token_id, eos_token_ids = _special_ids(f, defaults["bos_token_id"], defaults["eos_token_id"])

    return ModelConfig(
        architecture=architecture,
        model_type=model_type,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        rms_norm_eps=rms_norm_eps,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        qkv_bias=qkv_bias,
        o_proj_bias=o_proj_bias,
        mlp_bias=mlp_bias,
        hidden_act=hidden_act,
        rope=rope,
        layer_windows=layer_windows,
        torch_dtype=_torch_dtype(f),
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        raw=d,
        quantization=quantization,
        **variants,
    )


def _special_ids(f: _Fields, bos_default: int | None, eos_default: int | None) -> tuple[int | None, tuple[int, ...]]:
    """bos_token_id and the eos_token_id list (an int or a list in config.json); absent -> the
    family default, null -> none, as transformers reads them."""
    bos = f.given_or("bos_token_id", bos_default)
    if bos is not None:
        bos = f.integer("bos_token_id", bos, minimum=0)
    eos = f.given_or("eos_token_id", eos_default)
    eos_list = eos if isinstance(eos, list) else ([] if eos is None else [eos])
    return bos, tuple(f.integer("eos_token_id", e, minimum=0) for e in eos_list)


def _biased_layernorm_gelu_fields(f: _Fields, num_layers: int) -> dict:
    """The ModelConfig fields GPT-2 and BLOOM share: LayerNorm (eps from layer_norm_epsilon), biases
    everywhere, a plain GELU-tanh MLP, no rotary embedding and no sliding window."""
    return dict(
        rms_norm_eps=f.number("layer_norm_epsilon", f.get("layer_norm_epsilon", 1e-5)),
        qkv_bias=True,
        o_proj_bias=True,
        mlp_bias=True,
        rope=RopeConfig(theta=10000.0, rope_type="default"),  # unused: rotary_dim is 0
        layer_windows=(0,) * num_layers,
        torch_dtype=_torch_dtype(f),
        raw=f.d,
        activation="gelu_tanh",
        rotary_dim=0,
        norm="layer",
        mlp="plain",
    )

def _parse_gpt2(f: _Fields, architecture: str) -> ModelConfig:
    """GPT-2 / DistilGPT2 (GPT2Config names: n_embd, n_layer, n_head, n_inner, n_positions):
    learned positions, LayerNorm, a plain gelu MLP, biases everywhere, tied embeddings, no rope."""
    hidden_size = f.required_int("n_embd")
    num_layers = f.required_int("n_layer")
    num_heads = f.required_int("n_head")
    vocab_size = f.required_int("vocab_size")
    if hidden_size % num_heads:
        raise f.error(f"field 'n_embd' ({hidden_size}) must be a multiple of 'n_head' ({num_heads})")
    inner = f.get("n_inner")
    intermediate_size = 4 * hidden_size if inner is None else f.integer("n_inner", inner)
    activation = f.get("activation_function", "gelu_new")
    if activation not in _GELU_TANH_NAMES:
        raise f.error(f"field 'activation_function' is {activation!r}; supported: {', '.join(map(repr, _GELU_TANH_NAMES))}")
    for unsupported in ("scale_attn_by_inverse_layer_idx",):
        if f.get(unsupported):
            raise f.error(f"field '{unsupported}' is true; not supported yet")
    if f.get("scale_attn_weights", True) is not True:
        raise f.error("field 'scale_attn_weights' must be true (unscaled attention is not supported)")
    bos_token_id, eos_token_ids = _special_ids(f, 50256, 50256)
    return ModelConfig(
        architecture=architecture,
        model_type="gpt2",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=f.integer("n_positions", f.get("n_positions", 1024)),
        tie_word_embeddings=True,  # GPT2LMHeadModel always ties lm_head to wte
        hidden_act=activation,
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        learned_positions=True,
        **_biased_layernorm_gelu_fields(f, num_layers),
    )


def _parse_falcon(f: _Fields, architecture: str) -> ModelConfig:
    """Falcon (FalconConfig) in its three layouts: the original multi-query one (Falcon-7B: one
    K/V head, parallel attention and MLP from one LayerNorm), `new_decoder_architecture` (Falcon-40B:
    grouped K/V, separate ln_attn / ln_mlp) and `num_ln_in_parallel_attn=1` (Falcon2-11B: grouped
    K/V, one LayerNorm); plus the sequential `parallel_attn=false` form. The fused qkv layout that
    goes with each is undone in models/falcon.py. LayerNorm, rotary, a plain exact-GELU MLP."""
    hidden_size = f.required_int("hidden_size")
    num_layers = f.required_int("num_hidden_layers")
    num_heads = f.required_int("num_attention_heads")
    vocab_size = f.required_int("vocab_size")
    if hidden_size % num_heads:
        raise f.error(f"field 'hidden_size' ({hidden_size}) must be a multiple of 'num_attention_heads' ({num_heads})")
    alibi = f.boolean("alibi", f.get("alibi", False))
    new_arch = f.boolean("new_decoder_architecture", f.get("new_decoder_architecture", False))
    multi_query = f.boolean("multi_query", f.get("multi_query", True))
    parallel = f.boolean("parallel_attn", f.get("parallel_attn", True))
    if new_arch and not parallel:
        raise f.error("new_decoder_architecture with parallel_attn=false is not a Falcon layout")
    kv = f.get("num_kv_heads")
    kv = num_heads if kv is None else f.integer("num_kv_heads", kv)
    num_kv_heads = kv if (new_arch or not multi_query) else 1
    if num_heads % num_kv_heads:
        raise f.error(f"field 'num_attention_heads' ({num_heads}) must be a multiple of 'num_kv_heads' ({num_kv_heads})")
    activation = f.get("activation", "gelu")
    names = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
    if activation not in names:
        raise f.error(f"field 'activation' is {activation!r}; supported: {', '.join(map(repr, names))}")
    ffn = f.get("ffn_hidden_size")
    max_pos = f.integer("max_position_embeddings", f.get("max_position_embeddings", 2048))
    bias = f.boolean("bias", f.get("bias", False))
    bos_token_id, eos_token_ids = _special_ids(f, 11, 11)
    return ModelConfig(
        architecture=architecture,
        model_type="falcon",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size if ffn is None else f.integer("ffn_hidden_size", ffn),
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        rms_norm_eps=f.number("layer_norm_epsilon", f.get("layer_norm_epsilon", 1e-5)),
        max_position_embeddings=max_pos,
        tie_word_embeddings=f.boolean("tie_word_embeddings", f.get("tie_word_embeddings", True)),
        qkv_bias=bias,
        o_proj_bias=bias,
        mlp_bias=bias,
        hidden_act=activation,
        rope=_rope(f, max_pos),
        layer_windows=(0,) * num_layers,
        torch_dtype=_torch_dtype(f),
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        raw=f.d,
        activation=names[activation],
        norm="layer",
        mlp="plain",
        parallel_residual=parallel,
        **(_falcon_alibi(num_heads, hidden_size // num_heads) if alibi else {}),
    )


def _falcon_alibi(num_heads: int, head_dim: int) -> dict[str, Any]:
    """Falcon-RW: ALiBi instead of rotary. Its scores are (q.k + alibi) / sqrt(head_dim), as in the
    original RefinedWeb code and transformers' sdpa path (transformers 5.24's eager path adds the
    bias twice), with BLOOM's slopes rounded to bfloat16 first. transformers also rounds each
    product slope * j to bfloat16; that is exact while it fits bfloat16's 8 significant bits
    (power-of-two slopes, i.e. 1, 2, 4 or 8 heads, and j < 256) and not reproduced beyond."""
    slopes = np.array(alibi_slopes(num_heads), np.float32)
    slopes = convert(convert(slopes, "float32", "bfloat16"), "bfloat16", "float32")
    return dict(rotary_dim=0, alibi_slopes=tuple(float(np.float32(s / math.sqrt(head_dim))) for s in slopes))


# Gemma3TextConfig's defaults for the fields a Gemma 3 multimodal config.json's text_config may
# leave out (the hub's gemma-3-4b-it gives only hidden_size, intermediate_size, num_hidden_layers,
# rope_scaling and sliding_window); the other fields default as for gemma3_text.
_GEMMA3_TEXT_REQUIRED_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8,
}  # fmt: skip


def _parse_gemma3_multimodal(f: _Fields, architecture: str) -> ModelConfig:
    """Gemma 3 image-text models (Gemma3ForConditionalGeneration, model_type gemma3): the text model
    is read from text_config as a gemma3_text config (the vision tower is not run); dtype and the
    special token ids at the top level apply when text_config has none. tie_word_embeddings is the
    top level's (transformers ties the wrapper's lm_head by the wrapper's config), default true."""
    text = f.d.get("text_config")
    if text is None:
        text = {}
    if not isinstance(text, dict):
        raise f.error(f"field 'text_config' must be an object, got {text!r:.100}")
    merged = {**_GEMMA3_TEXT_REQUIRED_DEFAULTS, **text}
    for key in ("dtype", "torch_dtype", "bos_token_id", "eos_token_id"):
        if f.d.get(key) is not None and key not in text:
            merged[key] = f.d[key]
    merged["tie_word_embeddings"] = f.boolean("tie_word_embeddings", f.get("tie_word_embeddings", True))
    merged.update(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text")
    merged.pop("quantization_config", None)  # the top-level one applies (parsed by the caller)
    parsed = _parse(merged, f"{f.source} (text_config)")
    return replace(parsed, architecture=architecture, model_type="gemma3", raw=f.d)


def alibi_slopes(num_heads: int) -> tuple[float, ...]:
    """ALiBi's per-head slopes (Press et al. 2021), as transformers' _get_alibi_slopes computes them
    in float32: for n heads, with p the largest power of two <= n, the geometric sequence
    2^(-8k/p) for k = 1..p, then for the n - p remaining heads the odd terms 2^(-4k/p), k = 1, 3, 5, ...
    of the sequence for 2p heads."""
    closest = 2 ** int(math.floor(math.log2(num_heads)))
    base = float(np.float32(2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))))
    slopes = [base**k for k in range(1, closest + 1)]
    if closest != num_heads:
        extra_base = float(np.float32(2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))))
        remaining = min(closest, num_heads - closest)
        slopes += [extra_base**k for k in range(1, 2 * remaining, 2)]
    return tuple(float(np.float32(s)) for s in slopes)


def _parse_bloom(f: _Fields, architecture: str) -> ModelConfig:
    """BLOOM / BLOOMZ (BloomConfig names: n_embed or hidden_size, n_layer, n_head): ALiBi instead of
    positions, a LayerNorm of the embeddings, LayerNorms and biases everywhere, a plain MLP of width
    4 * hidden with BLOOM's tanh GELU (0.79788456 ~ sqrt(2/pi): our gelu_tanh), tied lm_head."""

    def first(*names: str) -> int:  # BloomConfig's attribute_map: n_layer <- num_hidden_layers, ...
        for name in names:
            if f.d.get(name) is not None:
                return f.integer(name, f.d[name])
        raise f.error(f"required field '{names[0]}' is missing")

    hidden_size = first("n_embed", "hidden_size")  # BloomConfig: n_embed wins when given
    num_layers = first("n_layer", "num_hidden_layers")
    num_heads = first("n_head", "num_attention_heads")
    vocab_size = f.required_int("vocab_size")
    if hidden_size % num_heads:
        raise f.error(f"field 'hidden_size' ({hidden_size}) must be a multiple of 'n_head' ({num_heads})")
    if f.get("apply_residual_connection_post_layernorm"):
        raise f.error("field 'apply_residual_connection_post_layernorm' is true; not supported yet")
    # ALiBi has no position table; seq_length (the training length, in hub configs) bounds max_seq_len.
    max_pos = f.integer("seq_length", f.get("seq_length", 2048))
    bos_token_id, eos_token_ids = _special_ids(f, 1, 2)
    return ModelConfig(
        architecture=architecture,
        model_type="bloom",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_pos,
        tie_word_embeddings=f.boolean("tie_word_embeddings", f.get("tie_word_embeddings", True)),
        hidden_act="bloom_gelu",
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        embed_norm=True,
        alibi_slopes=alibi_slopes(num_heads),
        **_biased_layernorm_gelu_fields(f, num_layers),
    )


def _parse_rwkv(f: _Fields, architecture: str) -> ModelConfig:
    """RWKV-4 (RwkvConfig names: hidden_size, num_hidden_layers, attention_hidden_size,
    intermediate_size, layer_norm_epsilon, rescale_every, context_length): a recurrent model with
    no attention heads, rope or KV cache. context_length stands in for max_position_embeddings
    (RwkvConfig's attribute_map); slmcore bounds sequences by it like any other model."""
    hidden_size = f.required_int("hidden_size")
    num_layers = f.required_int("num_hidden_layers")
    attention_hidden_size = f.get("attention_hidden_size")
    attention_hidden_size = hidden_size if attention_hidden_size is None else f.integer("attention_hidden_size", attention_hidden_size)
    inner = f.get("intermediate_size")
    # RwkvConfig: rescale_every <= 0 disables the rescaling; absent means 6.
    rescale_every = f.integer("rescale_every", f.get("rescale_every", 6), minimum=-(2**63))
    bos_token_id, eos_token_ids = _special_ids(f, 0, 0)
    return ModelConfig(
        architecture=architecture,
        model_type="rwkv",
        vocab_size=f.required_int("vocab_size"),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size if inner is None else f.integer("intermediate_size", inner),
        num_hidden_layers=num_layers,
        num_attention_heads=0,
        num_key_value_heads=0,
        head_dim=0,
        rms_norm_eps=f.number("layer_norm_epsilon", f.get("layer_norm_epsilon", 1e-5)),
        max_position_embeddings=f.integer("context_length", f.get("context_length", 1024)),
        tie_word_embeddings=f.boolean("tie_word_embeddings", f.get("tie_word_embeddings", False)),
        qkv_bias=False,
        o_proj_bias=False,
        mlp_bias=False,
        hidden_act="relu_squared",
        rope=RopeConfig(theta=10000.0, rope_type="default"),  # unused: no rotary embedding
        layer_windows=(0,) * num_layers,
        torch_dtype=_torch_dtype(f),
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        raw=f.d,
        activation="relu_squared",
        rotary_dim=0,
        norm="layer",
        mlp="plain",
        attention_hidden_size=attention_hidden_size,
        rescale_every=max(rescale_every, 0),
    )


def _architecture(f: _Fields) -> tuple[str, str]:
    supported = (
        f"supported architectures: {', '.join(SUPPORTED_ARCHITECTURES)} "
        f"(model types {', '.join(sorted(set(SUPPORTED_ARCHITECTURES.values())))})"
    )
    architectures = f.d.get("architectures")
    model_type = f.d.get("model_type")
    if architectures is not None:
        if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
            raise f.error(f"field 'architectures' must be a non-empty list of names, got {architectures!r}")
        architecture = architectures[0]
        if architecture not in SUPPORTED_ARCHITECTURES:
            raise f.error(f"architecture {architecture!r} is not supported; {supported}")
        return architecture, SUPPORTED_ARCHITECTURES[architecture]
    if model_type is None:
        raise f.error(f"neither 'architectures' nor 'model_type' is given; {supported}")
    for architecture, family in SUPPORTED_ARCHITECTURES.items():
        if family == model_type:
            return architecture, family
    raise f.error(f"model_type {model_type!r} is not supported; {supported}")


def _quantization(f: _Fields) -> QuantizationConfig | None:
    quantization = f.d.get("quantization_config")
    if quantization is None:
        return None
    if not isinstance(quantization, dict):
        raise f.error(f"field 'quantization_config' must be an object, got {quantization!r}")
    method = quantization.get("quant_method")
    if method not in _OWN_QUANT_METHODS:
        raise f.error(
            f"quantization_config.quant_method {method!r} is not supported yet (GPTQ, AWQ, compressed-tensors, "
            "bitsandbytes and other pre-quantized checkpoints cannot be loaded); use the unquantized checkpoint, "
            "optionally with quant='int4'"
        )
    # Our own format: every field is checked, and unknown ones are refused rather than ignored
    # (a field we do not understand may change what the tensors mean).
    unknown = sorted(set(quantization) - set(_QUANT_KEYS))
    if unknown:
        raise f.error(
            f"quantization_config has unknown fields {unknown}; slmcore's int4 format has {', '.join(_QUANT_KEYS)}"
        )
    for key in ("bits", "group_size", "sym"):
        if key not in quantization:
            raise f.error(f"quantization_config.{key} is missing")
    bits, group_size = quantization["bits"], quantization["group_size"]
    if isinstance(bits, bool) or bits != QUANT_BITS:
        raise f.error(f"quantization_config.bits is {bits!r}; slmcore's format stores {QUANT_BITS}-bit weights")
    if isinstance(group_size, bool) or group_size not in QUANT_GROUP_SIZES:
        raise f.error(
            f"quantization_config.group_size is {group_size!r}; supported group sizes: "
            f"{', '.join(map(str, QUANT_GROUP_SIZES))}"
        )
    sym = f.boolean("quantization_config.sym", quantization["sym"])
    lists = {}
    for key in ("unquantized", "int8"):
        names = quantization.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise f.error(f"quantization_config.{key} must be a list of tensor names, got {names!r:.200}")
        if len(set(names)) != len(names):
            raise f.error(f"quantization_config.{key} lists a name twice")
        lists[key] = tuple(names)
    both = sorted(set(lists["unquantized"]) & set(lists["int8"]))
    if both:
        raise f.error(f"quantization_config lists {both} both as unquantized and as int8")
    return QuantizationConfig(
        group_size=int(group_size), sym=sym, unquantized=lists["unquantized"], int8=lists["int8"]
    )


def _rope(
    f: _Fields,
    max_position_embeddings: int,
    params: Any = None,
    name: str | None = None,
    theta_default: float = 10000.0,
    allow_partial: bool = False,
    rotary_dim: int | None = None,
) -> RopeConfig:
    # transformers: `rope_scaling` (hub spelling) wins over `rope_parameters` (transformers 5 spelling);
    # values inside the dict win over the top-level rope_theta; `type` is the old name of `rope_type`.
    if params is None:
        params = f.d.get("rope_scaling") or f.d.get("rope_parameters") or {}
        name = "rope_scaling" if f.d.get("rope_scaling") else "rope_parameters"
    if not isinstance(params, dict):
        raise f.error(f"field '{name}' must be an object, got {params!r}")
    theta = params.get("rope_theta")
    theta = f.get("rope_theta", theta_default) if theta is None else theta
    theta = f.number("rope_theta", theta)

    rope_type = params.get("rope_type", params.get("type", "default"))
    if rotary_dim is not None and rope_type in ("su", "yarn"):
        rope_type = "longrope"  # Phi3Config's renaming
    if rope_type == "longrope" and rotary_dim is None:
        raise f.error(
            f"{name}.rope_type 'longrope' is supported for phi3 models only; supported rope types here: "
            "default, linear, llama3"
        )
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise f.error(
            f"{name}.rope_type {rope_type!r} is not supported; supported rope types: {', '.join(SUPPORTED_ROPE_TYPES)}"
        )
    partial = params.get("partial_rotary_factor", f.d.get("partial_rotary_factor"))
    if partial is not None and f.number("partial_rotary_factor", partial) != 1.0 and not allow_partial:
        raise f.error(f"field 'partial_rotary_factor' is {partial}; the llama family rotates the whole head (1.0)")

    def required_number(key: str) -> float:
        if params.get(key) is None:
            raise f.error(f"{name}.{key} is required for rope_type {rope_type!r}")
        return f.number(f"{name}.{key}", params[key])

    if rope_type == "default":
        return RopeConfig(theta=theta, rope_type="default")
    if rope_type == "linear":
        return RopeConfig(theta=theta, rope_type="linear", factor=required_number("factor"))
    if rope_type == "longrope":
        return _longrope(f, params, name, theta, max_position_embeddings, rotary_dim)
    # llama3: a top-level original_max_position_embeddings wins, then the dict's, then max_position_embeddings.
    original = f.d.get("original_max_position_embeddings")
    if original is None:
        original = params.get("original_max_position_embeddings")
    if original is None:
        original = max_position_embeddings
    original = f.integer(f"{name}.original_max_position_embeddings", original)
    low, high = required_number("low_freq_factor"), required_number("high_freq_factor")
    if high <= low:
        raise f.error(f"{name}.high_freq_factor ({high}) must be greater than low_freq_factor ({low})")
    return RopeConfig(
        theta=theta,
        rope_type="llama3",
        factor=required_number("factor"),
        low_freq_factor=low,
        high_freq_factor=high,
        original_max_position_embeddings=original,
    )


def _longrope(f: _Fields, params: dict, name: str, theta: float, max_position_embeddings: int, rotary_dim: int) -> RopeConfig:
    """Phi-3 LongRoPE as transformers' _compute_longrope_parameters: inv_freq divided per frequency
    by short_factor (or long_factor past original_max_position_embeddings), cos/sin multiplied by
    attention_factor (default sqrt(1 + ln(factor) / ln(original)), factor = max / original)."""
    original = f.integer(
        "original_max_position_embeddings",
        params.get("original_max_position_embeddings", f.d.get("original_max_position_embeddings", max_position_embeddings)),
    )
    factors = {}
    for key in ("short_factor", "long_factor"):
        values = params.get(key)
        if (not isinstance(values, list) or len(values) != rotary_dim // 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
            raise f.error(f"{name}.{key} must be a list of {rotary_dim // 2} positive numbers (rotary_dim / 2)")
        factors[key] = tuple(float(v) for v in values)
    factor = params.get("factor")
    factor = max_position_embeddings / original if factor is None else f.number(f"{name}.factor", factor)
    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    return RopeConfig(
        theta=theta, rope_type="longrope", factor=factor, original_max_position_embeddings=original,
        attention_factor=f.number(f"{name}.attention_factor", attention_factor), **factors,
    )  # fmt: skip


def _gemma3_ropes(f: _Fields, max_position_embeddings: int) -> tuple[RopeConfig, RopeConfig]:
    """(global, local) rope of Gemma 3, as Gemma3TextConfig.convert_rope_params_to_dict builds them:
    rope_parameters per layer type (transformers 5), or the hub's rope_theta (+ rope_scaling, which
    applies to global layers only) and rope_local_base_freq; thetas default to 1e6 and 1e4."""
    params = f.d.get("rope_parameters")
    per_type = isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params)
    full = dict(params.get("full_attention") or {}) if per_type else {}
    local = dict(params.get("sliding_attention") or {}) if per_type else {}
    scaling = f.d.get("rope_scaling")
    if scaling is not None:
        if not isinstance(scaling, dict):
            raise f.error(f"field 'rope_scaling' must be an object, got {scaling!r}")
        full.update(scaling)
    full.setdefault("rope_theta", f.get("rope_theta", 1_000_000.0))
    local.setdefault("rope_theta", f.get("rope_local_base_freq", 10_000.0))
    global_rope = _rope(f, max_position_embeddings, full, "rope_parameters.full_attention")
    local_rope = _rope(f, max_position_embeddings, local, "rope_parameters.sliding_attention")
    return global_rope, local_rope


def _window(f: _Fields, value: Any) -> int:
    return f.integer("sliding_window", value)


def _layer_windows(f: _Fields, model_type: str, num_hidden_layers: int) -> tuple[int, ...]:
    """Per-layer attention window, exactly as transformers 5.24 builds its masks.

    The window semantics come from masking_utils.sliding_window_overlay: key j is visible from
    query i when i - w < j <= i (w positions, the query's own included).
    """
    if model_type == "llama":
        # LlamaModel always uses create_causal_mask; a sliding_window key is ignored.
        return (0,) * num_hidden_layers
    if model_type == "mistral":
        # MistralModel: every layer slides when sliding_window is set (default 4096 when the key is
        # absent, null disables it); layer_types is ignored (MistralConfig only warns about it).
        sliding_window = f.given_or("sliding_window", 4096)
        if sliding_window is None:
            return (0,) * num_hidden_layers
        return (_window(f, sliding_window),) * num_hidden_layers

    if model_type in ("stablelm", "phi", "gemma"):
        return (0,) * num_hidden_layers
    if model_type == "phi3":
        # Phi3Model: every layer slides when sliding_window is set (null or absent: none).
        sliding_window = f.get("sliding_window")
        return (0,) * num_hidden_layers if sliding_window is None else (_window(f, sliding_window),) * num_hidden_layers
    if model_type in ("gemma3_text", "gemma2"):
        # Gemma3TextConfig: layer_types, else every `sliding_window_pattern`-th layer (default 6) is
        # global and the others slide over sliding_window (default 4096). Gemma2Config: every
        # second layer (odd indices) is global.
        sliding_window = f.given_or("sliding_window", 4096)
        layer_types = f.d.get("layer_types")
        if layer_types is None:
            default_pattern = 6 if model_type == "gemma3_text" else 2
            pattern = f.integer("sliding_window_pattern", f.get("sliding_window_pattern", default_pattern))
            layer_types = [
                "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_hidden_layers)
            ]
        return _windows_from_layer_types(f, layer_types, sliding_window, num_hidden_layers)

    # qwen2, qwen3: Qwen2Config.__post_init__ sets sliding_window = None unless use_sliding_window, then
    # (when layer_types is absent) marks layer i sliding iff sliding_window is set and
    # i >= max_window_layers. A layer_types list in the JSON is used as given.
    use_sliding_window = f.boolean("use_sliding_window", f.get("use_sliding_window", False))
    sliding_window = f.given_or("sliding_window", 4096)
    if not use_sliding_window:
        # use_sliding_window=false disables the window whatever layer_types says (Qwen2.5 checkpoints
        # carry sliding_window values that transformers ignores this way).
        return (0,) * num_hidden_layers
    layer_types = f.d.get("layer_types")
    if layer_types is None:
        if sliding_window is None:
            return (0,) * num_hidden_layers
        window = _window(f, sliding_window)
        max_window_layers = f.integer("max_window_layers", f.get("max_window_layers", 28), minimum=0)
        return tuple(window if i >= max_window_layers else 0 for i in range(num_hidden_layers))

    return _windows_from_layer_types(f, layer_types, sliding_window, num_hidden_layers)


def _windows_from_layer_types(f: _Fields, layer_types: Any, sliding_window: Any, num_hidden_layers: int) -> tuple[int, ...]:
    if not isinstance(layer_types, list) or len(layer_types) != num_hidden_layers:
        raise f.error(
            f"field 'layer_types' must be a list of {num_hidden_layers} entries (num_hidden_layers), "
            f"got {layer_types!r}"
        )
    windows = []
    for i, layer_type in enumerate(layer_types):
        if layer_type in ("full_attention", "attention"):
            windows.append(0)
        elif layer_type == "sliding_attention":
            if sliding_window is None:
                raise f.error(f"layer_types[{i}] is 'sliding_attention' but 'sliding_window' is null")
            windows.append(_window(f, sliding_window))
        else:
            raise f.error(
                f"layer_types[{i}] is {layer_type!r}; supported layer types: 'full_attention', 'sliding_attention'"
            )
    return tuple(windows)


def _torch_dtype(f: _Fields) -> str | None:
    # transformers 5 writes `dtype`; older checkpoints `torch_dtype`. When both are present, `dtype` wins.
    name = "dtype" if f.d.get("dtype") is not None else "torch_dtype"
    value = f.d.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.removeprefix("torch.") in _DTYPE_NAMES:
        return value.removeprefix("torch.")
    raise f.error(f"field '{name}' must be one of {', '.join(_DTYPE_NAMES)}, got {value!r}")
