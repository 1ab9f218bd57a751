"""Every CPU kernel, every ISA this machine runs, every dtype, against the float64 numpy reference.

Shapes are chosen to cross the SIMD tails (in_features not a multiple of 8 or 16), the matmul tile
edges (rows not a multiple of 3/4/8, tokens not a multiple of 4/6) and the token blocks (70
tokens). Tolerances come from tests/tolerances.py only.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest

import slmcore
from slmcore._core import kernels as K
from slmcore.reference import kernels as ref
from slmcore.reference import quant as refq
from tolerances import bound, geglu_bound, swiglu_bound

ISAS = K.available_isas()
WEIGHT_DTYPES = ["float32", "float16", "bfloat16"]
IN_FEATURES = [1, 7, 15, 17, 33, 100, 577]
N_OUT = [1, 3, 5, 13, 29]
N_TOKENS = [1, 2, 5, 7, 13, 70]

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# helpers


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the test's parameters, so every case is reproducible on its own."""
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def stored(w32: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values rounded to the storage dtype (bfloat16 as uint16 bits)."""
    if dtype == "float32":
        return np.ascontiguousarray(w32, dtype=np.float32)
    if dtype == "float16":
        return w32.astype(np.float16)
    if dtype == "bfloat16":
        return ref.f32_to_bf16(w32)
    raise ValueError(dtype)


def misaligned(a: np.ndarray, offset: int) -> np.ndarray:
    """A read-only copy of `a` whose data starts `offset` bytes past an aligned address."""
    a = np.ascontiguousarray(a)
    buf = bytes(offset) + a.tobytes()
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=offset).reshape(a.shape)
    assert out.ctypes.data % 16 != 0
    if offset % a.itemsize:
        assert not out.flags.aligned
    return out


def bits16(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16)


def bits32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def check_matmul(isa, x, w, dtype, bias=None, y0=None):
    got = K.matmul(isa, x, w, dtype, bias=bias, y=y0)
    want = ref.matmul(x, w, dtype, bias)
    if y0 is not None:
        want = want + y0.astype(np.float64)
    tol = bound("matmul", dtype, in_features=x.shape[1], x=x, w=ref.widen(w, dtype),
                bias=0.0 if bias is None else bias, y0=0.0 if y0 is None else y0)
    err = float(np.abs(got - want).max()) if got.size else 0.0
    assert got.dtype == np.float32 and got.shape == want.shape
    assert err <= tol, f"{isa} {dtype} x{x.shape} w{w.shape}: max error {err:.3g} > tolerance {tol:.3g}"
    return got


# ----------------------------------------------------------------------------------------------
# dispatch


def test_isas_listed():
    assert ISAS[0] == "generic"
    assert set(ISAS) <= {"generic", "avx2", "avx512"}
    if "avx512" in ISAS:
        assert "avx2" in ISAS


@pytest.mark.parametrize("name", ["sse9", "", "AVX2", "neon"])
def test_unknown_isa_raises(name):
    x = np.ones((1, 4), np.float32)
    with pytest.raises(slmcore.errors.InvalidArgumentError):
        K.matmul(name, x, x, "float32")
    with pytest.raises(slmcore.errors.InvalidArgumentError):
        K.rmsnorm(name, x[0], x[0], 1e-6)


# ----------------------------------------------------------------------------------------------
# matmul


@pytest.mark.parametrize("in_features", IN_FEATURES)
@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_matmul_matches_reference(isa, dtype, in_features):
    rng = rng_for("matmul", isa, dtype, in_features)
    for n_out in N_OUT:
        w = stored(rng.standard_normal((n_out, in_features)).astype(np.float32), dtype)
        for n_tokens in N_TOKENS:
            x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
            check_matmul(isa, x, w, dtype)


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_matmul_bias_and_accumulate(isa, dtype):
    rng = rng_for("matmul-bias", isa, dtype)
    for in_features, n_out, n_tokens in [(33, 13, 1), (100, 29, 7), (577, 5, 70), (17, 3, 13)]:
        w = stored(rng.standard_normal((n_out, in_features)).astype(np.float32), dtype)
        x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
        bias = (rng.standard_normal(n_out) * 4).astype(np.float32)
        y0 = (rng.standard_normal((n_tokens, n_out)) * 4).astype(np.float32)
        check_matmul(isa, x, w, dtype, bias=bias)
        check_matmul(isa, x, w, dtype, y0=y0)
        check_matmul(isa, x, w, dtype, bias=bias, y0=y0)


@pytest.mark.parametrize("offset", [1, 2])
@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_matmul_unaligned(isa, dtype, offset):
    rng = rng_for("matmul-unaligned", isa, dtype, offset)
    for in_features, n_out, n_tokens in [(577, 13, 1), (100, 29, 70), (33, 5, 7), (7, 3, 2)]:
        w = stored(rng.standard_normal((n_out, in_features)).astype(np.float32), dtype)
        x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
        aligned = check_matmul(isa, x, w, dtype)
        un = check_matmul(isa, misaligned(x, offset), misaligned(w, offset), dtype)
        assert np.array_equal(aligned, un)


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_matmul_row_stride(isa, dtype):
    """W as a view whose rows are further apart than in_features (w_stride > in_features)."""
    rng = rng_for("matmul-stride", isa, dtype)
    wide = stored(rng.standard_normal((29, 120)).astype(np.float32), dtype)
    for in_features, n_tokens in [(100, 1), (33, 7), (17, 70)]:
        w = wide[:, :in_features]
        assert not w.flags.c_contiguous
        x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
        got = check_matmul(isa, x, w, dtype)
        assert np.array_equal(got, K.matmul(isa, x, np.ascontiguousarray(w), dtype))


@pytest.mark.parametrize("in_features", [1, 17, 100, 577])
@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_matmul_bitwise_invariant(isa, dtype, in_features):
    """Each output is bitwise the same whatever n_tokens, row range, or tile computed it."""
    rng = rng_for("matmul-invariant", isa, dtype, in_features)
    n_out, n_tokens = 29, 70
    w = stored(rng.standard_normal((n_out, in_features)).astype(np.float32), dtype)
    x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    y0 = rng.standard_normal((n_tokens, n_out)).astype(np.float32)
    for kw in [{}, {"bias": bias}, {"bias": bias, "y": y0}]:
        full = K.matmul(isa, x, w, dtype, **kw)
        # one token at a time (the GEMV path)
        per_token = np.concatenate(
            [K.matmul(isa, x[t : t + 1], w, dtype, bias=kw.get("bias"),
                      y=None if "y" not in kw else y0[t : t + 1]) for t in range(n_tokens)]
        )
        assert np.array_equal(full, per_token)
        # token batches of odd sizes (GEMM tile edges and narrower tiles)
        cuts = [0, 2, 3, 8, 15, 28, 41, 70]
        batched = np.concatenate(
            [K.matmul(isa, x[a:b], w, dtype, bias=kw.get("bias"), y=None if "y" not in kw else y0[a:b])
             for a, b in zip(cuts, cuts[1:])]
        )
        assert np.array_equal(full, batched)
        # row ranges split at odd points, for several token counts
        for t in [1, 2, 7, 70]:
            whole = K.matmul(isa, x[:t], w, dtype, bias=kw.get("bias"), y=None if "y" not in kw else y0[:t])
            pieces = np.zeros_like(whole)
            for a, b in zip([0, 1, 4, 5, 12, 21, 28], [1, 4, 5, 12, 21, 28, 29]):
                part = K.matmul(isa, x[:t], w, dtype, bias=kw.get("bias"),
                                y=None if "y" not in kw else y0[:t], row_begin=a, row_end=b)
                pieces[:, a:b] = part[:, a:b]
            assert np.array_equal(whole, pieces)
            assert np.array_equal(whole[:, 5:12], full[:t, 5:12])


@pytest.mark.parametrize("isa", ISAS)
def test_matmul_rows_outside_range_untouched(isa):
    rng = rng_for("matmul-range", isa)
    w = rng.standard_normal((13, 33)).astype(np.float32)
    for n_tokens in [1, 7]:
        x = rng.standard_normal((n_tokens, 33)).astype(np.float32)
        y0 = rng.standard_normal((n_tokens, 13)).astype(np.float32)
        got = K.matmul(isa, x, w, "float32", y=y0, row_begin=3, row_end=8)
        assert np.array_equal(got[:, :3], y0[:, :3]) and np.array_equal(got[:, 8:], y0[:, 8:])
        got = K.matmul(isa, x, w, "float32", row_begin=3, row_end=8)
        assert not got[:, :3].any() and not got[:, 8:].any()
        empty = K.matmul(isa, x, w, "float32", y=y0, row_begin=5, row_end=5)
        assert np.array_equal(empty, y0)


@pytest.mark.parametrize("isa", ISAS)
def test_matmul_degenerate_shapes(isa):
    bias = np.arange(3, dtype=np.float32)
    got = K.matmul(isa, np.zeros((2, 0), np.float32), np.zeros((3, 0), np.float32), "float32", bias=bias)
    assert np.array_equal(got, np.tile(bias, (2, 1)))
    assert K.matmul(isa, np.zeros((0, 5), np.float32), np.ones((3, 5), np.float32), "float32").shape == (0, 3)


def test_matmul_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    x = np.ones((2, 8), np.float32)
    w = np.ones((3, 8), np.float32)
    with pytest.raises(E, match="dtype"):
        K.matmul("generic", x, w.astype(np.float64), "float32")
    with pytest.raises(E, match="dtype"):
        K.matmul("generic", x, w.astype(np.float16), "bfloat16")
    with pytest.raises(E, match="dtype"):
        K.matmul("generic", x, w, "int8")
    with pytest.raises(E, match="in_features"):
        K.matmul("generic", x, np.ones((3, 9), np.float32), "float32")
    with pytest.raises(E, match="contiguous"):
        K.matmul("generic", x, np.asfortranarray(np.ones((8, 8), np.float32))[:, ::2], "float32")
    with pytest.raises(E, match="row_begin"):
        K.matmul("generic", x, w, "float32", row_begin=2, row_end=4)
    with pytest.raises(E, match="row_begin"):
        K.matmul("generic", x, w, "float32", row_begin=-1)
    with pytest.raises(E, match="bias"):
        K.matmul("generic", x, w, "float32", bias=np.ones(4, np.float32))
    with pytest.raises(E, match="y"):
        K.matmul("generic", x, w, "float32", y=np.ones((2, 4), np.float32))
    with pytest.raises(E, match="dimension"):
        K.matmul("generic", x[0], w, "float32")
    with pytest.raises(E):
        K.matmul("generic", x, w[::-1], "float32")


# ----------------------------------------------------------------------------------------------
# rmsnorm


@pytest.mark.parametrize("n", [1, 7, 16, 17, 64, 100, 576, 2048, 4097])
@pytest.mark.parametrize("isa", ISAS)
def test_rmsnorm(isa, n):
    rng = rng_for("rmsnorm", isa, n)
    for scale, eps in [(1.0, 1e-6), (30.0, 1e-5), (1e-3, 1e-6)]:
        x = (rng.standard_normal(n) * scale).astype(np.float32)
        w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        want = ref.rmsnorm(x, w, eps)
        got = K.rmsnorm(isa, x, w, eps)
        tol = bound("rmsnorm", "float32", ref=want, n=n)
        assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("n", [1, 7, 16, 17, 64, 100, 768, 1000])
@pytest.mark.parametrize("isa", ISAS)
def test_layernorm(isa, n):
    rng = rng_for("layernorm", isa, n)
    for scale, offset, eps in [(1.0, 0.0, 1e-5), (30.0, 5.0, 1e-5), (1e-3, -2.0, 1e-6)]:
        x = (rng.standard_normal(n) * scale + offset).astype(np.float32)
        w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n)).astype(np.float32)
        want = ref.layernorm(x, w, b, eps)
        got = K.layernorm(isa, x, w, b, eps)
        # Centring costs float32 precision in proportion to |mean| / std (the same in any float32
        # LayerNorm): the bound scales with that condition number.
        condition = 1 + abs(float(np.mean(x, dtype=np.float64))) / max(float(np.std(x, dtype=np.float64)), 1e-30)
        tol = bound("layernorm", "float32", ref=want - b, n=n) * condition + 4 * np.finfo(np.float32).eps * np.abs(b).max()
        assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("n", [1, 7, 8, 17, 100, 3072])
@pytest.mark.parametrize("isa", ISAS)
def test_gelu_tanh(isa, n):
    rng = rng_for("gelu", isa, n)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    want = ref.gelu_tanh(x)
    ones = np.ones(n)
    assert np.all(np.abs(K.gelu_tanh(isa, x) - want) <= geglu_bound(want, x, ones))


@pytest.mark.parametrize("n", [1, 7, 8, 17, 100, 3072])
@pytest.mark.parametrize("isa", ISAS)
def test_gelu_erf(isa, n):
    """Exact GELU: relative error (erfc's fit is good to 1.2e-7 relative, then exp and a few
    roundings) in both tails, including x far below 0 where the value is tiny. Rounding x/sqrt(2)
    to float32 moves erfc by a relative 2 z^2 eps (z^2 = x^2/2), so the bound grows with x^2."""
    rng = rng_for("gelu_erf", isa, n)
    x = np.concatenate([(rng.standard_normal(n) * 4), [-12.0, -9.0, -5.0, -1e-8, 0.0, 3e-8, 5.0, 30.0]])
    x = x.astype(np.float32)
    want = ref.gelu_erf(x)
    bound = 8 * np.finfo(np.float32).eps * (1 + x.astype(np.float64) ** 2) * np.abs(want) + 1e-37
    assert np.all(np.abs(K.gelu_erf(isa, x) - want) <= bound)


def test_rmsnorm_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    with pytest.raises(E):
        K.rmsnorm("generic", np.ones(4, np.float32), np.ones(5, np.float32), 1e-6)
    with pytest.raises(E):
        K.rmsnorm("generic", np.ones(4, np.float32), np.ones(4, np.float32), -1.0)
    with pytest.raises(E):
        K.rmsnorm("generic", np.ones(0, np.float32), np.ones(0, np.float32), 1e-6)
    with pytest.raises(E):
        K.rmsnorm("generic", np.ones((2, 2), np.float32), np.ones(4, np.float32), 1e-6)


# ----------------------------------------------------------------------------------------------
# rope

ROPE_SHAPES = [  # (n_heads, head_dim, rotary_dim)
    (1, 8, 8),
    (3, 24, 10),
    (5, 64, 64),
    (7, 80, 32),
    (9, 96, 96),
    (2, 64, 6),
    (3, 128, 128),
    (1, 34, 34),
    (3, 64, 0),
]


@pytest.mark.parametrize("style", ["neox", "interleaved"])
@pytest.mark.parametrize("shape", ROPE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("isa", ISAS)
def test_rope(isa, shape, style):
    n_heads, head_dim, rotary_dim = shape
    rng = rng_for("rope", isa, shape, style)
    x = rng.standard_normal((n_heads, head_dim)).astype(np.float32)
    pos = 1234
    inv_freq = 10000.0 ** (-np.arange(0, rotary_dim, 2) / max(rotary_dim, 1))
    cos = np.cos(pos * inv_freq).astype(np.float32)
    sin = np.sin(pos * inv_freq).astype(np.float32)
    got = K.rope(isa, x, cos, sin, rotary_dim, style)
    want = ref.rope(x, cos, sin, rotary_dim, style)
    assert np.abs(got - want).max() <= bound("rope", "float32", x=x)
    assert np.array_equal(got[:, rotary_dim:], x[:, rotary_dim:])  # the rest does not move


def test_rope_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    x = np.ones((2, 8), np.float32)
    c = np.ones(2, np.float32)
    with pytest.raises(E):
        K.rope("generic", x, c, c, 3, "neox")
    with pytest.raises(E):
        K.rope("generic", x, c, c, 10, "neox")
    with pytest.raises(E):
        K.rope("generic", x, c, c, 6, "neox")
    with pytest.raises(E):
        K.rope("generic", x, c, c, 4, "gptj")


# ----------------------------------------------------------------------------------------------
# attention

ATTN_CASES = [  # (n_pos, kv_begin, kv_end)
    (1, 0, 1),
    (5, 0, 5),
    (37, 0, 37),
    (100, 13, 77),
    (600, 1, 600),
]
KV_DTYPES = ["float32", "float16", "int8"]


def cache_rows(rng: np.random.Generator, shape: tuple, kv_dtype: str):
    """Random K or V rows as the KV cache stores them: (stored, row scales or None, the float64
    values they stand for). int8 rows go through the reference's quantize_kv."""
    x = rng.standard_normal(shape).astype(np.float32)
    if kv_dtype == "int8":
        q, scale = refq.quantize_kv(x)
        return q, scale, refq.dequantize_kv(q, scale)
    rows = x.astype(kv_dtype)
    return rows, None, rows.astype(np.float64)


@pytest.mark.parametrize("head_dim", [8, 24, 64, 80, 96, 128, 256, 13])
@pytest.mark.parametrize("kv_dtype", KV_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_attention(isa, kv_dtype, head_dim):
    """Against the reference over the values the cache holds (for int8: the dequantized rows)."""
    rng = rng_for("attention", isa, kv_dtype, head_dim)
    for n_pos, b, e in ATTN_CASES:
        for q_scale in [1.0, 4.0]:  # 4: peaked softmax
            q = (rng.standard_normal(head_dim) * q_scale).astype(np.float32)
            k, k_scale, k_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
            v, v_scale, v_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
            scale = 1.0 / math.sqrt(head_dim)
            got = K.attention(isa, q, k, v, scale, b, e, k_scale=k_scale, v_scale=v_scale)
            want = ref.attention(q, k_val[b:e], v_val[b:e], np.float32(scale))
            tol = bound("attention", kv_dtype, q=q, k=k_val[b:e], v=v_val[b:e], scale=scale, n_pos=e - b)
            err = np.abs(got - want).max()
            assert err <= tol, f"n_pos {n_pos} [{b}, {e}) q_scale {q_scale}: {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("head_dim", [13, 64, 80, 128, 256])
@pytest.mark.parametrize("kv_dtype", KV_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_attention_grouped_queries(isa, kv_dtype, head_dim):
    """Several queries over one K/V head (grouped-query attention) in one call: each output is the
    one-query call's, bit for bit, for every group size the batching splits differently (1 .. 9),
    and so within the bound of the reference; with softcap too."""
    rng = rng_for("attention-grouped", isa, kv_dtype, head_dim)
    scale = 1.0 / math.sqrt(head_dim)
    for n_pos, b, e in ATTN_CASES:
        k, k_scale, k_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
        v, v_scale, v_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
        scales = dict(k_scale=k_scale, v_scale=v_scale)
        for n_queries in (1, 2, 3, 4, 5, 8, 9):
            q = (rng.standard_normal((n_queries, head_dim)) * 2).astype(np.float32)
            for softcap in (0.0, 4.0):
                got = K.attention(isa, q, k, v, scale, b, e, softcap=softcap, **scales)
                assert got.shape == q.shape
                for r in range(n_queries):
                    alone = K.attention(isa, q[r], k, v, scale, b, e, softcap=softcap, **scales)
                    assert np.array_equal(got[r], alone), (n_pos, n_queries, r, softcap)
                    want = ref.attention(q[r], k_val[b:e], v_val[b:e], np.float32(scale), softcap=softcap)
                    tol = bound("attention", kv_dtype, q=q[r], k=k_val[b:e], v=v_val[b:e], scale=scale, n_pos=e - b)
                    assert np.abs(got[r] - want).max() <= tol


@pytest.mark.parametrize("head_dim", [24, 64])
@pytest.mark.parametrize("kv_dtype", ["float32", "int8"])
@pytest.mark.parametrize("isa", ISAS)
def test_attention_softcap(isa, kv_dtype, head_dim):
    """Gemma 2's soft-capping: scores become cap * tanh(s / cap); scores far beyond the cap
    (q scaled up) are where it changes the result."""
    rng = rng_for("attention-softcap", isa, kv_dtype, head_dim)
    for n_pos, b, e in ATTN_CASES:
        q = (rng.standard_normal(head_dim) * 8).astype(np.float32)
        k, k_scale, k_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
        v, v_scale, v_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
        scale = 1.0 / math.sqrt(head_dim)
        scales = dict(k_scale=k_scale, v_scale=v_scale)
        got = K.attention(isa, q, k, v, scale, b, e, softcap=5.0, **scales)
        want = ref.attention(q, k_val[b:e], v_val[b:e], np.float32(scale), softcap=5.0)
        tol = bound("attention", kv_dtype, q=q, k=k_val[b:e], v=v_val[b:e], scale=scale, n_pos=e - b)
        assert np.abs(got - want).max() <= tol
        if e - b > 1:  # the cap matters
            assert np.abs(K.attention(isa, q, k, v, scale, b, e, **scales) - want).max() > 10 * tol


@pytest.mark.parametrize("head_dim", [13, 64])
@pytest.mark.parametrize("kv_dtype", KV_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_attention_alibi(isa, kv_dtype, head_dim):
    """ALiBi: s_j += slope * (j - i) with the query at i = kv_end - 1, for BLOOM's range of slopes
    (2^-8 .. 0.5) and a negative one; windows [kv_begin, kv_end) that start past 0. Without the
    bias (or with the opposite sign) the result is far off; with softcap the bias comes after the cap."""
    rng = rng_for("attention-alibi", isa, kv_dtype, head_dim)
    for n_pos, b, e in ATTN_CASES:
        for slope in (0.5, 2.0**-8, 0.0883883476, -0.25):
            q = rng.standard_normal(head_dim).astype(np.float32)
            k, k_scale, k_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
            v, v_scale, v_val = cache_rows(rng, (n_pos, head_dim), kv_dtype)
            scales = dict(k_scale=k_scale, v_scale=v_scale)
            scale = 1.0 / math.sqrt(head_dim)
            slope32 = np.float32(slope)
            got = K.attention(isa, q, k, v, scale, b, e, alibi_slope=slope, **scales)
            want = ref.attention(q, k_val[b:e], v_val[b:e], np.float32(scale), alibi_slope=slope32)
            tol = bound("attention", kv_dtype, q=q, k=k_val[b:e], v=v_val[b:e], scale=scale, n_pos=e - b,
                        alibi_slope=slope)
            err = np.abs(got - want).max()
            assert err <= tol, f"n_pos {n_pos} [{b}, {e}) slope {slope}: {err:.3g} > {tol:.3g}"
            if e - b > 8 and abs(slope) >= 0.25:  # the bias matters, and its sign
                assert np.abs(K.attention(isa, q, k, v, scale, b, e, **scales) - want).max() > 10 * tol
                assert np.abs(K.attention(isa, q, k, v, scale, b, e, alibi_slope=-slope, **scales) - want).max() > 10 * tol
        if kv_dtype != "float16":  # softcap first, then the bias
            q = (rng.standard_normal(head_dim) * 8).astype(np.float32)
            got = K.attention(isa, q, k, v, scale, b, e, softcap=3.0, alibi_slope=0.125, **scales)
            want = ref.attention(q, k_val[b:e], v_val[b:e], np.float32(scale), softcap=3.0, alibi_slope=np.float32(0.125))
            tol = bound("attention", kv_dtype, q=q, k=k_val[b:e], v=v_val[b:e], scale=scale, n_pos=e - b,
                        alibi_slope=0.125)
            assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("kv_dtype", KV_DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_attention_strided_unaligned_cache(isa, kv_dtype):
    """K/V rows further apart than head_dim (a cache with more heads), at an odd byte address."""
    rng = rng_for("attention-strided", isa, kv_dtype)
    head_dim, n_pos = 64, 50
    cache_k, k_scale, k_all = cache_rows(rng, (n_pos, 3 * head_dim), kv_dtype)
    cache_v, v_scale, v_all = cache_rows(rng, (n_pos, 3 * head_dim), kv_dtype)
    cache_k, cache_v = misaligned(cache_k, 1 if kv_dtype == "int8" else 2), misaligned(cache_v, 3)
    q = rng.standard_normal(head_dim).astype(np.float32)
    k, v = cache_k[:, head_dim : 2 * head_dim], cache_v[:, head_dim : 2 * head_dim]
    k_val, v_val = k_all[:, head_dim : 2 * head_dim], v_all[:, head_dim : 2 * head_dim]
    scales = dict(k_scale=k_scale, v_scale=v_scale)
    got = K.attention(isa, q, k, v, 0.125, 7, 50, **scales)
    assert np.array_equal(got, K.attention(isa, q, np.ascontiguousarray(k), np.ascontiguousarray(v), 0.125, 7, 50, **scales))
    want = ref.attention(q, k_val[7:], v_val[7:], np.float32(0.125))
    tol = bound("attention", kv_dtype, q=q, k=k_val[7:], v=v_val[7:], scale=0.125, n_pos=43)
    assert np.abs(got - want).max() <= tol


def int8_kv_attention_bound(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> float:
    """How far attention over int8 K/V rows may be from attention over the float rows k, v they
    quantize, from the rule alone. Each element moves by at most half a step, amax(row) / 254, so
    each score by at most delta = |scale| * sum|q| * max_j amax(K_j) / 254; the softmax weights then
    change by a factor within e^(+-2 delta), i.e. sum_j |p'_j - p_j| <= e^(2 delta) - 1, and
        |out' - out| <= (e^(2 delta) - 1) * max|V'| + max_j amax(V_j) / 254,
    plus the float32 rounding of the kernel (the "attention" bound)."""
    step_k = np.abs(k).max(axis=1).max() / 254
    step_v = np.abs(v).max(axis=1).max() / 254
    delta = abs(scale) * float(np.abs(q).astype(np.float64).sum()) * step_k
    return math.expm1(2 * delta) * (float(np.abs(v).max()) + step_v) + step_v


@pytest.mark.parametrize("head_dim", [64, 80, 96, 128, 256])
@pytest.mark.parametrize("isa", ISAS)
def test_attention_int8_near_float(isa, head_dim):
    """The int8 cache against attention over the unquantized float32 rows: within the bound the
    quantization rule implies (int8_kv_attention_bound), and far from the exact float result only
    by that much (the measured error is about 2-10% of the bound for unit-normal data)."""
    rng = rng_for("attention-int8-float", isa, head_dim)
    for n_pos, b, e in ATTN_CASES:
        q = rng.standard_normal(head_dim).astype(np.float32)
        k32 = rng.standard_normal((n_pos, head_dim)).astype(np.float32)
        v32 = rng.standard_normal((n_pos, head_dim)).astype(np.float32)
        k, k_scale = K.quantize_kv(isa, k32)
        v, v_scale = K.quantize_kv(isa, v32)
        scale = 1.0 / math.sqrt(head_dim)
        got = K.attention(isa, q, k, v, scale, b, e, k_scale=k_scale, v_scale=v_scale)
        want = ref.attention(q, k32[b:e], v32[b:e], np.float32(scale))
        tol = int8_kv_attention_bound(q, k32[b:e], v32[b:e], scale)
        tol += bound("attention", "int8", q=q, k=k32[b:e], v=v32[b:e], scale=scale, n_pos=e - b)
        err = np.abs(got - want).max()
        assert err <= tol, f"n_pos {n_pos} [{b}, {e}): {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("head_dim", [1, 13, 64, 80, 96, 128, 256])
@pytest.mark.parametrize("isa", ISAS)
def test_quantize_kv(isa, head_dim):
    """The int8 cache's row rule, bit for bit the reference's: random rows of several magnitudes,
    rows with exact halves (round half to even), an all-zero row, and non-finite rows (scale NaN,
    q = 0)."""
    rng = rng_for("quantize-kv", isa, head_dim)
    rows = [rng.standard_normal(head_dim) * m for m in (1e-30, 1e-3, 1.0, 40.0, 3e4)]
    halves = (rng.integers(-254, 255, head_dim) / 2.0).astype(np.float32)
    halves[0] = 127.0  # amax 127: the scale is 1 and x / 1 keeps every half
    rows += [halves, np.zeros(head_dim), np.full(head_dim, -2.5)]
    for bad in (np.nan, np.inf, -np.inf):
        row = rng.standard_normal(head_dim)
        row[head_dim // 2] = bad
        rows.append(row)
    x = np.stack(rows).astype(np.float32)
    q, scale = K.quantize_kv(isa, x)
    want_q, want_scale = refq.quantize_kv(x)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(scale, want_scale)  # NaN where the reference has NaN
    if head_dim > 1:
        assert set(np.unique(q[5])) <= set(np.unique(np.rint(halves)))  # halves rounded to even
    assert np.isnan(scale[-3:]).all() and not q[-3:].any()
    assert scale[6] == 0 and not q[6].any()
    dequantized = refq.dequantize_kv(q[:5], scale[:5])
    assert (np.abs(dequantized - x[:5]) <= np.abs(x[:5]).max(axis=1, keepdims=True) / 254 * (1 + 1e-6)).all()


def test_attention_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    q = np.ones(8, np.float32)
    k = np.ones((4, 8), np.float32)
    with pytest.raises(E):
        K.attention("generic", q, k, k, 1.0, 2, 2)
    with pytest.raises(E):
        K.attention("generic", q, k, k, 1.0, 0, 5)
    with pytest.raises(E):
        K.attention("generic", q, k, k.astype(np.float16), 1.0, 0, 4)
    with pytest.raises(E):
        K.attention("generic", q, k.astype(np.float64), k, 1.0, 0, 4)
    with pytest.raises(E):
        K.attention("generic", np.ones(7, np.float32), k, k, 1.0, 0, 4)
    for bad_q in (np.ones((2, 7), np.float32), np.ones((1, 2, 8), np.float32), np.ones((0, 8), np.float32)):
        with pytest.raises(E):
            K.attention("generic", bad_q, k, k, 1.0, 0, 4)
    with pytest.raises(E):
        K.attention("generic", q, k, k, 1.0, 0, 4, alibi_slope=float("nan"))
    k8 = np.ones((4, 8), np.int8)
    s = np.ones(4, np.float32)
    for kwargs in (dict(), dict(k_scale=s), dict(k_scale=s, v_scale=np.ones(3, np.float32)),
                   dict(k_scale=np.ones((4, 1), np.float32), v_scale=s)):
        with pytest.raises(E):
            K.attention("generic", q, k8, k8, 1.0, 0, 4, **kwargs)
    with pytest.raises(E):  # scales for float rows
        K.attention("generic", q, k, k, 1.0, 0, 4, k_scale=s, v_scale=s)
    with pytest.raises(E):  # mixed dtypes
        K.attention("generic", q, k8, k, 1.0, 0, 4, k_scale=s, v_scale=s)
    with pytest.raises(E):
        K.quantize_kv("generic", np.ones(8, np.float32))


# ----------------------------------------------------------------------------------------------
# swiglu


@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 100, 1000, 11008])
@pytest.mark.parametrize("isa", ISAS)
def test_swiglu(isa, n):
    rng = rng_for("swiglu", isa, n)
    g = (rng.standard_normal(n) * 6).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    got = K.swiglu(isa, g, u)
    want = ref.swiglu(g, u)
    assert np.all(np.abs(got - want) <= swiglu_bound(want, g, u))


@pytest.mark.parametrize("isa", ISAS)
def test_swiglu_extremes(isa):
    g = np.array([-1e30, -200, -104, -100, -89, -88.8, -87.5, -87, -40, -20, -1e-30, -0.0, 0.0, 1e-30,
                  1e-6, 0.5, 20, 40, 87, 88.7, 89, 100, 200, 1e30, 1e37, -1e37], np.float32)
    u = np.linspace(-3, 3, g.size).astype(np.float32)
    got = K.swiglu(isa, g, u)
    with np.errstate(over="ignore"):
        want = ref.swiglu(g, u)
    assert np.all(np.isfinite(got))
    assert np.all(np.abs(got - want) <= swiglu_bound(want, g, u))
    nan = K.swiglu(isa, np.array([np.nan, 1.0], np.float32), np.ones(2, np.float32))
    assert np.isnan(nan[0]) and not np.isnan(nan[1])


@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 100, 1000, 2048])
@pytest.mark.parametrize("isa", ISAS)
def test_geglu(isa, n):
    rng = rng_for("geglu", isa, n)
    g = (rng.standard_normal(n) * 4).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    got = K.geglu(isa, g, u)
    assert np.all(np.abs(got - ref.geglu(g, u)) <= geglu_bound(ref.geglu(g, u), g, u))


@pytest.mark.parametrize("isa", ISAS)
def test_geglu_extremes(isa):
    g = np.array([-1e30, -200, -20, -10, -5.5, -3, -1e-30, -0.0, 0.0, 1e-30, 1e-6, 0.5, 3, 20, 200, 1e30],
                 np.float32)
    u = np.linspace(-3, 3, g.size).astype(np.float32)
    got = K.geglu(isa, g, u)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.nan_to_num(ref.geglu(g, u))  # -1e30 * 0 in the float64 reference: the limit is 0
    assert np.all(np.isfinite(got))
    assert np.all(np.abs(got - want) <= geglu_bound(want, g, u))


# ----------------------------------------------------------------------------------------------
# conversions


def all_16bit_patterns() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("isa", ISAS)
def test_to_f32_bf16_every_pattern(isa, offset):
    src = all_16bit_patterns()
    for n in [src.size, 1, 7, 15, 17, 33]:  # full vectors and tails
        s = misaligned(src[:n], offset) if offset else src[:n]
        got = K.to_f32(isa, s, "bfloat16")
        assert np.array_equal(bits32(got), bits32(ref.bf16_to_f32(src[:n])))  # NaN payloads too


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("isa", ISAS)
def test_to_f32_f16_every_pattern(isa, offset):
    src = all_16bit_patterns().view(np.float16)
    for n in [src.size, 1, 7, 15, 17, 33]:
        s = misaligned(src[:n], offset) if offset else src[:n]
        got = bits32(K.to_f32(isa, s, "float16"))
        want = bits32(src[:n].astype(np.float32))
        # numpy keeps signalling NaNs signalling; vcvtph2ps (and so every ISA here) quiets them.
        h = bits16(src[:n])
        snan = ((h & 0x7C00) == 0x7C00) & ((h & 0x3FF) != 0) & ((h & 0x200) == 0)
        want = np.where(snan, want | 0x00400000, want)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("isa", ISAS)
def test_to_f32_f32_is_a_copy(isa):
    src = np.random.default_rng(5).integers(0, 2**32, 1001, dtype=np.uint32).view(np.float32)
    assert np.array_equal(bits32(K.to_f32(isa, misaligned(src, 2), "float32")), bits32(src))
    assert K.to_f32(isa, src.reshape(7, 143), "float32").shape == (7, 143)


def f16_edge_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    vals = [
        0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 65519.996, 65520.0, -65520.0, 65536.0, 1e5, 3.4e38,
        np.inf, -np.inf, 6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
        1.4e-45, -1.4e-45, 1e-10, 1.5, 2049.0, 2051.0, 4097.0,
    ]
    # every finite half, and the exact midpoints between neighbours (ties to even, up and down)
    h = np.arange(0, 0x7C00, dtype=np.uint16)
    f = h.view(np.float16).astype(np.float64)
    mids = (f[:-1] + f[1:]) / 2
    near = np.nextafter(mids.astype(np.float32), np.float32(np.inf))
    below = np.nextafter(mids.astype(np.float32), np.float32(-np.inf))
    pos = np.concatenate([f, mids, near, below]).astype(np.float32)
    rand = np.concatenate([
        rng.standard_normal(5000) * s for s in [1e-7, 1e-5, 1e-3, 1, 100, 3e4, 7e4]
    ]).astype(np.float32)
    out = np.concatenate([np.array(vals, np.float32), pos, -pos, rand])
    assert np.all(mids.astype(np.float32) == mids)  # midpoints are exact in float32
    return out


@pytest.mark.parametrize("isa", ISAS)
def test_f32_to_f16_matches_numpy(isa):
    x = f16_edge_values()
    with np.errstate(over="ignore"):
        want = bits16(x.astype(np.float16))
    for n in [x.size, 1, 7, 15, 17]:
        got = K.f32_to_f16(isa, x[:n])
        assert got.dtype == np.float16
        assert np.array_equal(bits16(got), want[:n])
    # quiet NaNs keep sign and top payload bits as in numpy; signalling ones come out quiet
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7FFFE000, 0x7FC12345], np.uint32).view(np.float32)
    assert np.array_equal(bits16(K.f32_to_f16(isa, nans)), bits16(nans.astype(np.float16)))
    snan = np.array([0x7F800001, 0xFF812345], np.uint32).view(np.float32)
    assert np.all(np.isnan(K.f32_to_f16(isa, snan)))


def test_conversions_agree_across_isas_on_signalling_nans():
    snan32 = np.array([0x7F800001, 0xFF812345, 0x7F801000], np.uint32).view(np.float32)
    snan16 = np.array([0x7C01, 0xFD00, 0x7DFF], np.uint16).view(np.float16)
    h = {isa: bits16(K.f32_to_f16(isa, snan32)) for isa in ISAS}
    f = {isa: bits32(K.to_f32(isa, snan16, "float16")) for isa in ISAS}
    for isa in ISAS:
        assert np.array_equal(h[isa], h["generic"]) and np.array_equal(f[isa], f["generic"])


def test_conversion_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    with pytest.raises(E):
        K.to_f32("generic", np.ones(4, np.float32), "float16")
    with pytest.raises(E):
        K.to_f32("generic", np.ones(4, np.int16), "bfloat16")
    with pytest.raises(E):
        K.to_f32("generic", np.ones(4, np.float16), "half")
    with pytest.raises(E):
        K.to_f32("generic", np.ones(8, np.float16)[::2], "float16")


# ----------------------------------------------------------------------------------------------
# build hygiene: the generic kernels and CPUID code must not depend on ISA flags


def test_generic_sources_include_no_simd_headers():
    files = sorted((REPO / "kernels" / "cpu" / "generic").glob("*")) + [REPO / "kernels" / "cpu" / "cpuid.cpp"]
    assert len(files) > 2
    for f in files:
        text = f.read_text()
        for header in ["immintrin.h", "x86intrin.h", "xmmintrin.h", "emmintrin.h", "avx", "simd.h"]:
            lines = [ln for ln in text.splitlines() if ln.strip().startswith("#include") and header in ln]
            assert not lines, f"{f.name} includes {lines}"


def test_isa_helpers_stay_in_their_folder():
    for isa in ["avx2", "avx512"]:
        for f in (REPO / "kernels").rglob("*"):
            if f.is_file() and f.suffix in (".h", ".cpp") and f.parent.name != isa:
                assert f'"../{isa}/' not in f.read_text() and f"cpu/{isa}/" not in f.read_text()


def test_isa_objects_export_no_shared_weak_symbols():
    """An inline or template function from a shared header (the standard library included) that an
    ISA file fails to inline becomes a weak symbol compiled with that ISA's flags, and the linker
    may keep that copy for every caller. Weak symbols of the ISA objects must belong to the ISA's
    own namespace. Checks the objects of the local build (build/*), when there is one."""
    import shutil
    import subprocess

    nm = shutil.which("nm")
    objs = {isa: sorted(REPO.glob(f"build/*/CMakeFiles/slm_kernels_{isa}.dir/**/*.o")) for isa in ["avx2", "avx512"]}
    if nm is None or not any(objs.values()):
        pytest.skip("needs nm and a local build directory (build/<dir>/CMakeFiles/...)")
    for isa, files in objs.items():
        for f in files:
            out = subprocess.run([nm, "-C", str(f)], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split(maxsplit=2)
                if len(parts) == 3 and parts[1] in ("W", "V", "u"):
                    assert parts[2].startswith(f"slm::kernels::{isa}::"), f"{f.name}: weak symbol {parts[2]}"
