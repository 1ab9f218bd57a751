"""Falcon (falcon): the fused query_key_value rows split into q, k and v for the layout the config
implies (transformers' FalconAttention._split_heads):

- new_decoder_architecture: per K/V group g, heads/kv query heads, then k_g, then v_g;
- multi_query (Falcon-7B): all query heads, then the one k head, then the one v head;
- otherwise (and BLOOM, whose tensor names Falcon kept): per head h, q_h, k_h, v_h.

Every split is a gather of head-sized row blocks (a copy); everything else maps by name. The
MLP's norm (canonical post_attention_layernorm) is ln_mlp with two parallel LayerNorms, and the
shared input_layernorm when there is one.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import ModelFormatError
from slmcore.loader import Checkpoint
from slmcore.models import common

GRAPH = "llama"
MODEL_TYPES = ("falcon",)


def qkv_row_order(config: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head indices (in units of head_dim rows of query_key_value) of the q, k and v heads."""
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    raw = config.raw
    if raw.get("new_decoder_architecture"):
        group = heads // kv
        blocks = np.arange(kv * (group + 2)).reshape(kv, group + 2)
        return blocks[:, :group].reshape(-1), blocks[:, group], blocks[:, group + 1]
    if config.model_type == "falcon" and raw.get("multi_query", True):
        return np.arange(heads), np.array([heads]), np.array([heads + 1])
    blocks = np.arange(3 * heads).reshape(heads, 3)
    return blocks[:, 0], blocks[:, 1], blocks[:, 2]


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype) for a Falcon checkpoint."""
    common.check_dtype(dtype)
    H, inter, hd = config.hidden_size, config.intermediate_size, config.head_dim
    heads, kv = config.num_attention_heads, config.num_key_value_heads

    def load(name: str, shape: tuple[int, ...], required: bool = True) -> tuple[np.ndarray, str] | None:
        return common.load(checkpoint, (f"transformer.{name}", name), shape, required)

    def matrix(loaded: tuple[np.ndarray, str]) -> tuple[np.ndarray, str]:
        return common.matrix(loaded, dtype)

    vector = common.vector

    def heads_of(array: np.ndarray, order: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.reshape(-1, hd, *array.shape[1:])[order].reshape(-1, *array.shape[1:]))

    weights = {
        "embed_tokens": matrix(load("word_embeddings.weight", (config.vocab_size, H))),
        "norm": vector(load("ln_f.weight", (H,))),
        "norm.bias": vector(load("ln_f.bias", (H,))),
    }
    lm_head = None if config.tie_word_embeddings else load("lm_head.weight", (config.vocab_size, H), required=False)
    if lm_head is None and not config.tie_word_embeddings:
        raise ModelFormatError(f"{checkpoint.model_dir}: no lm_head.weight and tie_word_embeddings is false")
    weights["lm_head"] = weights["embed_tokens"] if lm_head is None else matrix(lm_head)
    q_order, k_order, v_order = qkv_row_order(config)
    two_norms = config.parallel_residual and config.raw.get("new_decoder_architecture") and (
        config.raw.get("num_ln_in_parallel_attn") in (None, 2))
    for i in range(config.num_hidden_layers):
        src, dst = f"h.{i}", f"layers.{i}"
        if two_norms:
            attn_norm, mlp_norm = f"{src}.ln_attn", f"{src}.ln_mlp"
        elif config.parallel_residual:
            attn_norm = mlp_norm = f"{src}.input_layernorm"
        else:
            attn_norm, mlp_norm = f"{src}.input_layernorm", f"{src}.post_attention_layernorm"
        weights[f"{dst}.input_layernorm"] = vector(load(f"{attn_norm}.weight", (H,)))
        weights[f"{dst}.input_layernorm.bias"] = vector(load(f"{attn_norm}.bias", (H,)))
        weights[f"{dst}.post_attention_layernorm"] = vector(load(f"{mlp_norm}.weight", (H,)))
        weights[f"{dst}.post_attention_layernorm.bias"] = vector(load(f"{mlp_norm}.bias", (H,)))
        qkv_rows = (heads + 2 * kv) * hd
        qkv, qkv_dtype = matrix(load(f"{src}.self_attention.query_key_value.weight", (qkv_rows, H)))
        for part, order in (("q_proj", q_order), ("k_proj", k_order), ("v_proj", v_order)):
            weights[f"{dst}.self_attn.{part}"] = (heads_of(qkv, order), qkv_dtype)
        if config.qkv_bias:
            qkv_bias, _ = vector(load(f"{src}.self_attention.query_key_value.bias", (qkv_rows,)))
            for part, order in (("q_proj", q_order), ("k_proj", k_order), ("v_proj", v_order)):
                weights[f"{dst}.self_attn.{part}.bias"] = (heads_of(qkv_bias, order), "float32")
        weights[f"{dst}.self_attn.o_proj"] = matrix(load(f"{src}.self_attention.dense.weight", (H, H)))
        weights[f"{dst}.mlp.up_proj"] = matrix(load(f"{src}.mlp.dense_h_to_4h.weight", (inter, H)))
        weights[f"{dst}.mlp.down_proj"] = matrix(load(f"{src}.mlp.dense_4h_to_h.weight", (H, inter)))
        if config.mlp_bias:
            weights[f"{dst}.self_attn.o_proj.bias"] = vector(load(f"{src}.self_attention.dense.bias", (H,)))
            weights[f"{dst}.mlp.up_proj.bias"] = vector(load(f"{src}.mlp.dense_h_to_4h.bias", (inter,)))
            weights[f"{dst}.mlp.down_proj.bias"] = vector(load(f"{src}.mlp.dense_4h_to_h.bias", (H,)))
    return weights
