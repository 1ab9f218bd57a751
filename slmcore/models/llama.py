"""The llama family (llama, mistral, qwen2): HF weight names -> the engine's canonical weights.

Canonical names are HF's without the `model.` prefix and the `.weight` suffix (biases keep
`.bias`): embed_tokens, norm, lm_head, layers.{i}.input_layernorm, layers.{i}.self_attn.q_proj, ...
The three model types differ only in config (biases, sliding windows), which config.py resolves.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import InvalidArgumentError, ModelFormatError
from slmcore.loader import WEIGHT_DTYPES, Checkpoint, convert

GRAPH = "llama"
MODEL_TYPES = ("llama", "mistral", "qwen2")


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
        shapes[f"{layer}.mlp.gate_proj"] = (inter, hidden)
        shapes[f"{layer}.mlp.up_proj"] = (inter, hidden)
        shapes[f"{layer}.mlp.down_proj"] = (hidden, inter)
        if config.mlp_bias:
            shapes[f"{layer}.mlp.gate_proj.bias"] = (inter,)
            shapes[f"{layer}.mlp.up_proj.bias"] = (inter,)
            shapes[f"{layer}.mlp.down_proj.bias"] = (hidden,)
    return shapes


def _hf_names(canonical: str) -> tuple[str, ...]:
    """Checkpoint names to try for a canonical name: `model.`-prefixed first, then bare."""
    name = canonical if canonical.endswith(".bias") else f"{canonical}.weight"
    if canonical == "lm_head":
        return (name,)
    return (f"model.{name}", name)


def _is_vector(canonical: str) -> bool:
    """Norm weights and biases: always handed over as float32."""
    return canonical.endswith((".bias", "norm", "layernorm"))


def engine_weights(
    config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto"
) -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): shape-checked; matrices in dtype ("auto" = stored, zero-copy)."""
    if dtype != "auto" and dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"dtype must be 'auto' or one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")

    shapes = _expected_shapes(config)
    hf_name = {canonical: _find(checkpoint, canonical) for canonical in shapes if canonical != "lm_head"}
    lm_head_name = None if config.tie_word_embeddings else _find(checkpoint, "lm_head", required=False)
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
        weights[canonical] = (convert(array, stored, target), target)
    if "lm_head" not in weights:
        weights["lm_head"] = weights["embed_tokens"]
    return weights


def _find(checkpoint: Checkpoint, canonical: str, required: bool = True) -> str | None:
    """The checkpoint's name for a canonical weight; ModelFormatError (or None) when it has none."""
    for name in _hf_names(canonical):
        if name in checkpoint.tensors or name in checkpoint.unsupported:
            return name
    if not required:
        return None
    raise ModelFormatError(f"{checkpoint.model_dir}: the checkpoint has no tensor {_hf_names(canonical)[0]!r}")


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every weight the config calls for (lm_head included, even when tied)."""
    return _expected_shapes(config)


def checkpoint_names(canonical: str) -> tuple[str, ...]:
    """The checkpoint names tried, in order, for a canonical weight (e.g. 'model.layers.0.mlp.up_proj.weight')."""
    return _hf_names(canonical)
