"""Reference forward passes in float64: the llama family (llama, mistral, qwen2) and RWKV-4; the test oracle.

Reads top to bottom like the paper; every step is a kernel of slmcore.reference.kernels applied to
the exact stored weight values. Never used at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slmcore.config import ModelConfig
from slmcore.errors import InvalidArgumentError, InvalidTokenError
from slmcore.reference import quant as reference_quant
from slmcore.reference.kernels import attention, layernorm, matmul, rmsnorm, rope, swiglu, widen
from slmcore.rope import rope_tables, rotary_style


def causal_window_mask(n_tokens: int, window: int) -> np.ndarray:
    """visible[i, j]: query i sees key j iff j <= i, and i - window < j when window > 0."""
    i = np.arange(n_tokens)[:, None]
    j = np.arange(n_tokens)[None, :]
    visible = j <= i
    if window > 0:
        visible &= j > i - window
    return visible


def forward(
    config: ModelConfig, weights: dict[str, tuple[np.ndarray, str]], token_ids: Sequence[int], kv_dtype: str = "float64"
) -> np.ndarray:
    """float64 logits [T, vocab] for token_ids at positions 0..T-1. kv_dtype "int8" rounds every
    K and V row (after rope) to the int8 KV cache's values (reference quant.quantize_kv of the
    row in float32); "float64" keeps them exact."""
    if kv_dtype not in ("float64", "int8"):
        raise InvalidArgumentError(f"kv_dtype must be float64 or int8, got {kv_dtype!r}")
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
        if kv_dtype == "int8":  # what the cache holds: per (position, KV head) row, int8 times a scale
            k = reference_quant.dequantize_kv(*reference_quant.quantize_kv(k))
            v = reference_quant.dequantize_kv(*reference_quant.quantize_kv(v))

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


def rwkv_forward(config: ModelConfig, weights: dict, token_ids: Sequence[int]) -> np.ndarray:
    """float64 logits [T, vocab] of an RWKV-4 model (transformers' RwkvForCausalLM in eval mode).

    Each block mixes every token with the one before it ("token shift"; zeros before the first),
    then runs the WKV recurrence (Peng et al. 2023, eq. 14-16) per channel:
        wkv_t = (a + exp(u + k_t) v_t) / (b + exp(u + k_t)),  a <- exp(-exp(w)) a + exp(k_t) v_t,
                                                              b <- exp(-exp(w)) b + exp(k_t)
    with u = time_first and w = time_decay. Computed directly in float64 (no running maximum:
    the tiny models' exponents stay far from overflow). With rescale_every = R > 0, block i's
    output matrices are divided by 2^(i // R) and the residual stream is halved after every R-th
    block, as transformers does at inference (RwkvModel._rescale_layers). Matrices may be
    quantized (Int4Tensor / Int8Rows, see project): the rescaling then scales their outputs, which
    equals the engine's scaling of their inputs because a power of two commutes with quantization.
    """
    token_ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if token_ids.size == 0:
        raise InvalidArgumentError("token_ids is empty")
    if token_ids.min() < 0 or token_ids.max() >= config.vocab_size:
        raise InvalidTokenError(f"token ids must be in [0, {config.vocab_size}), got {token_ids.tolist()}")
    eps, rescale = config.rms_norm_eps, config.rescale_every

    def vector(name: str) -> np.ndarray:
        return widen(*weights[name])

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return project(x, weights[name], None)

    def norm(x: np.ndarray, name: str, eps: float = eps) -> np.ndarray:
        return layernorm(x, vector(name), vector(f"{name}.bias"), eps)

    def shift_mix(h: np.ndarray, mix: np.ndarray) -> np.ndarray:
        previous = np.vstack([np.zeros((1, h.shape[1])), h[:-1]])
        return h * mix + previous * (1 - mix)

    x = norm(embedding_rows(weights["embed_tokens"], token_ids), "pre_ln")
    for layer in range(config.num_hidden_layers):
        p = f"layers.{layer}"
        scale = 2.0 ** -(layer // rescale) if rescale > 0 else 1.0

        # Time mix: x = x + output(sigmoid(r) * wkv(k, v))
        h = norm(x, f"{p}.ln1")
        k = linear(shift_mix(h, vector(f"{p}.attention.time_mix_key")), f"{p}.attention.key")
        v = linear(shift_mix(h, vector(f"{p}.attention.time_mix_value")), f"{p}.attention.value")
        r = linear(shift_mix(h, vector(f"{p}.attention.time_mix_receptance")), f"{p}.attention.receptance")
        decay = np.exp(-np.exp(vector(f"{p}.attention.time_decay")))
        bonus = np.exp(vector(f"{p}.attention.time_first"))
        num = np.zeros(k.shape[1])
        den = np.zeros(k.shape[1])
        wkv = np.empty_like(k)
        for t in range(len(token_ids)):
            ek = np.exp(k[t])
            wkv[t] = (num + bonus * ek * v[t]) / (den + bonus * ek)
            num = decay * num + ek * v[t]
            den = decay * den + ek
        x = x + scale * linear(sigmoid(r) * wkv, f"{p}.attention.output")

        # Channel mix: x = x + sigmoid(receptance) * value(relu(key)^2)
        h = norm(x, f"{p}.ln2")
        key = linear(shift_mix(h, vector(f"{p}.feed_forward.time_mix_key")), f"{p}.feed_forward.key")
        gate = linear(shift_mix(h, vector(f"{p}.feed_forward.time_mix_receptance")), f"{p}.feed_forward.receptance")
        x = x + scale * sigmoid(gate) * linear(np.maximum(key, 0.0) ** 2, f"{p}.feed_forward.value")
        if rescale > 0 and (layer + 1) % rescale == 0:
            x = x / 2

    x = norm(x, "norm", eps=1e-5)  # transformers' ln_out ignores layer_norm_epsilon
    return linear(x, "lm_head")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
