"""Numpy reference of the int4 / int8 weight formats and the quantized matmul (DESIGN.md section 4).

The test oracle for kernels/include/slm/kernels/quant.h: plain and readable, never used at run time.

Canonical int4 format of a weight matrix W[out, in] with groups of G (32, 64 or 128) along `in`,
`in` zero-padded up to in_padded = n_groups * G:
- qweight uint8 [out, in_padded / 2]: element 2j in the low nibble of byte j, 2j+1 in the high one;
- scales float16 [out, n_groups]; mins float16 [out, n_groups] when asymmetric;
- symmetric: w = s * (nibble - 8); asymmetric: w = s * nibble + m.

Activations for the CPU kernels are quantized per token in blocks of 32 along `in`:
d = amax / 127 (float32), a = clamp(round_half_even(x / d), -127, 127) as int8, and d = 0, a = 0
for a block whose d is 0 (an all-zero block). The matmul then only needs exact integer sums per
(token, row, block) and a float scaling of them:
    sym:  y = sum_b d_b * s_g(b) * (sum_i nibble_i * a_i - 8 * sum_i a_i)
    asym: y = sum_b d_b * (s_g(b) * sum_i nibble_i * a_i + m_g(b) * sum_i a_i)
computed here in float64, so a kernel differs only by its own float32 rounding.

int8-row format (embeddings, lm_head): q int8 [out, in] and a per-row float16 scale, w = scale * q;
    y = scale_o * sum_b d_b * sum_i q_i * a_i.

int8 KV cache (kv_dtype="int8"): each cached K or V row (head_dim values of one layer, KV head and
position) by the activation rule over the whole row, with a float32 scale: quantize_kv.
"""

from __future__ import annotations

import numpy as np

BLOCK = 32  # activation block length along `in`
GROUP_SIZES = (32, 64, 128)


def round_up(n: int, m: int) -> int:
    return -(-int(n) // m) * m


def n_groups(in_features: int, group_size: int) -> int:
    return -(-int(in_features) // group_size)


# ----------------------------------------------------------------------------------------------
# int4 weights


def unpack_nibbles(qweight: np.ndarray) -> np.ndarray:
    """uint8 [out, in_padded/2] -> uint8 [out, in_padded] of nibbles 0..15 in element order."""
    q = np.asarray(qweight, dtype=np.uint8)
    out = np.empty((q.shape[0], q.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = q & 0x0F
    out[:, 1::2] = q >> 4
    return out


def pack_nibbles(nibbles: np.ndarray) -> np.ndarray:
    """uint8 [out, in_padded] of values 0..15 -> uint8 [out, in_padded/2] (element 2j low)."""
    n = np.asarray(nibbles, dtype=np.uint8)
    assert n.shape[1] % 2 == 0 and n.max(initial=0) <= 15
    return (n[:, 0::2] | (n[:, 1::2] << 4)).astype(np.uint8)


def dequantize_int4(qweight, scales, mins, group_size: int, in_features: int | None = None) -> np.ndarray:
    """Canonical int4 -> float64 W[out, in_features] (in_padded columns when in_features is None)."""
    nib = unpack_nibbles(qweight).astype(np.float64)
    out, in_padded = nib.shape
    ng = in_padded // group_size
    s = np.repeat(np.asarray(scales, dtype=np.float16).astype(np.float64).reshape(out, ng), group_size, axis=1)
    if mins is None:
        w = s * (nib - 8.0)
    else:
        m = np.repeat(np.asarray(mins, dtype=np.float16).astype(np.float64).reshape(out, ng), group_size, axis=1)
        w = s * nib + m
    return w if in_features is None else w[:, :in_features]


def padded_groups(w: np.ndarray, group_size: int) -> np.ndarray:
    """W[out, in] as float32 groups [out, n_groups, G], the last group zero-padded."""
    w = np.asarray(w, dtype=np.float32)
    out, in_features = w.shape
    wp = np.zeros((out, n_groups(in_features, group_size) * group_size), np.float32)
    wp[:, :in_features] = w
    return wp.reshape(out, -1, group_size)


def quantize_int4(w: np.ndarray, group_size: int, sym: bool = True):
    """A simple round-to-nearest quantizer of W[out, in] into the canonical format (for tests).

    Returns (qweight, scales, mins) with mins None when symmetric.
    """
    g = padded_groups(w, group_size)
    out = g.shape[0]
    if sym:
        s = (np.abs(g).max(axis=2) / 7).astype(np.float16)
        s32 = s.astype(np.float32)[:, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s32 > 0, np.rint(g / np.where(s32 > 0, s32, 1)), 0)
        nib = (np.clip(q, -8, 7) + 8).astype(np.uint8)
        mins = None
    else:
        lo, hi = g.min(axis=2), g.max(axis=2)
        s = ((hi - lo) / 15).astype(np.float16)
        mins = lo.astype(np.float16)
        s32 = s.astype(np.float32)[:, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s32 > 0, np.rint((g - mins.astype(np.float32)[:, :, None]) / np.where(s32 > 0, s32, 1)), 0)
        nib = np.clip(q, 0, 15).astype(np.uint8)
    return pack_nibbles(nib.reshape(out, -1)), s, mins


def tree_sum(values: np.ndarray) -> np.ndarray:
    """float64 sums over the last axis (a multiple of 8) in the fixed order the C++ quantizer uses:
    8 partial sums p[j] = v[j] + v[j + 8] + ... left to right, then ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7))."""
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(*v.shape[:-1], v.shape[-1] // 8, 8)
    p = v[..., 0, :].copy()
    for k in range(1, v.shape[-2]):
        p += v[..., k, :]
    t = p[..., :4] + p[..., 4:]
    u = t[..., :2] + t[..., 2:]
    return u[..., 0] + u[..., 1]


def _sym_trial(g: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (float32 in [-8, 7]) and float64 squared errors of groups g [..., G] at float16 scales s [...]."""
    s32 = s.astype(np.float32)[..., None]
    zero = s32 == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.clip(np.rint(g / np.where(zero, np.float32(1), s32)), -8, 7).astype(np.float32)
    q = np.where(zero, np.float32(0), q)
    e = (g - q * s32).astype(np.float64)
    return q, tree_sum(e * e)


def quantize_int4_sym(w: np.ndarray, group_size: int, search: bool = True, factors=(), refit_rounds: int = 2):
    """Symmetric int4 with the scale search, the definition kernels/cpu/int4_quantize.cpp computes.

    Per group: s = fp16(absmax / 7); with search, candidates fp16(absmax / 7 * f) for each factor f,
    fp16(extreme / -8) (extreme: the first element of largest magnitude), fp16(extreme / -8 * f),
    then refit_rounds least-squares refits fp16(float32(<x, q>) / float32(<q, q>)) of the best so
    far (kept when finite and <q, q> > 0). A candidate replaces the best where its error is strictly
    smaller. Float32 arithmetic except the sums (tree_sum of float64 squares and products).
    Returns (qweight, scales); scales whose absmax / 7 overflows float16 come back as inf.
    """
    g = padded_groups(w, group_size)
    out = g.shape[0]
    base = np.abs(g).max(axis=-1) / np.float32(7)
    with np.errstate(over="ignore"):
        s = base.astype(np.float16)
    q, err = _sym_trial(g, s)

    def keep(candidate_s):
        nonlocal q, s, err
        cq, cerr = _sym_trial(g, candidate_s)
        better = cerr < err
        q, s, err = np.where(better[..., None], cq, q), np.where(better, candidate_s, s), np.where(better, cerr, err)

    if search:
        extreme = np.take_along_axis(g, np.abs(g).argmax(axis=-1)[..., None], axis=-1)[..., 0]
        signed = extreme / np.float32(-8)
        for f in factors:
            keep((base * np.float32(f)).astype(np.float16))
        keep(signed.astype(np.float16))
        for f in factors:
            keep((signed * np.float32(f)).astype(np.float16))
        for _ in range(refit_rounds):
            xq = tree_sum(g.astype(np.float64) * q)
            qq = tree_sum(q.astype(np.float64) * q)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                r = (xq.astype(np.float32) / np.where(qq > 0, qq, 1).astype(np.float32)).astype(np.float16)
            keep(np.where((qq > 0) & np.isfinite(r), r, s))
    nib = (q + 8).astype(np.uint8).reshape(out, -1)
    return pack_nibbles(nib), s


# ----------------------------------------------------------------------------------------------
# activations


def quantize_activations(x: np.ndarray, in_padded: int | None = None):
    """x float32 [T, in] -> (a int8 [T, in_padded], d float32 [T, in_padded/32], sums int32 [T, in_padded/32]).

    in_padded defaults to `in` rounded up to a multiple of 32; x is zero-padded to it. Blocks of 32:
    d = amax / 127 in float32, a = clamp(round_half_even(x / d), -127, 127) (the division in float32),
    and a = 0 wherever d == 0. sums[t, b] = sum of the 32 values a[t, 32b : 32b + 32].
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError("x must be [n_tokens, in_features]")
    n_tokens, in_features = x.shape
    in_padded = round_up(in_features, BLOCK) if in_padded is None else int(in_padded)
    if in_padded % BLOCK or in_padded < in_features:
        raise ValueError("in_padded must be a multiple of 32 and >= in_features")
    xp = np.zeros((n_tokens, in_padded), np.float32)
    xp[:, :in_features] = x
    a, d = absmax_int8(xp.reshape(n_tokens, in_padded // BLOCK, BLOCK))
    sums = a.astype(np.int32).sum(axis=2, dtype=np.int32)
    return a.reshape(n_tokens, in_padded), d, sums


def absmax_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 rule over the last axis of float32 x: (a int8 [...], d float32 [...[:-1]]) with
    d = amax / 127 and a = clamp(round_half_even(x / d), -127, 127), both divisions in float32,
    and a = 0 where d == 0. Activation blocks and int8 KV cache rows both use it."""
    amax = np.abs(x).max(axis=-1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = x / np.where(d > 0, d, np.float32(1))[..., None]  # float32 division
    a = np.clip(np.rint(v), -127, 127)  # np.rint rounds half to even
    a = np.where((d > 0)[..., None], a, 0).astype(np.int8)
    return a, d


def quantize_kv(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 KV cache (kernels/include/slm/kernels/attention.h): each row of x float32
    [..., head_dim] (one layer, KV head and position) -> (q int8 [..., head_dim], scale float32 [...])
    by absmax_int8 over the whole row. A row holding a non-finite value gets scale NaN and q = 0."""
    x = np.asarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=-1)
    q, scale = absmax_int8(np.where(finite[..., None], x, np.float32(0)))
    return np.where(finite[..., None], q, 0).astype(np.int8), np.where(finite, scale, np.float32(np.nan))


def dequantize_kv(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float64 K or V = scale * q per row (what the attention kernel multiplies)."""
    return np.asarray(q, dtype=np.float64) * np.asarray(scale, dtype=np.float64)[..., None]


def dequantize_activations(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """float64 x' = d_b * a (what the integer matmul actually multiplies)."""
    a = np.asarray(a, dtype=np.float64)
    n_tokens, in_padded = a.shape
    return (a.reshape(n_tokens, -1, BLOCK) * np.asarray(d, dtype=np.float64)[:, :, None]).reshape(n_tokens, in_padded)


# ----------------------------------------------------------------------------------------------
# matmul


def int4_block_sums(a: np.ndarray, qweight: np.ndarray) -> np.ndarray:
    """Exact int64 [T, out, n_blocks] of sum_i nibble[o, 32b + i] * a[t, 32b + i] over the weight's blocks."""
    nib = unpack_nibbles(qweight).astype(np.int64)
    out, in_padded = nib.shape
    a = np.asarray(a, dtype=np.int64)[:, :in_padded]
    assert a.shape[1] == in_padded, "activations must cover the weight's padded width"
    nb = in_padded // BLOCK
    return np.einsum("tbi,obi->tob", a.reshape(-1, nb, BLOCK), nib.reshape(out, nb, BLOCK))


def int4_terms(x, qweight, scales, mins, group_size: int):
    """Per (token, row, block) float64 terms whose sum over blocks is the matmul (before bias).

    Returns (terms [T, out, n_blocks], abs_terms) where abs_terms bounds each term's magnitude
    (sum of the absolute values of its parts), for error bounds.
    """
    qweight = np.asarray(qweight, dtype=np.uint8)
    out, half = qweight.shape
    in_padded = half * 2
    assert in_padded % group_size == 0
    a, d, sums = quantize_activations(x, in_padded)
    isum = int4_block_sums(a, qweight).astype(np.float64)  # [T, out, nb]
    per = group_size // BLOCK
    s = np.repeat(np.asarray(scales, np.float16).astype(np.float64).reshape(out, -1), per, axis=1)[None]
    dd = d.astype(np.float64)[:, None, :]
    asum = sums.astype(np.float64)[:, None, :]
    if mins is None:
        terms = dd * s * (isum - 8.0 * asum)
        abs_terms = np.abs(terms)
    else:
        m = np.repeat(np.asarray(mins, np.float16).astype(np.float64).reshape(out, -1), per, axis=1)[None]
        p, q = dd * s * isum, dd * m * asum
        terms, abs_terms = p + q, np.abs(p) + np.abs(q)
    return terms, abs_terms


def int4_matmul(x, qweight, scales, mins, group_size: int, bias=None) -> np.ndarray:
    """float64 y[t, o] = sum over blocks of the scaled exact integer sums (+ bias[o]); see the module doc."""
    terms, _ = int4_terms(x, qweight, scales, mins, group_size)
    y = terms.sum(axis=2)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def int8_block_sums(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact int64 [T, out, n_blocks] of sum_i q[o, 32b + i] * a[t, 32b + i] (q zero-padded)."""
    q = np.asarray(q, dtype=np.int64)
    out, in_features = q.shape
    a = np.asarray(a, dtype=np.int64)
    nb = a.shape[1] // BLOCK
    qp = np.zeros((out, nb * BLOCK), np.int64)
    qp[:, :in_features] = q
    return np.einsum("tbi,obi->tob", a.reshape(-1, nb, BLOCK), qp.reshape(out, nb, BLOCK))


def int8_terms(x, q, scale):
    """Per (token, row, block) float64 terms scale_o * d_b * sum_i q * a of the int8-row matmul.

    Returns (terms [T, out, n_blocks], abs_terms) with abs_terms = |scale_o * d_b| * sum_i |q_i * a_i|:
    a kernel may split a block's integer sum into parts (SIMD lanes) before scaling them, so its
    rounding errors scale with the parts, not with the block's (possibly cancelling) total.
    """
    q = np.asarray(q, dtype=np.int8)
    a, d, _ = quantize_activations(x)
    isum = int8_block_sums(a, q).astype(np.float64)
    abs_isum = int8_block_sums(np.abs(a.astype(np.int64)), np.abs(q.astype(np.int64))).astype(np.float64)
    sd = np.asarray(scale, np.float16).astype(np.float64)[None, :, None] * d.astype(np.float64)[:, None, :]
    return sd * isum, np.abs(sd) * abs_isum


def int8_matmul(x, q, scale, bias=None) -> np.ndarray:
    """float64 y[t, o] = scale[o] * sum_b d_b * sum_i q[o, i] * a[t, i] (+ bias[o])."""
    y = int8_terms(x, q, scale)[0].sum(axis=2)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y


def quantize_int8_rows(w: np.ndarray):
    """W[out, in] -> (q int8 [out, in], scale float16 [out]) with scale = absmax / 127 (for tests)."""
    w = np.asarray(w, dtype=np.float32)
    s = (np.abs(w).max(axis=1) / 127).astype(np.float16)
    s32 = s.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s32 > 0, np.rint(w / np.where(s32 > 0, s32, 1)), 0)
    return np.clip(q, -127, 127).astype(np.int8), s
