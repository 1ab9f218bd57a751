"""The llama family (llama, mistral, qwen2, qwen3, gemma): HF weight names -> the engine's canonical weights.

Canonical names are Llama's HF names without the `model.` prefix and the `.weight` suffix (biases
keep `.bias`): embed_tokens, norm, lm_head, layers.{i}.input_layernorm, layers.{i}.self_attn.q_proj,
..., layers.{i}.post_attention_layernorm (the norm before the MLP), plus the optional
layers.{i}.self_attn.q_norm / k_norm (Qwen3, Gemma 3) and layers.{i}.attn_output_norm /
mlp_output_norm (Gemma's norms of the block outputs). The model types differ only in config
(biases, windows, head norms), which config.py resolves; other families reuse engine_weights with
their own layer-name map (see gemma3.py).
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import InvalidArgumentError, ModelFormatError
from slmcore.loader import WEIGHT_DTYPES, Checkpoint, convert

GRAPH = "llama"
MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma")


def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape, for every weight the config calls for (lm_head included)."""
    hidden, inter = config.hidden_size, config.intermediate_size
    q_rows = config.num_attention_heads * config.head_dim
    kv_rows = config.num_key_value_heads * config.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "embed_tokens": (config.vocab_size, hidden),
        "norm": (hidden,),
        "lm_head": (config.vocab_size, hidden),
    }
    for i in range(config.num_hidden_layers):
        layer = f"layers.{i}"
        shapes[f"{layer}.input_layernorm"] = (hidden,)
        shapes[f"{layer}.self_attn.q_proj"] = (q_rows, hidden)
        shapes[f"{layer}.self_attn.k_proj"] = (kv_rows, hidden)
        shapes[f"{layer}.self_attn.v_proj"] = (kv_rows, hidden)
        shapes[f"{layer}.self_attn.o_proj"] = (hidden, q_rows)
        if config.qkv_bias:
            shapes[f"{layer}.self_attn.q_proj.bias"] = (q_rows,)
            shapes[f"{layer}.self_attn.k_proj.bias"] = (kv_rows,)
            shapes[f"{layer}.self_attn.v_proj.bias"] = (kv_rows,)
        if config.o_proj_bias:
            shapes[f"{layer}.self_attn.o_proj.bias"] = (hidden,)
        shapes[f"{layer}.post_attention_layernorm"] = (hidden,)
        if config.mlp == "gated":
            shapes[f"{layer}.mlp.gate_proj"] = (inter, hidden)
        shapes[f"{layer}.mlp.up_proj"] = (inter, hidden)
        shapes[f"{layer}.mlp.down_proj"] = (hidden, inter)
        if config.mlp_bias:
            if config.mlp == "gated":
                shapes[f"{layer}.mlp.gate_proj.bias"] = (inter,)
            shapes[f"{layer}.mlp.up_proj.bias"] = (inter,)
            shapes[f"{layer}.mlp.down_proj.bias"] = (hidden,)
        if config.qk_norm:
            per_head = config.head_norm == "layer_per_head"  # StableLM: one weight per head, stacked
            shapes[f"{layer}.self_attn.q_norm"] = (q_rows if per_head else config.head_dim,)
            shapes[f"{layer}.self_attn.k_norm"] = (kv_rows if per_head else config.head_dim,)
        if config.sandwich_norms:
            shapes[f"{layer}.attn_output_norm"] = (hidden,)
            shapes[f"{layer}.mlp_output_norm"] = (hidden,)
        if config.norm == "layer":  # LayerNorm biases (StableLM)
            shapes[f"{layer}.input_layernorm.bias"] = (hidden,)
            shapes[f"{layer}.post_attention_layernorm.bias"] = (hidden,)
    if config.norm == "layer":
        shapes["norm.bias"] = (hidden,)
    if config.lm_head_bias:
        shapes["lm_head.bias"] = (config.vocab_size,)
    if config.embed_norm:  # BLOOM
        shapes["embed_norm"] = (hidden,)
        shapes["embed_norm.bias"] = (hidden,)
    if config.learned_positions:  # GPT-2
        shapes["position_embeddings"] = (config.max_position_embeddings, hidden)
    return shapes


# Where the decoder's tensors live: `model.`-prefixed first, then bare; the lm_head at the top.
MODEL_PREFIXES = ("model.", "")
LM_HEAD_PREFIXES = ("",)


def _hf_names(
    canonical: str, layer_names: dict[str, str], prefixes: tuple[str, ...] = MODEL_PREFIXES,
    lm_head_prefixes: tuple[str, ...] = LM_HEAD_PREFIXES,
) -> tuple[str, ...]:
    """Checkpoint names to try for a canonical name, one per prefix in order."""
    prefix, dot, rest = canonical.partition(".")
    if prefix == "layers" and dot:
        index, _, part = rest.partition(".")
        canonical = f"layers.{index}.{layer_names.get(part, part)}"
    else:
        canonical = layer_names.get(canonical, canonical)
    name = canonical if canonical.endswith(".bias") else f"{canonical}.weight"
    if canonical.startswith("lm_head"):
        return tuple(f"{prefix}{name}" for prefix in lm_head_prefixes)
    return tuple(f"{prefix}{name}" for prefix in prefixes)


def _is_norm(canonical: str) -> bool:
    return canonical.endswith("norm")


def _is_vector(canonical: str) -> bool:
    """Norm weights and biases: always handed over as float32."""
    return canonical.endswith(".bias") or _is_norm(canonical)


def engine_weights(
    config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto", layer_names: dict[str, str] | None = None,
    prefixes: tuple[str, ...] = MODEL_PREFIXES, lm_head_prefixes: tuple[str, ...] = LM_HEAD_PREFIXES,
) -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): shape-checked; matrices in dtype ("auto" = stored, zero-copy).

    layer_names maps a canonical name (per layer, e.g. "post_attention_layernorm", or top-level,
    e.g. "norm") to the family's HF name when they differ. Norm weights get config.norm_weight_offset added (Gemma stores w - 1).
    prefixes (lm_head_prefixes) are tried in order in front of the decoder's (the lm_head's) tensor names.
    """
    layer_names = layer_names or {}
    if dtype != "auto" and dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"dtype must be 'auto' or one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")

    shapes = _expected_shapes(config)
    names = {"prefixes": prefixes, "lm_head_prefixes": lm_head_prefixes}
    hf_name = {
        canonical: _find(checkpoint, canonical, layer_names, **names) for canonical in shapes if canonical != "lm_head"
    }
    lm_head_name = (
        None if config.tie_word_embeddings else _find(checkpoint, "lm_head", layer_names, required=False, **names)
    )
    if not config.tie_word_embeddings and lm_head_name is None:
        raise ModelFormatError(
            f"{checkpoint.model_dir}: the checkpoint has no lm_head.weight and tie_word_embeddings is false "
            "in config.json"
        )
    if lm_head_name is not None:
        hf_name["lm_head"] = lm_head_name

    # Every dtype and shape is checked before anything is converted.
    for canonical, name in hf_name.items():
        if name not in checkpoint.tensors:
            checkpoint.tensor(name)  # raises ModelFormatError naming the file and the unsupported dtype
        info = checkpoint.tensors[name]
        if info.shape != shapes[canonical]:
            raise ModelFormatError(
                f"{info.file}: tensor {name!r} has shape {list(info.shape)}, expected {list(shapes[canonical])} "
                "from config.json"
            )

    weights: dict[str, tuple[np.ndarray, str]] = {}
    for canonical, name in hf_name.items():
        array, stored = checkpoint.tensor(name)
        target = "float32" if _is_vector(canonical) else (stored if dtype == "auto" else dtype)
        converted = convert(array, stored, target)
        if _is_norm(canonical) and config.norm_weight_offset:
            converted = converted + np.float32(config.norm_weight_offset)  # float32, as transformers computes 1 + w
        weights[canonical] = (converted, target)
    if "lm_head" not in weights:
        weights["lm_head"] = weights["embed_tokens"]
    return weights


def _find(
    checkpoint: Checkpoint, canonical: str, layer_names: dict[str, str], required: bool = True, **prefixes
) -> str | None:
    """The checkpoint's name for a canonical weight; ModelFormatError (or None) when it has none."""
    candidates = _hf_names(canonical, layer_names, **prefixes)
    for name in candidates:
        if name in checkpoint.tensors or name in checkpoint.unsupported:
            return name
    if not required:
        return None
    raise ModelFormatError(f"{checkpoint.model_dir}: the checkpoint has no tensor {candidates[0]!r}")


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every weight the config calls for (lm_head included, even when tied).

    Every family hands the engine these canonical weights, so this describes all of them (it is
    what slmcore-quantized checkpoints store, under checkpoint_names(canonical)[0])."""
    return _expected_shapes(config)


def checkpoint_names(canonical: str, layer_names: dict[str, str] | None = None) -> tuple[str, ...]:
    """The checkpoint names tried, in order, for a canonical weight (e.g. 'model.layers.0.mlp.up_proj.weight')."""
    return _hf_names(canonical, layer_names or {})
