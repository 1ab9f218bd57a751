"""The CUDA backend: build switch, device discovery and the CUDA kernels against the numpy reference.

Tests that need a GPU skip where `_core.cuda.device_count()` is 0 (CI has none); they run on a
machine with a GPU (see benchmarks/bench_cuda.py for the timings). The rest run everywhere.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import slmcore
from slmcore import _core
from slmcore.reference import kernels as ref
from slmcore.reference import quant as rq
from tolerances import EPS32, TOLERANCES, bound, geglu_bound, swiglu_bound
from test_llm import SEQ, models  # noqa: F401 (fixture)
from test_llm_int4 import FAMILY_CASES, Captured, dequantized
from test_llm_int4 import relative_error as logits_error

HAVE_GPU = _core.cuda.device_count() > 0
gpu = pytest.mark.skipif(not HAVE_GPU, reason="no CUDA device: " + _core.cuda.unavailable_reason())


def test_build_flag_and_device_count_agree():
    assert isinstance(_core.cuda.built, bool)
    if not _core.cuda.built:
        assert _core.cuda.device_count() == 0
        assert "without" in _core.cuda.unavailable_reason()


@pytest.mark.skipif(HAVE_GPU, reason="a GPU is present")
def test_cuda_calls_without_gpu_raise_device_unavailable(tiny_model):
    x = np.zeros(32, np.float16)
    with pytest.raises(slmcore.DeviceUnavailableError):
        _core.cuda.int4_gemv(np.zeros((4, 16), np.uint8), np.ones((4, 1), np.float16), None, x, 32)
    with pytest.raises(slmcore.DeviceUnavailableError):
        _core.cuda.device_info(0)
    for device in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(slmcore.DeviceUnavailableError, match="device='cpu'"):
            slmcore.LLM(tiny_model(), device=device)


def test_bad_device_strings(tiny_model):
    for device in ("cuda:", "cuda:x", "cuda0", "cuda:-1", "gpu"):
        with pytest.raises(slmcore.InvalidArgumentError):
            slmcore.LLM(tiny_model(), device=device)


def test_gemv_argument_checks():
    q = np.zeros((4, 16), np.uint8)
    s = np.ones((4, 1), np.float16)
    x = np.zeros(32, np.float16)
    with pytest.raises(slmcore.InvalidArgumentError):
        _core.cuda.int4_gemv(q, s, None, x, 48)  # group size
    with pytest.raises(slmcore.InvalidArgumentError):
        _core.cuda.int4_gemv(q, np.ones((4, 2), np.float16), None, x, 32)  # scales shape
    with pytest.raises(slmcore.InvalidArgumentError):
        _core.cuda.int4_gemv(q, s, None, np.zeros(64, np.float16), 32)  # x length
    with pytest.raises(slmcore.InvalidArgumentError):
        _core.cuda.int4_gemv(q, s.astype(np.float32), None, x, 32)  # scales dtype
    with pytest.raises(slmcore.InvalidArgumentError):
        _core.cuda.int4_gemv(q, s, np.ones((3, 1), np.float16), x, 32)  # mins shape


def gpu_layout_reference(canonical: np.ndarray) -> np.ndarray:
    """Canonical bytes -> GPU layout: inside each little-endian 32-bit word, nibble position p holds
    element (0, 2, 4, 6, 1, 3, 5, 7)[p] of the word's 8 elements."""
    nib = rq.unpack_nibbles(canonical)  # [rows, cols]: element order
    rows, cols = nib.shape
    words = nib.reshape(rows, cols // 8, 8)[:, :, [0, 2, 4, 6, 1, 3, 5, 7]]
    return rq.pack_nibbles(words.reshape(rows, cols))


@gpu
def test_gpu_layout_matches_reference():
    rng = np.random.default_rng(1)
    canonical = rng.integers(0, 256, size=(37, 96), dtype=np.uint8)
    np.testing.assert_array_equal(_core.cuda.int4_to_gpu_layout(canonical), gpu_layout_reference(canonical))


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@gpu
@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("rows,cols", [(1, 32), (7, 100), (33, 576), (257, 1000), (4096, 4096), (40, 14336)])
def test_int4_gemv_matches_reference(rows, cols, group_size, sym):
    """Odd row counts check the tail; cols not a multiple of the group check the zero padding."""
    rng = np.random.default_rng(rows * 7 + cols + group_size + sym)
    w = rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    qweight, scales, mins = rq.quantize_int4(w, group_size, sym=sym)
    cols_padded = qweight.shape[1] * 2
    x = np.zeros(cols_padded, np.float16)
    x[:cols] = rng.standard_normal(cols).astype(np.float16)
    ref = rq.dequantize_int4(qweight, scales, mins, group_size) @ x.astype(np.float64)
    y = _core.cuda.int4_gemv(qweight, scales, mins, x, group_size)
    assert y.dtype == np.float32 and y.shape == (rows,)
    assert np.all(np.isfinite(y))
    # fp16 products of (q-8) and x summed in fp16 over 32-element chunks, chunks summed in fp32:
    # errors scale with sum |w| |x|, so a single row whose sum cancels can be off by more in
    # relative terms; the norm over many rows stays small.
    if rows >= 33:
        assert relative_error(y, ref) <= 2e-3
    scale = np.abs(rq.dequantize_int4(qweight, scales, mins, group_size)) @ np.abs(x.astype(np.float64))
    assert np.all(np.abs(y - ref) <= 4e-3 * scale + 1e-6)


@gpu
def test_int4_gemv_fresh_inputs_each_call():
    """Different random inputs on the same shapes give different, correct results (no stale buffers)."""
    rng = np.random.default_rng(5)
    for _ in range(3):
        w = rng.standard_normal((64, 256)).astype(np.float32)
        qweight, scales, mins = rq.quantize_int4(w, 32)
        x = rng.standard_normal(256).astype(np.float16)
        ref = rq.dequantize_int4(qweight, scales, mins, 32) @ x.astype(np.float64)
        assert relative_error(_core.cuda.int4_gemv(qweight, scales, mins, x, 32), ref) <= 2e-3


@gpu
def test_device_info():
    info = _core.cuda.device_info(0)
    assert info["multiprocessors"] > 0 and info["memory_bytes"] > 0 and info["name"]
    with pytest.raises(slmcore.DeviceUnavailableError):
        _core.cuda.device_info(_core.cuda.device_count())


# ----------------------------------------------------------------------------------------------
# decode kernels: norms, rope, activations, attention, KV append (kernels/cuda/*.cu)
#
# The bindings poison every output buffer with NaN (0xFF bytes) before the kernel runs, so
# `np.isfinite(...).all()` checks that every element was written. Tolerances: tests/tolerances.py,
# key "cuda".

C = _core.cuda


def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the test's parameters, so every case is reproducible on its own."""
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def assert_f16_of(y16: np.ndarray, y32: np.ndarray) -> None:
    """The fp16 output is the float32 output rounded to nearest even, bit for bit (numpy rounds the same way)."""
    assert y16.dtype == np.float16 and y16.shape == y32.shape
    np.testing.assert_array_equal(y16.view(np.uint16), y32.astype(np.float16).view(np.uint16))


@gpu
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("n", [1, 7, 64, 257, 576, 2048, 5001])
def test_cuda_rms_norm(rows, n):
    rng = rng_for("rms_norm", rows, n)
    for scale, eps in [(1.0, 1e-6), (30.0, 1e-5), (1e-3, 1e-6)]:
        x = (rng.standard_normal((rows, n)) * scale).astype(np.float32)
        w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        y32, y16 = C.rms_norm(x, w, eps)
        assert y32.dtype == np.float32 and y32.shape == (rows, n)
        assert np.isfinite(y32).all() and np.isfinite(y16).all()
        want = ref.rmsnorm(x, w, eps)
        for r in range(rows):  # each row against its own magnitude
            assert np.abs(y32[r] - want[r]).max() <= bound("rmsnorm", "cuda", ref=want[r], n=n)
        assert_f16_of(y16, y32)


@gpu
@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("n", [1, 7, 64, 768, 1000, 4099])
def test_cuda_layer_norm(rows, n):
    rng = rng_for("layer_norm", rows, n)
    for scale, offset, eps in [(1.0, 0.0, 1e-5), (30.0, 5.0, 1e-5), (1e-3, -2.0, 1e-6)]:
        x = (rng.standard_normal((rows, n)) * scale + offset).astype(np.float32)
        w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n)).astype(np.float32)
        y32, y16 = C.layer_norm(x, w, b, eps)
        assert np.isfinite(y32).all() and np.isfinite(y16).all()
        want = ref.layernorm(x, w, b, eps)
        for r in range(rows):
            # Centring costs float32 precision in proportion to |mean| / std (as in test_kernels.py).
            xr = x[r].astype(np.float64)
            condition = 1 + abs(xr.mean()) / max(float(xr.std()), 1e-30)
            tol = bound("layernorm", "cuda", ref=want[r] - b, n=n) * condition + 4 * EPS32 * np.abs(b).max()
            assert np.abs(y32[r] - want[r]).max() <= tol
        assert_f16_of(y16, y32)


def rope_tables(pos: int, rotary_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin float32 [rotary_dim/2] of one position, computed on the host as the CPU engine does."""
    inv_freq = theta ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    angles = pos * inv_freq
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


@gpu
@pytest.mark.parametrize("style", ["neox", "interleaved"])
@pytest.mark.parametrize(
    "n_heads,n_kv_heads,head_dim,rotary_dim",
    [(1, 1, 64, 64), (9, 3, 64, 64), (4, 1, 80, 80), (8, 2, 128, 128), (4, 1, 256, 256), (6, 2, 128, 32),
     (5, 5, 80, 20), (3, 0, 64, 64)],
)
def test_cuda_rope(n_heads, n_kv_heads, head_dim, rotary_dim, style):
    """q and k rotated against the reference; partial rotary leaves the other dims bit for bit."""
    rng = rng_for("rope", n_heads, n_kv_heads, head_dim, rotary_dim, style)
    for pos in (0, 1, 37, 4095):
        q = (rng.standard_normal((n_heads, head_dim)) * 3).astype(np.float32)
        k = (rng.standard_normal((n_kv_heads, head_dim)) * 3).astype(np.float32)
        cos, sin = rope_tables(pos, rotary_dim)
        q2, k2 = C.rope(q, k, cos, sin, rotary_dim, style)
        for got, x in ((q2, q), (k2, k)):
            assert got.shape == x.shape
            want = ref.rope(x, cos, sin, rotary_dim, style)
            if x.size:
                assert np.abs(got - want).max() <= bound("rope", "cuda", x=x)
            np.testing.assert_array_equal(got[:, rotary_dim:], x[:, rotary_dim:])
        if pos == 37:  # the style matters: the other pairing is far off
            other = "interleaved" if style == "neox" else "neox"
            assert np.abs(q2 - ref.rope(q, cos, sin, rotary_dim, other)).max() > 1e-2


ACTIVATION_EDGES = [-20.0, -5.0, -1e-8, 0.0, 3e-8, 5.0, 20.0]


@gpu
@pytest.mark.parametrize("kind", ["swiglu", "geglu", "gelu_tanh", "gelu_erf"])
@pytest.mark.parametrize("n", [1, 7, 256, 1001, 14336])
def test_cuda_activation(kind, n):
    rng = rng_for("activation", kind, n)
    gate = np.concatenate([rng.standard_normal(n) * 4, ACTIVATION_EDGES])[:n].astype(np.float32)
    gate[: min(n, len(ACTIVATION_EDGES))] = ACTIVATION_EDGES[: min(n, len(ACTIVATION_EDGES))]
    up = (rng.standard_normal(n) * 2).astype(np.float32)
    gated = kind in ("swiglu", "geglu")
    out32, out16 = C.activation(kind, gate, up if gated else None)
    assert out32.shape == (n,) and np.isfinite(out32).all() and np.isfinite(out16).all()
    if kind == "swiglu":
        want = ref.swiglu(gate, up)
        tol = swiglu_bound(want, gate, up, "cuda")
    elif kind == "geglu":
        want = ref.geglu(gate, up)
        tol = geglu_bound(want, gate, up, "cuda")
    elif kind == "gelu_tanh":
        want = ref.gelu_tanh(gate)
        tol = geglu_bound(want, gate, np.ones(n), "cuda")
    else:
        want = ref.gelu_erf(gate)
        # erfc(-x/sqrt 2): rounding x/sqrt(2) to float32 moves it by a relative 2 z^2 eps (test_kernels.py)
        tol = TOLERANCES[("gelu_erf", "cuda")] * EPS32 * (1 + gate.astype(np.float64) ** 2) * np.abs(want) + 1e-37
    bad = np.flatnonzero(np.abs(out32 - want) > tol)
    assert bad.size == 0, f"{kind}: x={gate[bad[:5]]} got {out32[bad[:5]]} want {want[bad[:5]]}"
    assert_f16_of(out16, out32)


# Attention: (n_heads, n_kv_heads, head_dim) for GQA ratios 1, 3, 4, 8 and head_dim 64/80/128/256,
# and position ranges [kv_begin, kv_end) around the chunk size (256): 1, 255, 256, 257, 3000
# positions from 0, and sliding windows that start past 0 (the cache holds random rows beyond
# kv_end and before kv_begin, so reading outside the range changes the result).
ATTN_SHAPES = [(1, 1, 64), (4, 4, 80), (9, 3, 64), (8, 2, 128), (8, 1, 256), (16, 2, 64)]
ATTN_RANGES = [(0, 1), (0, 255), (0, 256), (0, 257), (0, 3000), (700, 1212), (2488, 3000), (5, 6), (1, 2999)]
ATTN_MAX_SEQ = 3001


def kv_cache(rng: np.random.Generator, n_kv_heads: int, head_dim: int) -> np.ndarray:
    return rng.standard_normal((n_kv_heads, ATTN_MAX_SEQ, head_dim)).astype(np.float16)


def attention_reference(q, k_cache, v_cache, b, e, scale, softcap=0.0, slopes=None):
    """Per query head: the numpy reference over the fp16 values the cache holds, KV head h // group."""
    group = q.shape[0] // k_cache.shape[0]
    out = np.empty(q.shape, np.float64)
    for h in range(q.shape[0]):
        slope = np.float32(slopes[h]) if slopes is not None else 0.0
        out[h] = ref.attention(q[h], k_cache[h // group, b:e], v_cache[h // group, b:e], np.float32(scale),
                               softcap=softcap, alibi_slope=slope)
    return out


def attention_tolerance(q, k_cache, v_cache, b, e, scale, slopes=None) -> np.ndarray:
    """bound('attention', 'cuda') per query head."""
    group = q.shape[0] // k_cache.shape[0]
    return np.array([
        bound("attention", "cuda", q=q[h], k=k_cache[h // group, b:e], v=v_cache[h // group, b:e], scale=scale,
              n_pos=e - b, alibi_slope=0.0 if slopes is None else float(slopes[h]))
        for h in range(q.shape[0])
    ])


def check_attention(got, want, tol, what: str) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.isfinite(got).all(), f"{what}: output not fully written"
    err = np.abs(got - want).max(axis=1)
    assert np.all(err <= tol), f"{what}: per-head error {err.max():.3g} > {tol[np.argmax(err / tol)]:.3g}"


@gpu
@pytest.mark.parametrize("n_heads,n_kv_heads,head_dim", ATTN_SHAPES)
def test_cuda_attention(n_heads, n_kv_heads, head_dim):
    rng = rng_for("attention", n_heads, n_kv_heads, head_dim)
    k_cache, v_cache = kv_cache(rng, n_kv_heads, head_dim), kv_cache(rng, n_kv_heads, head_dim)
    scale = 1.0 / math.sqrt(head_dim)
    for b, e in ATTN_RANGES:
        for q_scale in (1.0, 4.0):  # 4: a peaked softmax
            q = (rng.standard_normal((n_heads, head_dim)) * q_scale).astype(np.float32)
            got = C.attention(q, k_cache, v_cache, b, e, scale)
            want = attention_reference(q, k_cache, v_cache, b, e, scale)
            check_attention(got, want, attention_tolerance(q, k_cache, v_cache, b, e, scale),
                            f"[{b}, {e}) q_scale {q_scale}")
    # GQA: every query head reads its own KV head; pairing them with KV head 0 is far off.
    if n_kv_heads > 1:
        b, e = 0, 300
        q = rng.standard_normal((n_heads, head_dim)).astype(np.float32)
        got = C.attention(q, k_cache, v_cache, b, e, scale)
        wrong = attention_reference(q, k_cache[:1].repeat(n_kv_heads, 0), v_cache[:1].repeat(n_kv_heads, 0), b, e, scale)
        assert np.abs(got - wrong).max() > 1e-2


@gpu
@pytest.mark.parametrize("n_heads,n_kv_heads,head_dim", [(4, 1, 256), (8, 2, 64)])
def test_cuda_attention_softcap(n_heads, n_kv_heads, head_dim):
    """Gemma 2's soft-capping, with scores far beyond the cap (q scaled up) where it matters."""
    rng = rng_for("attention-softcap", n_heads, n_kv_heads, head_dim)
    k_cache, v_cache = kv_cache(rng, n_kv_heads, head_dim), kv_cache(rng, n_kv_heads, head_dim)
    scale = 1.0 / math.sqrt(head_dim)
    for b, e in ATTN_RANGES:
        q = (rng.standard_normal((n_heads, head_dim)) * 8).astype(np.float32)
        got = C.attention(q, k_cache, v_cache, b, e, scale, softcap=5.0)
        want = attention_reference(q, k_cache, v_cache, b, e, scale, softcap=5.0)
        tol = attention_tolerance(q, k_cache, v_cache, b, e, scale)
        check_attention(got, want, tol, f"softcap [{b}, {e})")
        if e - b > 1:  # the cap matters
            assert np.abs(C.attention(q, k_cache, v_cache, b, e, scale) - want).max() > 10 * tol.max()


@gpu
@pytest.mark.parametrize("n_heads,n_kv_heads,head_dim", [(8, 8, 64), (8, 1, 128)])
def test_cuda_attention_alibi(n_heads, n_kv_heads, head_dim):
    """ALiBi with one slope per head (BLOOM's 2^(-8(h+1)/n_heads), and a negative one), the query at
    kv_end - 1; windows starting past 0; with softcap the bias comes after the cap."""
    rng = rng_for("attention-alibi", n_heads, n_kv_heads, head_dim)
    k_cache, v_cache = kv_cache(rng, n_kv_heads, head_dim), kv_cache(rng, n_kv_heads, head_dim)
    scale = 1.0 / math.sqrt(head_dim)
    slopes = (2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)).astype(np.float32)
    slopes[-1] = -0.25
    for b, e in ATTN_RANGES:
        q = rng.standard_normal((n_heads, head_dim)).astype(np.float32)
        got = C.attention(q, k_cache, v_cache, b, e, scale, alibi_slopes=slopes)
        want = attention_reference(q, k_cache, v_cache, b, e, scale, slopes=slopes)
        tol = attention_tolerance(q, k_cache, v_cache, b, e, scale, slopes)
        check_attention(got, want, tol, f"alibi [{b}, {e})")
        if e - b > 8:  # the bias matters, per head (head 0 has slope 0.5)
            assert np.abs(C.attention(q, k_cache, v_cache, b, e, scale)[0] - want[0]).max() > 10 * tol[0]
            assert np.abs(C.attention(q, k_cache, v_cache, b, e, scale, alibi_slopes=-slopes)[0] - want[0]).max() > 10 * tol[0]
        q8 = q * 8
        got = C.attention(q8, k_cache, v_cache, b, e, scale, softcap=3.0, alibi_slopes=slopes)
        want = attention_reference(q8, k_cache, v_cache, b, e, scale, softcap=3.0, slopes=slopes)
        check_attention(got, want, attention_tolerance(q8, k_cache, v_cache, b, e, scale, slopes), f"alibi+softcap [{b}, {e})")


@gpu
def test_cuda_attention_fresh_inputs_each_call():
    """Different inputs on the same shapes give different, correct results (no stale scratch)."""
    rng = rng_for("attention-fresh")
    results = []
    for _ in range(3):
        k_cache, v_cache = kv_cache(rng, 2, 64), kv_cache(rng, 2, 64)
        q = rng.standard_normal((4, 64)).astype(np.float32)
        got = C.attention(q, k_cache, v_cache, 0, 1000, 0.125)
        check_attention(got, attention_reference(q, k_cache, v_cache, 0, 1000, 0.125),
                        attention_tolerance(q, k_cache, v_cache, 0, 1000, 0.125), "fresh")
        results.append(got)
    assert not np.array_equal(results[0], results[1])


@gpu
@pytest.mark.parametrize("n_kv_heads,head_dim", [(1, 256), (3, 64), (8, 80)])
def test_cuda_kv_append(n_kv_heads, head_dim):
    """This token's k and v land at position pos, rounded to fp16 like numpy; nothing else changes."""
    rng = rng_for("kv_append", n_kv_heads, head_dim)
    max_seq = 37
    for pos in (0, 17, max_seq - 1):
        k_cache = rng.standard_normal((n_kv_heads, max_seq, head_dim)).astype(np.float16)
        v_cache = rng.standard_normal((n_kv_heads, max_seq, head_dim)).astype(np.float16)
        k = (rng.standard_normal((n_kv_heads, head_dim)) * 100).astype(np.float32)
        v = (rng.standard_normal((n_kv_heads, head_dim)) * 1e-3).astype(np.float32)
        k2, v2 = C.kv_append(k, v, k_cache, v_cache, pos)
        for got, cache, x in ((k2, k_cache, k), (v2, v_cache, v)):
            want = cache.copy()
            want[:, pos, :] = x.astype(np.float16)
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@gpu
def test_cuda_decode_step_matches_reference():
    """kv_append then attention over the positions written so far, as one decode step uses them."""
    rng = rng_for("decode-step")
    n_heads, n_kv_heads, head_dim, max_seq = 4, 2, 64, 600
    k_cache = np.zeros((n_kv_heads, max_seq, head_dim), np.float16)
    v_cache = np.zeros_like(k_cache)
    k_rows = rng.standard_normal((max_seq, n_kv_heads, head_dim)).astype(np.float32)
    v_rows = rng.standard_normal((max_seq, n_kv_heads, head_dim)).astype(np.float32)
    k_cache[:, :299] = k_rows[:299].transpose(1, 0, 2)
    v_cache[:, :299] = v_rows[:299].transpose(1, 0, 2)
    k_cache, v_cache = C.kv_append(k_rows[299], v_rows[299], k_cache, v_cache, 299)
    q = rng.standard_normal((n_heads, head_dim)).astype(np.float32)
    got = C.attention(q, k_cache, v_cache, 0, 300, 0.125)
    k_val = k_rows[:300].transpose(1, 0, 2).astype(np.float16)
    v_val = v_rows[:300].transpose(1, 0, 2).astype(np.float16)
    check_attention(got, attention_reference(q, k_val, v_val, 0, 300, 0.125),
                    attention_tolerance(q, k_val, v_val, 0, 300, 0.125), "decode step")


# ---- sampling ---------------------------------------------------------------------------------
#
# The rule (kernels/include/slm/kernels/cuda.h, sample_top_k_top_p) in float64 numpy. The GPU's
# weights carry expf's rounding, so a case whose cumulative weight lies within that rounding of a
# threshold (the top-p floor, the min-p cut, the drawn position) could go either way: such cases
# are recognised by their margin and left out, and the tests assert that they are rare.

SAMPLE_VOCABS = [1, 7, 1000, 32000, 50257, 151936, 262144]
SAMPLE_PARAMS = [  # (temperature, top_k, top_p, min_p)
    (1.0, -1, 1.0, 0.0),
    (0.7, 50, 1.0, 0.0),
    (1.0, -1, 0.9, 0.0),
    (0.8, 40, 0.95, 0.0),
    (1.3, 1, 1.0, 0.0),
    (1.0, -1, 1.0, 0.05),
    (0.5, 1000, 0.5, 0.01),
    (2.0, -1, 0.99, 0.0),
]
SAMPLE_US = [0.0, 0.1234, 0.5, 0.8765, 0.97]
# Relative to the total weight. The kernel's weights are float32 expf values (within 2 ulp, a
# relative 2.4e-7, of the exact exp of the same float32 argument) summed in float64, so no sum is
# off by more than 2.4e-7 of the total.
SAMPLE_MARGIN = 1e-6


def sample_logits(vocab: int, kind: str, seed) -> np.ndarray:
    """Random logits shaped like a language model's: a broad base and a few strong candidates.
    'ties' rounds them to multiples of 1/4, so many values tie (at the top-k threshold too)."""
    rng = rng_for("logits", vocab, kind, seed)
    x = rng.standard_normal(vocab) * 2.0
    x[rng.integers(0, vocab, size=min(vocab, 20))] += 8.0
    if kind == "ties":
        x = np.round(x * 4) / 4
    return x.astype(np.float32)


def sample_rule(x: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float, u: float):
    """(token, margin): the token by the rule, and how far (relative to the total weight) the
    decisive sums lie from their thresholds (inf where nothing is close)."""
    x = np.asarray(x, np.float32)
    inv_t = np.float32(1.0 / temperature)
    top_p, min_p, u = (float(np.float32(v)) for v in (top_p, min_p, u))  # the kernel's float32 parameters
    m = x.max()
    keep = np.ones(x.size, bool)
    if 0 < top_k < x.size:
        keep = x >= np.sort(x)[x.size - top_k]
    w = np.where(keep, np.exp(((x - m) * inv_t).astype(np.float64)), 0.0)
    margin = np.inf
    if top_p < 1.0:
        total = w.sum()
        target = top_p * total
        values, which = np.unique(w[w > 0], return_inverse=True)
        values = values[::-1]  # distinct weights, largest first
        mass = np.cumsum(np.bincount(which, weights=w[w > 0])[::-1])  # sum of the weights >= each value
        i = min(int(np.searchsorted(mass, target, side="left")), values.size - 1)
        floor = values[i]
        margin = min(margin, (mass[i] - target) / total)
        if i > 0:
            margin = min(margin, (target - mass[i - 1]) / total)
        w = np.where(w >= floor, w, 0.0)
    if min_p > 0.0:
        near = w[w > 0]
        margin = min(margin, float(np.abs(near - min_p).min()) / min_p)
        w = np.where(w >= min_p, w, 0.0)
    cumulative = np.cumsum(w)
    total = cumulative[-1]
    target = u * total
    token = int(np.searchsorted(cumulative, target, side="right"))
    if token >= x.size or w[token] <= 0:
        token = int(np.flatnonzero(w > 0)[-1])
    if target > 0:  # (with u = 0 the first positive weight is taken, exactly)
        margin = min(margin, (cumulative[token] - target) / total)
        margin = min(margin, (target - (cumulative[token] - w[token])) / total)
    return token, margin


def sample_cases(vocabs=SAMPLE_VOCABS):
    """Every (vocab, logits kind, params, u) case with its expected token and margin."""
    for vocab in vocabs:
        for kind in ("smooth", "ties"):
            x = sample_logits(vocab, kind, 0)
            for params in SAMPLE_PARAMS:
                for u in SAMPLE_US:
                    token, margin = sample_rule(x, *params, u)
                    yield vocab, kind, x, params, u, token, margin


def test_sample_rule_is_the_cpu_samplers():
    """The documented rule picks the CPU sampler's token for the same u (runs without a GPU)."""
    from slmcore.sampling import SamplingParams, Sampler, _draw

    n, clear = 0, 0
    for vocab, kind, x, (t, k, p, mp), u, token, margin in sample_cases():
        n += 1
        if margin < SAMPLE_MARGIN:
            continue
        clear += 1
        s = Sampler(SamplingParams(temperature=t, top_k=k, top_p=p, min_p=mp, seed=0))
        ids, weights = s._filtered_weights(s.penalised(x))
        i = _draw(weights, u)
        cpu = int(ids[i]) if ids is not None else i
        assert cpu == token, f"vocab {vocab} {kind} T={t} k={k} p={p} min_p={mp} u={u}: cpu {cpu}, rule {token}"
    assert clear >= 0.9 * n, f"only {clear} of {n} cases are clear of rounding"


@gpu
@pytest.mark.parametrize("vocab", SAMPLE_VOCABS)
def test_cuda_sample_matches_rule(vocab):
    checked = 0
    for _, kind, x, (t, k, p, mp), u, token, margin in sample_cases([vocab]):
        if margin < SAMPLE_MARGIN:
            continue
        got = C.sample(x, t, k, p, mp, u)
        assert got == token, f"vocab {vocab} {kind} T={t} k={k} p={p} min_p={mp} u={u}: got {got}, want {token}"
        checked += 1
    # broad top-p nuclei of the largest vocabularies put a few cases within rounding of the floor
    assert checked >= 0.75 * 2 * len(SAMPLE_PARAMS) * len(SAMPLE_US)


@gpu
def test_cuda_sample_filters_hold():
    """With many draws: every token is inside the top-k set (ties included) and the top-p nucleus,
    and the draws cover the nucleus in proportion to the weights."""
    x = sample_logits(50257, "ties", 1)
    descending = np.sort(x)[::-1]
    k = 40 + int(np.flatnonzero(descending[40:] == descending[39:-1])[0])  # a k whose k-th value is tied
    allowed = np.flatnonzero(x >= descending[k - 1])
    assert allowed.size > k  # ties at the threshold stay in
    us = (np.arange(400) + 0.5) / 400
    got = np.array([C.sample(x, 1.0, k, 1.0, 0.0, float(u)) for u in us])
    assert np.isin(got, allowed).all()
    assert np.isin(allowed[x[allowed] == descending[k - 1]], got).any()  # the tied ones are drawn too
    want = np.array([sample_rule(x, 1.0, k, 1.0, 0.0, float(u))[0] for u in us])
    assert np.mean(got == want) >= 0.99  # draws at a rounding boundary may differ
    # top_k=1 and a tiny top_p are the argmax
    assert C.sample(x, 0.9, 1, 1.0, 0.0, 0.7) == int(np.argmax(x))
    assert C.sample(x, 0.9, -1, 1e-6, 0.0, 0.7) == int(np.argmax(x))


@gpu
@pytest.mark.parametrize("vocab", SAMPLE_VOCABS)
def test_cuda_sample_argmax(vocab):
    rng = rng_for("argmax", vocab)
    for trial in range(4):
        x = (rng.standard_normal(vocab) * 3).astype(np.float32)
        if trial == 1 and vocab > 3:  # tied maxima: the lowest index wins
            at = np.sort(rng.choice(vocab, size=3, replace=False))
            x[at] = x.max() + 1
        if trial == 2:
            x[-1] = x.max() + 1  # the very last element
        if trial == 3 and vocab > 2:
            x[: vocab // 2] = -np.inf  # -inf logits are allowed
        assert C.sample_argmax(x) == int(np.argmax(x))


@gpu
def test_cuda_sampling_non_finite_logits_raise():
    x = np.zeros(1000, np.float32)
    for value, at in ((np.nan, 999), (np.nan, 0), (np.inf, 5)):
        y = x.copy()
        y[at] = value
        with pytest.raises(slmcore.NumericalError):
            C.sample_argmax(y)
        with pytest.raises(slmcore.NumericalError):
            C.sample(y, 1.0, 10, 0.9, 0.0, 0.5)
    with pytest.raises(slmcore.NumericalError):
        C.sample_argmax(np.full(10, -np.inf, np.float32))
    with pytest.raises(slmcore.NumericalError):
        C.sample(np.full(10, -np.inf, np.float32), 1.0, -1, 1.0, 0.0, 0.5)


# ---- argument checks (run everywhere: the bindings validate before touching a device) ---------


def f32(*shape):
    return np.zeros(shape, np.float32)


def f16(*shape):
    return np.zeros(shape, np.float16)


BAD_CALLS = {
    "rms_norm w length": lambda: C.rms_norm(f32(2, 8), f32(7), 1e-5),
    "rms_norm x 1-D": lambda: C.rms_norm(f32(8), f32(8), 1e-5),
    "rms_norm x float64": lambda: C.rms_norm(np.zeros((2, 8)), f32(8), 1e-5),
    "rms_norm no rows": lambda: C.rms_norm(f32(0, 8), f32(8), 1e-5),
    "rms_norm negative eps": lambda: C.rms_norm(f32(2, 8), f32(8), -1.0),
    "layer_norm b length": lambda: C.layer_norm(f32(2, 8), f32(8), f32(9), 1e-5),
    "layer_norm w float16": lambda: C.layer_norm(f32(2, 8), f16(8), f32(8), 1e-5),
    "rope odd rotary_dim": lambda: C.rope(f32(2, 64), f32(1, 64), f32(15), f32(15), 31),
    "rope rotary_dim > head_dim": lambda: C.rope(f32(2, 64), f32(1, 64), f32(33), f32(33), 66),
    "rope cos length": lambda: C.rope(f32(2, 64), f32(1, 64), f32(31), f32(32), 64),
    "rope k head_dim": lambda: C.rope(f32(2, 64), f32(1, 32), f32(32), f32(32), 64),
    "rope style": lambda: C.rope(f32(2, 64), f32(1, 64), f32(32), f32(32), 64, "gptj"),
    "activation kind": lambda: C.activation("relu", f32(8), f32(8)),
    "activation gated without up": lambda: C.activation("swiglu", f32(8)),
    "activation plain with up": lambda: C.activation("gelu_tanh", f32(8), f32(8)),
    "activation up length": lambda: C.activation("geglu", f32(8), f32(9)),
    "activation 2-D gate": lambda: C.activation("gelu_erf", f32(2, 4)),
    "attention cache float32": lambda: C.attention(f32(4, 64), f32(2, 10, 64), f32(2, 10, 64), 0, 5, 0.1),
    "attention k/v shapes": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 11, 64), 0, 5, 0.1),
    "attention head_dim": lambda: C.attention(f32(4, 32), f16(2, 10, 64), f16(2, 10, 64), 0, 5, 0.1),
    "attention GQA ratio": lambda: C.attention(f32(3, 64), f16(2, 10, 64), f16(2, 10, 64), 0, 5, 0.1),
    "attention head_dim > 256": lambda: C.attention(f32(2, 320), f16(2, 10, 320), f16(2, 10, 320), 0, 5, 0.1),
    "attention empty range": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), 5, 5, 0.1),
    "attention range past cache": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), 0, 11, 0.1),
    "attention negative begin": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), -1, 5, 0.1),
    "attention softcap": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), 0, 5, 0.1, softcap=-1.0),
    "attention slopes length": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), 0, 5, 0.1,
                                                   alibi_slopes=f32(2)),
    "kv_append pos": lambda: C.kv_append(f32(2, 64), f32(2, 64), f16(2, 10, 64), f16(2, 10, 64), 10),
    "kv_append k shape": lambda: C.kv_append(f32(3, 64), f32(3, 64), f16(2, 10, 64), f16(2, 10, 64), 0),
    "kv_append v shape": lambda: C.kv_append(f32(2, 64), f32(2, 32), f16(2, 10, 64), f16(2, 10, 64), 0),
    "kv_append cache dtype": lambda: C.kv_append(f32(2, 64), f32(2, 64), f32(2, 10, 64), f32(2, 10, 64), 0),
    "sample_argmax empty": lambda: C.sample_argmax(f32(0)),
    "sample_argmax float64": lambda: C.sample_argmax(np.zeros(8)),
    "sample 2-D logits": lambda: C.sample(f32(2, 8), 1.0, -1, 1.0, 0.0, 0.5),
    "sample temperature 0": lambda: C.sample(f32(8), 0.0, -1, 1.0, 0.0, 0.5),
    "sample top_p 0": lambda: C.sample(f32(8), 1.0, -1, 0.0, 0.0, 0.5),
    "sample top_p > 1": lambda: C.sample(f32(8), 1.0, -1, 1.5, 0.0, 0.5),
    "sample min_p": lambda: C.sample(f32(8), 1.0, -1, 1.0, -0.1, 0.5),
    "sample u 1": lambda: C.sample(f32(8), 1.0, -1, 1.0, 0.0, 1.0),
    "sample u negative": lambda: C.sample(f32(8), 1.0, -1, 1.0, 0.0, -0.1),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_cuda_decode_argument_checks(case):
    with pytest.raises(slmcore.InvalidArgumentError):
        BAD_CALLS[case]()


GOOD_CALLS = {
    "rms_norm": lambda: C.rms_norm(f32(2, 8), f32(8), 1e-5),
    "layer_norm": lambda: C.layer_norm(f32(2, 8), f32(8), f32(8), 1e-5),
    "rope": lambda: C.rope(f32(2, 64), f32(1, 64), f32(32), f32(32), 64, "interleaved"),
    "activation": lambda: C.activation("swiglu", f32(8), f32(8)),
    "attention": lambda: C.attention(f32(4, 64), f16(2, 10, 64), f16(2, 10, 64), 0, 5, 0.1, 0.0, f32(4)),
    "kv_append": lambda: C.kv_append(f32(2, 64), f32(2, 64), f16(2, 10, 64), f16(2, 10, 64), 3),
    "sample_argmax": lambda: C.sample_argmax(f32(8)),
    "sample": lambda: C.sample(f32(8), 0.8, 3, 0.9, 0.0, 0.5),
}


@pytest.mark.skipif(HAVE_GPU, reason="a GPU is present")
@pytest.mark.parametrize("case", sorted(GOOD_CALLS))
def test_cuda_decode_without_gpu_raises_device_unavailable(case):
    with pytest.raises(slmcore.DeviceUnavailableError):
        GOOD_CALLS[case]()
# --- the CUDA engine: whole models ----------------------------------------------------------------


def test_cuda_needs_int4(tiny_model):
    if not HAVE_GPU:
        pytest.skip("no CUDA device")
    with pytest.raises(slmcore.InvalidArgumentError, match="quant='int4'"):
        slmcore.LLM(tiny_model(), device="cuda")
    with pytest.raises(slmcore.InvalidArgumentError, match="float16"):
        slmcore.LLM(tiny_model(), device="cuda", quant="int4", kv_dtype="float32")


CUDA_LOOSE = 0.05  # fp16 activations into the int4 GEMVs; the CPU's int8 blocks are held to 0.1


@gpu
@pytest.mark.parametrize("case_id", FAMILY_CASES)
def test_cuda_engine_matches_the_float_model_on_the_same_weights(models, monkeypatch, case_id):
    """Every attention family on the GPU against the CPU engine in float32 on the dequantized
    weights of the same int4 model (the CPU float engine matches transformers to 1e-4)."""
    captured = Captured(monkeypatch)
    with slmcore.LLM(models(case_id), quant="int4", group_size=32, device="cuda") as llm:
        assert llm.device == "cuda:0"
        ours = llm.logits(SEQ)
        graph, config, weights = captured.calls[-1]
        llm._engine.reset()
        steps = [llm._engine.forward(np.asarray(SEQ[:5]), "all")]
        steps += [llm._engine.forward(np.asarray([t]), "all") for t in SEQ[5:]]
        np.testing.assert_array_equal(np.concatenate(steps), ours)  # decode == the full call
    config = dict(config, kv_dtype="float32")
    ref = _core.Engine(graph, config, dequantized(weights)).forward(np.asarray(SEQ), "all")
    assert np.all(np.isfinite(ours))
    err = logits_error(ours, ref)
    print(f"CUDA {case_id}: max {err.max():.4f} mean {err.mean():.4f}")
    assert err.max() <= CUDA_LOOSE, err


@gpu
def test_cuda_generate_is_greedy_over_its_logits(models):
    with slmcore.LLM(models("qwen3-qk-norm-bias"), quant="int4", device="cuda") as llm:
        out = llm.generate([SEQ[:6]], slmcore.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
        full = llm.logits(SEQ[:6] + out.token_ids[:-1])
    np.testing.assert_array_equal(full[5:].argmax(axis=1), out.token_ids)


@gpu
@pytest.mark.parametrize("case_id", ["llama-tied", "gemma3", "mistral-window"])
def test_cuda_graph_replay_equals_launching_kernel_by_kernel(models, monkeypatch, case_id):
    """The captured decode step (kernels reading the position from device memory, attention over
    the widest grid with empty chunks) against the same kernels launched one by one with host
    positions: the same arithmetic, so the same bits."""
    ids = SEQ + SEQ[::-1]  # longer than mistral-window's window
    with slmcore.LLM(models(case_id), quant="int4", device="cuda") as llm:
        graphed = llm.logits(ids)
        llm._engine.reset()
        llm._engine.forward(np.asarray(ids[:7]), "none")
        tail = [llm._engine.forward(np.asarray([t]), "last") for t in ids[7:]]
    monkeypatch.setenv("SLM_CUDA_GRAPHS", "0")
    with slmcore.LLM(models(case_id), quant="int4", device="cuda") as llm:
        launched = llm.logits(ids)
    np.testing.assert_array_equal(np.stack(tail), graphed[7:])
    np.testing.assert_array_equal(graphed, launched)
