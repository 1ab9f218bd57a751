"""Rotary position embedding tables: cos/sin per position and frequency, as transformers computes them.

Every step runs in float32 in the same order as transformers 5.24 (modeling_rope_utils.py and
LlamaRotaryEmbedding.forward). The one difference: theta ** exponent is rounded once from float64,
where torch's vectorised powf is sometimes 1 ulp off; inv_freq then agrees within 1 ulp and cos/sin
within a few float32 ulps (tests/test_config.py compares them with transformers' module).
"""

from __future__ import annotations

import math

import numpy as np

from slmcore.config import RopeConfig
from slmcore.errors import ConfigError, InvalidArgumentError

# The llama family rotates pairs (i, i + rotary_dim/2) (HF's rotate_half), not adjacent pairs.
rotary_style = "neox"


def inverse_frequencies(rope: RopeConfig, rotary_dim: int) -> np.ndarray:
    """inv_freq[k] for k < rotary_dim/2, float32, scaled per rope.rope_type."""
    if rotary_dim <= 0 or rotary_dim % 2 != 0:
        raise InvalidArgumentError(f"rotary dimension must be a positive even number, got {rotary_dim}")
    f32 = np.float32
    exponents = np.arange(0, rotary_dim, 2, dtype=np.int64).astype(f32) / f32(rotary_dim)
    # theta ** exponent rounded once to float32 (numpy's float32 power is off by up to 2 ulp;
    # torch's vectorised powf by up to 1 ulp in a few entries).
    inv_freq = f32(1.0) / (np.float64(f32(rope.theta)) ** exponents.astype(np.float64)).astype(f32)
    if rope.rope_type == "default":
        return inv_freq
    if rope.rope_type == "linear":
        return inv_freq / f32(rope.factor)
    if rope.rope_type == "llama3":
        return _llama3_scaling(rope, inv_freq)
    if rope.rope_type == "longrope":
        return inv_freq  # divided per frequency in rope_tables, which knows the context length
    raise ConfigError(f"rope_type {rope.rope_type!r} is not supported; supported: default, linear, llama3, longrope")


def _llama3_scaling(rope: RopeConfig, inv_freq: np.ndarray) -> np.ndarray:
    """Llama 3.1 frequency-dependent scaling (transformers' _compute_llama3_parameters)."""
    f32 = np.float32
    factor = f32(rope.factor)
    low_freq_factor = f32(rope.low_freq_factor)
    old_context_len = rope.original_max_position_embeddings
    if old_context_len is None:
        raise ConfigError("llama3 rope scaling needs original_max_position_embeddings")
    # These two are Python floats in transformers, only compared against float32 wavelengths.
    low_freq_wavelen = old_context_len / rope.low_freq_factor
    high_freq_wavelen = old_context_len / rope.high_freq_factor

    # torch evaluates `scalar / tensor` as reciprocal(tensor) * scalar: keep that rounding.
    wavelen = (f32(1) / inv_freq) * f32(2 * math.pi)
    scaled = np.where(wavelen > f32(low_freq_wavelen), inv_freq / factor, inv_freq)
    smooth_factor = ((f32(1) / wavelen) * f32(old_context_len) - low_freq_factor) / f32(
        rope.high_freq_factor - rope.low_freq_factor
    )
    smoothed = (f32(1) - smooth_factor) * scaled / factor + smooth_factor * scaled
    is_medium_freq = ~(wavelen < f32(high_freq_wavelen)) & ~(wavelen > f32(low_freq_wavelen))
    return np.where(is_medium_freq, smoothed, scaled).astype(f32)


def rope_tables(rope: RopeConfig, rotary_dim: int, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 cos and sin of shape [n_positions, rotary_dim // 2] for positions 0..n_positions-1."""
    if n_positions < 0:
        raise InvalidArgumentError(f"n_positions must be >= 0, got {n_positions}")
    inv_freq = inverse_frequencies(rope, rotary_dim)
    scale = np.float32(1.0)
    if rope.rope_type == "longrope":
        # transformers switches to long_factor once the sequence outgrows the original context; an
        # engine's table covers its whole max_seq_len, so the choice is made once for that length.
        long = n_positions > (rope.original_max_position_embeddings or 0)
        ext = np.asarray(rope.long_factor if long else rope.short_factor, dtype=np.float32)
        exponents = np.arange(0, rotary_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(rotary_dim)
        base = (np.float64(np.float32(rope.theta)) ** exponents.astype(np.float64)).astype(np.float32)
        inv_freq = np.float32(1.0) / (ext * base)
        scale = np.float32(rope.attention_factor)
    angles = np.arange(n_positions, dtype=np.int64).astype(np.float32)[:, None] * inv_freq[None, :]
    if scale == 1.0:
        return np.cos(angles), np.sin(angles)
    return np.cos(angles) * scale, np.sin(angles) * scale
