"""Phi-3 / Phi-3.5 / Phi-4-mini (phi3): the llama graph fed from fused projections.

Phi-3 stores q, k and v as one qkv_proj [(heads + 2 kv_heads) * head_dim, hidden] and the MLP's
gate and up as one gate_up_proj [2 * intermediate, hidden] (gate first). Row ranges of a row-major
matrix are themselves row-major, so the split is a zero-copy view. LongRoPE and partial rotary
(Phi-4-mini rotates 3/4 of each head) are resolved by config.py and rope.py.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import ModelFormatError
from slmcore.loader import Checkpoint
from slmcore.models import common
from slmcore.models.llama import checkpoint_names

GRAPH = "llama"
MODEL_TYPES = ("phi3",)


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype), the fused tensors split into the llama names."""
    common.check_dtype(dtype)
    hidden, inter = config.hidden_size, config.intermediate_size
    q_rows = config.num_attention_heads * config.head_dim
    kv_rows = config.num_key_value_heads * config.head_dim

    def load(canonical: str, shape: tuple[int, ...], required: bool = True) -> tuple[np.ndarray, str] | None:
        return common.load(checkpoint, checkpoint_names(canonical), shape, required)

    def matrix(array: np.ndarray, stored: str) -> tuple[np.ndarray, str]:
        return common.matrix((array, stored), dtype)

    vector = common.vector

    weights: dict[str, tuple[np.ndarray, str]] = {
        "embed_tokens": matrix(*load("embed_tokens", (config.vocab_size, hidden))),
        "norm": vector(load("norm", (hidden,))),
    }
    lm_head = None if config.tie_word_embeddings else load("lm_head", (config.vocab_size, hidden), required=False)
    if lm_head is None and not config.tie_word_embeddings:
        raise ModelFormatError(f"{checkpoint.model_dir}: no lm_head.weight and tie_word_embeddings is false")
    weights["lm_head"] = weights["embed_tokens"] if lm_head is None else matrix(*lm_head)
    for i in range(config.num_hidden_layers):
        layer = f"layers.{i}"
        weights[f"{layer}.input_layernorm"] = vector(load(f"{layer}.input_layernorm", (hidden,)))
        weights[f"{layer}.post_attention_layernorm"] = vector(load(f"{layer}.post_attention_layernorm", (hidden,)))
        qkv, stored = load(f"{layer}.self_attn.qkv_proj", (q_rows + 2 * kv_rows, hidden))
        weights[f"{layer}.self_attn.q_proj"] = matrix(qkv[:q_rows], stored)
        weights[f"{layer}.self_attn.k_proj"] = matrix(qkv[q_rows : q_rows + kv_rows], stored)
        weights[f"{layer}.self_attn.v_proj"] = matrix(qkv[q_rows + kv_rows :], stored)
        weights[f"{layer}.self_attn.o_proj"] = matrix(*load(f"{layer}.self_attn.o_proj", (hidden, q_rows)))
        gate_up, stored = load(f"{layer}.mlp.gate_up_proj", (2 * inter, hidden))
        weights[f"{layer}.mlp.gate_proj"] = matrix(gate_up[:inter], stored)
        weights[f"{layer}.mlp.up_proj"] = matrix(gate_up[inter:], stored)
        weights[f"{layer}.mlp.down_proj"] = matrix(*load(f"{layer}.mlp.down_proj", (hidden, inter)))
    return weights
