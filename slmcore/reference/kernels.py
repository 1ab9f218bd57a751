"""Numpy reference kernels, computed in float64 from the exact stored values.

Each function mirrors one kernel family of kernels/include/slm/kernels/ and states the same
formula; tests compare every ISA variant against these.
"""

from __future__ import annotations

import numpy as np


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 stored as uint16 to float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits (uint16), round to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    out[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def widen(w: np.ndarray, dtype: str) -> np.ndarray:
    """Stored weights (float32, float16, or uint16 holding bfloat16) as float64."""
    if dtype == "bfloat16":
        return bf16_to_f32(w).astype(np.float64)
    if dtype in ("float32", "float16"):
        return np.asarray(w).astype(np.float64)
    raise ValueError(f"unknown dtype {dtype!r}")


def matmul(x: np.ndarray, w: np.ndarray, dtype: str = "float32", bias: np.ndarray | None = None) -> np.ndarray:
    """y[t, o] = sum_i x[t, i] * W[o, i] (+ bias[o])."""
    y = np.asarray(x, dtype=np.float64) @ widen(w, dtype).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * w over the last axis."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * np.asarray(w, dtype=np.float64)


def layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * w + b over the last axis (biased variance)."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(d * d, axis=-1, keepdims=True)
    return d / np.sqrt(var + eps) * np.asarray(w, dtype=np.float64) + np.asarray(b, dtype=np.float64)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, rotary_dim: int, style: str = "neox") -> np.ndarray:
    """Rotate the first rotary_dim dims of each head. x: [..., n_heads, head_dim]; cos/sin: [rotary_dim/2]
    (or broadcastable to [..., 1, rotary_dim/2])."""
    x = np.array(x, dtype=np.float64)
    half = rotary_dim // 2
    cos = np.asarray(cos, dtype=np.float64)
    sin = np.asarray(sin, dtype=np.float64)
    if style == "neox":
        a, b = x[..., :half].copy(), x[..., half:rotary_dim].copy()
        x[..., :half] = a * cos - b * sin
        x[..., half:rotary_dim] = b * cos + a * sin
    elif style == "interleaved":
        a, b = x[..., 0:rotary_dim:2].copy(), x[..., 1:rotary_dim:2].copy()
        x[..., 0:rotary_dim:2] = a * cos - b * sin
        x[..., 1:rotary_dim:2] = b * cos + a * sin
    else:
        raise ValueError(f"unknown rope style {style!r}")
    return x


def softmax(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, softcap: float = 0.0, alibi_slope: float = 0.0
) -> np.ndarray:
    """One query head over rows of K, V: softmax(scale * K q) @ V; with softcap > 0 the scores
    s become softcap * tanh(s / softcap) first (Gemma 2); then ALiBi adds alibi_slope * (j - i),
    the query at i being the last of the n rows (i = n - 1)."""
    s = scale * (np.asarray(k, dtype=np.float64) @ np.asarray(q, dtype=np.float64))
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    if alibi_slope != 0:
        s = s + float(alibi_slope) * (np.arange(len(s)) - (len(s) - 1))
    p = softmax(s)
    return p @ np.asarray(v, dtype=np.float64)


def silu(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-x))


def swiglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    return silu(gate) * np.asarray(up, dtype=np.float64)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU with the tanh approximation (transformers' gelu_pytorch_tanh):
    0.5 x (1 + tanh(z)) with z = sqrt(2/pi) (x + 0.044715 x^3), evaluated as x * sigmoid(2z), the same
    function without the cancellation of 1 + tanh(z) for z << 0."""
    x = np.asarray(x, dtype=np.float64)
    z2 = 2.0 * np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
    e = np.exp(-np.abs(z2))
    return x * np.where(z2 >= 0, 1.0, e) / (1.0 + e)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x * Phi(x), through math.erfc (accurate in both tails)."""
    import math

    x = np.asarray(x, dtype=np.float64)
    return x * 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def geglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    return gelu_tanh(gate) * np.asarray(up, dtype=np.float64)
