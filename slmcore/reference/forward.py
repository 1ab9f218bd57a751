"""Reference forward pass of the llama family (llama, mistral, qwen2) in float64: the test oracle.

Reads top to bottom like the paper; every step is a kernel of slmcore.reference.kernels applied to
the exact stored weight values. Never used at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import InvalidArgumentError, InvalidTokenError
from slmcore.reference import quant as reference_quant
from slmcore.reference.kernels import attention, matmul, rmsnorm, rope, swiglu, widen
from slmcore.rope import rope_tables, rotary_style


def causal_window_mask(n_tokens: int, window: int) -> np.ndarray:
    """visible[i, j]: query i sees key j iff j <= i, and i - window < j when window > 0."""
    i = np.arange(n_tokens)[:, None]
    j = np.arange(n_tokens)[None, :]
    visible = j <= i
    if window > 0:
        visible &= j > i - window
    return visible


def forward(config: ModelConfig, weights: dict[str, tuple[np.ndarray, str]], token_ids: Sequence[int]) -> np.ndarray:
    """float64 logits [T, vocab] for token_ids at positions 0..T-1."""
    token_ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if token_ids.size == 0:
        raise InvalidArgumentError("token_ids is empty")
    if token_ids.min() < 0 or token_ids.max() >= config.vocab_size:
        raise InvalidTokenError(f"token ids must be in [0, {config.vocab_size}), got {token_ids.tolist()}")

    n_tokens = token_ids.size
    n_heads, n_kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    group = n_heads // n_kv_heads  # query heads per KV head (GQA)
    scale = head_dim**-0.5
    eps = config.rms_norm_eps

    def vector(name: str) -> np.ndarray:
        return widen(*weights[name])

    def linear(x: np.ndarray, name: str, has_bias: bool) -> np.ndarray:
        return project(x, weights[name], vector(f"{name}.bias") if has_bias else None)

    x = embedding_rows(weights["embed_tokens"], token_ids)  # [T, hidden]

    # Rotary tables for positions 0..T-1, broadcast over heads: [T, 1, head_dim/2].
    cos, sin = rope_tables(config.rope, head_dim, n_tokens)
    cos, sin = cos[:, None, :], sin[:, None, :]

    for layer in range(config.num_hidden_layers):
        p = f"layers.{layer}"

        # Attention block: x = x + o_proj(attention(rope(q), rope(k), v))
        h = rmsnorm(x, vector(f"{p}.input_layernorm"), eps)
        q = linear(h, f"{p}.self_attn.q_proj", config.qkv_bias).reshape(n_tokens, n_heads, head_dim)
        k = linear(h, f"{p}.self_attn.k_proj", config.qkv_bias).reshape(n_tokens, n_kv_heads, head_dim)
        v = linear(h, f"{p}.self_attn.v_proj", config.qkv_bias).reshape(n_tokens, n_kv_heads, head_dim)
        q = rope(q, cos, sin, head_dim, rotary_style)
        k = rope(k, cos, sin, head_dim, rotary_style)

        visible = causal_window_mask(n_tokens, config.layer_windows[layer])
        attn = np.empty((n_tokens, n_heads, head_dim))
        for t in range(n_tokens):
            keys = visible[t]
            for head in range(n_heads):
                kv_head = head // group
                attn[t, head] = attention(q[t, head], k[keys, kv_head], v[keys, kv_head], scale)
        x = x + linear(attn.reshape(n_tokens, n_heads * head_dim), f"{p}.self_attn.o_proj", config.o_proj_bias)

        # MLP block: x = x + down_proj(silu(gate_proj(h)) * up_proj(h))
        h = rmsnorm(x, vector(f"{p}.post_attention_layernorm"), eps)
        gate = linear(h, f"{p}.mlp.gate_proj", config.mlp_bias)
        up = linear(h, f"{p}.mlp.up_proj", config.mlp_bias)
        x = x + linear(swiglu(gate, up), f"{p}.mlp.down_proj", config.mlp_bias)

    x = rmsnorm(x, vector("norm"), eps)
    return project(x, weights["lm_head"], None)


# Quantized weights (slmcore.quant's Int4Tensor and Int8Rows, read only as arrays) run through the
# integer kernels of slmcore.reference.quant, activations quantized to int8 exactly as the engine does.


def project(x: np.ndarray, weight, bias: np.ndarray | None) -> np.ndarray:
    """x [T, in] @ W^T (+ bias) for W = (array, dtype), int4 (qweight/scales/mins/group_size) or int8 rows."""
    if isinstance(weight, tuple) and len(weight) == 2 and isinstance(weight[1], str):
        return matmul(x, weight[0], weight[1], bias)
    x32 = np.asarray(x, dtype=np.float32)  # the engine quantizes float32 activations
    if hasattr(weight, "group_size"):
        return reference_quant.int4_matmul(x32, weight.qweight, weight.scales, weight.mins, weight.group_size, bias)
    q, scales = weight
    return reference_quant.int8_matmul(x32, q, scales, bias)


def embedding_rows(weight, token_ids: np.ndarray) -> np.ndarray:
    """The embedding's rows for token_ids, float64: widened from its dtype, or scale * int8 row."""
    if isinstance(weight, tuple) and len(weight) == 2 and isinstance(weight[1], str):
        return widen(weight[0][token_ids], weight[1])
    q, scales = weight
    rows = np.asarray(scales, np.float16)[token_ids].astype(np.float32)[:, None] * q[token_ids].astype(np.float32)
    return rows.astype(np.float64)  # the engine multiplies in float32
