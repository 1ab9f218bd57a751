"""RWKV-4 (rwkv): transformers' RwkvForCausalLM weight names -> the engine's canonical weights.

Canonical names: embed_tokens, pre_ln (+ .bias; block 0's LayerNorm of the embeddings), norm
(+ .bias; ln_out), lm_head, and per block layers.{i}.ln1 / ln2 (+ .bias),
layers.{i}.attention.{time_decay, time_first, time_mix_key, time_mix_value, time_mix_receptance}
(float32 vectors), layers.{i}.attention.{key, value, receptance, output} (matrices),
layers.{i}.feed_forward.{time_mix_key, time_mix_receptance} (vectors) and
layers.{i}.feed_forward.{key, receptance, value} (matrices). Checkpoints name them under `rwkv.`
(the head as `head.weight`); files without the prefix load too. time_decay is handed over as
stored (w): the engine uses -exp(w), as transformers does.
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


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): shape-checked; matrices in dtype ("auto" = stored, zero-copy)."""
    common.check_dtype(dtype)
    if config.quantization is not None:
        raise ConfigError(f"{checkpoint.model_dir}: quantized RWKV checkpoints are not supported yet")
    H, A, inner, vocab = config.hidden_size, config.attention_hidden_size, config.intermediate_size, config.vocab_size

    def load(name: str, shape: tuple[int, ...], required: bool = True) -> tuple[np.ndarray, str] | None:
        return common.load(checkpoint, (f"rwkv.{name}", name), shape, required)

    def matrix(name: str, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
        return common.matrix(load(f"{name}.weight", shape), dtype)

    def vector(name: str, length: int, stored_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, str]:
        array, stored = load(name, stored_shape or (length,))
        return common.vector((array.reshape(length), stored))

    weights: dict[str, tuple[np.ndarray, str]] = {
        "embed_tokens": matrix("embeddings", (vocab, H)),
        "pre_ln": vector("blocks.0.pre_ln.weight", H),
        "pre_ln.bias": vector("blocks.0.pre_ln.bias", H),
        "norm": vector("ln_out.weight", H),
        "norm.bias": vector("ln_out.bias", H),
    }
    head = None if config.tie_word_embeddings else common.load(checkpoint, ("head.weight",), (vocab, H), required=False)
    if head is None and not config.tie_word_embeddings:
        raise ModelFormatError(f"{checkpoint.model_dir}: no head.weight and tie_word_embeddings is false")
    weights["lm_head"] = weights["embed_tokens"] if head is None else common.matrix(head, dtype)

    # time_mix_* are stored as [1, 1, hidden]; time_decay and time_first as [attention_hidden_size].
    mix_shape = (1, 1, H)
    for i in range(config.num_hidden_layers):
        src, dst = f"blocks.{i}", f"layers.{i}"
        for norm in ("ln1", "ln2"):
            weights[f"{dst}.{norm}"] = vector(f"{src}.{norm}.weight", H)
            weights[f"{dst}.{norm}.bias"] = vector(f"{src}.{norm}.bias", H)
        for name in TIME_MIX_VECTORS:
            time_param = name in ("time_decay", "time_first")
            weights[f"{dst}.attention.{name}"] = vector(
                f"{src}.attention.{name}", A if time_param else H, None if time_param else mix_shape
            )
        weights[f"{dst}.attention.key"] = matrix(f"{src}.attention.key", (A, H))
        weights[f"{dst}.attention.value"] = matrix(f"{src}.attention.value", (A, H))
        weights[f"{dst}.attention.receptance"] = matrix(f"{src}.attention.receptance", (A, H))
        weights[f"{dst}.attention.output"] = matrix(f"{src}.attention.output", (H, A))
        for name in FEED_FORWARD_VECTORS:
            weights[f"{dst}.feed_forward.{name}"] = vector(f"{src}.feed_forward.{name}", H, mix_shape)
        weights[f"{dst}.feed_forward.key"] = matrix(f"{src}.feed_forward.key", (inner, H))
        weights[f"{dst}.feed_forward.receptance"] = matrix(f"{src}.feed_forward.receptance", (H, H))
        weights[f"{dst}.feed_forward.value"] = matrix(f"{src}.feed_forward.value", (H, inner))
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
