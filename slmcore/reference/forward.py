"""Reference forward pass of the llama family (llama, mistral, qwen2) in float64: the test oracle.

Reads top to bottom like the paper; every step is a kernel of slmcore.reference.kernels applied to
the exact stored weight values. Never used at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import InvalidArgumentError, InvalidTokenError
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
        w, dtype = weights[name]
        return matmul(x, w, dtype, vector(f"{name}.bias") if has_bias else None)

    # Embedding: one row per token, widened from the stored dtype.
    embed, embed_dtype = weights["embed_tokens"]
    x = widen(embed[token_ids], embed_dtype)  # [T, hidden]

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
                slope = config.alibi_slopes[head] if config.alibi_slopes else 0.0  # ALiBi: bias slope * (j - t)
                attn[t, head] = attention(q[t, head], k[keys, kv_head], v[keys, kv_head], scale, alibi_slope=slope)
        x = x + linear(attn.reshape(n_tokens, n_heads * head_dim), f"{p}.self_attn.o_proj", config.o_proj_bias)

        # MLP block: x = x + down_proj(silu(gate_proj(h)) * up_proj(h))
        h = rmsnorm(x, vector(f"{p}.post_attention_layernorm"), eps)
        gate = linear(h, f"{p}.mlp.gate_proj", config.mlp_bias)
        up = linear(h, f"{p}.mlp.up_proj", config.mlp_bias)
        x = x + linear(swiglu(gate, up), f"{p}.mlp.down_proj", config.mlp_bias)

    x = rmsnorm(x, vector("norm"), eps)
    lm_head, lm_head_dtype = weights["lm_head"]
    return matmul(x, lm_head, lm_head_dtype)
