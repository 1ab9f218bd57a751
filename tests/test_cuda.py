"""The CUDA backend: build switch, device discovery and the CUDA kernels against the numpy reference.

Tests that need a GPU skip where `_core.cuda.device_count()` is 0 (CI has none); they run on a
machine with a GPU (see benchmarks/bench_cuda.py for the timings). The rest run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

import slmcore
from slmcore import _core
from slmcore.reference import quant as rq

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
