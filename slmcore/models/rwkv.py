"""RWKV-4 (rwkv): transformers' RwkvForCausalLM weight names -> the engine's canonical weights.

Canonical names: embed_tokens, pre_ln (+ .bias; block 0's LayerNorm of the embeddings), norm
(+ .bias; ln_out), lm_head, and per block layers.{i}.ln1 / ln2 (+ .bias),
layers.{i}.attention.{time_decay, time_first, time_mix_key, time_mix_value, time_mix_receptance}
(float32 vectors), layers.{i}.attention.{key, value, receptance, output} (matrices),
layers.{i}.feed_forward.{time_mix_key, time_mix_receptance} (vectors) and
layers.{i}.feed_forward.{key, receptance, value} (matrices). Checkpoints name them under `rwkv.`
(the head as `head.weight`); files without the prefix load too (checkpoint_names). time_decay is
handed over as stored (w): the engine uses -exp(w), as transformers does.

A quantized checkpoint (slmcore.quant.save_quantized) keeps these names: the matrices become
`X.qweight` / `X.scales` (int4, or int8 rows for rwkv.embeddings and head), and every vector is
stored with its engine shape (time_mix_* as [hidden] rather than [1, 1, hidden]).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import ConfigError, ModelFormatError
from slmcore.loader import Checkpoint
from slmcore.models import common

GRAPH = "rwkv"
MODEL_TYPES = ("rwkv",)

TIME_MIX_VECTORS = ("time_decay", "time_first", "time_mix_key", "time_mix_value", "time_mix_receptance")
FEED_FORWARD_VECTORS = ("time_mix_key", "time_mix_receptance")


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every weight the engine takes (lm_head included, even when tied);
    what an slmcore-quantized RWKV checkpoint stores, under checkpoint_names(canonical)[0]."""
    H, A, inner, vocab = config.hidden_size, config.attention_hidden_size, config.intermediate_size, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"embed_tokens": (vocab, H)}
    for norm in ("pre_ln", "norm"):
        shapes[norm] = shapes[f"{norm}.bias"] = (H,)
    shapes["lm_head"] = (vocab, H)
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}"
        for norm in ("ln1", "ln2"):
            shapes[f"{p}.{norm}"] = shapes[f"{p}.{norm}.bias"] = (H,)
        for name in TIME_MIX_VECTORS:
            shapes[f"{p}.attention.{name}"] = (A,) if name in ("time_decay", "time_first") else (H,)
        shapes.update({f"{p}.attention.key": (A, H), f"{p}.attention.value": (A, H),
                       f"{p}.attention.receptance": (A, H), f"{p}.attention.output": (H, A)})  # fmt: skip
        for name in FEED_FORWARD_VECTORS:
            shapes[f"{p}.feed_forward.{name}"] = (H,)
        shapes.update({f"{p}.feed_forward.key": (inner, H), f"{p}.feed_forward.receptance": (H, H),
                       f"{p}.feed_forward.value": (H, inner)})  # fmt: skip
    return shapes


# Canonical names that differ from transformers' (before the `.weight` suffix); `layers.` is `blocks.`.
_HF_NAMES = {"embed_tokens": "embeddings", "pre_ln": "blocks.0.pre_ln", "norm": "ln_out", "lm_head": "head"}


def checkpoint_names(canonical: str) -> tuple[str, ...]:
    """The checkpoint names tried, in order, for a canonical weight: transformers' name under
    `rwkv.`, then bare (hub files without the prefix); the head is `head.weight` only.
    ('layers.0.attention.key' -> 'rwkv.blocks.0.attention.key.weight'; the time parameters have
    no `.weight`: 'rwkv.blocks.0.attention.time_decay'.)"""
    bias = canonical.endswith(".bias")
    stem = canonical.removesuffix(".bias")
    if stem.startswith("layers."):
        name = "blocks." + stem.removeprefix("layers.")
    else:
        name = _HF_NAMES.get(stem, stem)
    if bias:
        name += ".bias"
    elif ".time_" not in name:
        name += ".weight"
    return (name,) if stem == "lm_head" else (f"rwkv.{name}", name)


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): shape-checked; matrices in dtype ("auto" = stored, zero-copy)."""
    common.check_dtype(dtype)
    if config.quantization is not None:  # slmcore.quant.load_quantized reads those
        raise ConfigError(f"{checkpoint.model_dir}: a quantized checkpoint is read by slmcore.quant.load_quantized")
    shapes = weight_shapes(config)
    weights: dict[str, tuple[np.ndarray, str]] = {}
    for canonical, shape in shapes.items():
        if canonical == "lm_head":
            continue
        # time_mix_* are stored as [1, 1, hidden]; every other vector as itself.
        stored_shape = (1, 1, *shape) if ".time_mix_" in canonical else shape
        array, stored = common.load(checkpoint, checkpoint_names(canonical), stored_shape)
        if len(shape) == 2:
            weights[canonical] = common.matrix((array, stored), dtype)
        else:
            weights[canonical] = common.vector((array.reshape(shape), stored))
    head = None
    if not config.tie_word_embeddings:
        head = common.load(checkpoint, checkpoint_names("lm_head"), shapes["lm_head"], required=False)
        if head is None:
            raise ModelFormatError(f"{checkpoint.model_dir}: no head.weight and tie_word_embeddings is false")
    weights["lm_head"] = weights["embed_tokens"] if head is None else common.matrix(head, dtype)
    return weights


def engine_config(config: ModelConfig, max_seq_len: int, threads: int) -> dict[str, Any]:
    """The config dict of the C++ "rwkv" graph.

    ln_out's eps is 1e-5 whatever layer_norm_epsilon says: transformers builds it as
    nn.LayerNorm(hidden_size) (the other LayerNorms use layer_norm_epsilon).
    """
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "attention_hidden_size": config.attention_hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "layer_norm_epsilon": config.rms_norm_eps,
        "final_norm_eps": 1e-5,
        "rescale_every": config.rescale_every,
        "max_seq_len": max_seq_len,
        "threads": threads,
        "isa": "auto",
    }
