"""The C++ symmetric int4 quantizer (kernels/cpu/int4_quantize.inc) on every ISA against its numpy
definition, slmcore/reference/quant.py's quantize_int4_sym: bit for bit, codes and scales.

Inputs: odd shapes (in_features not a multiple of G, so a zero-padded last group), rows of very
different magnitudes, all-zero groups, signed zeros, values on the rounding ties of their grid,
groups where two elements share the largest magnitude with opposite signs, tiny (subnormal-scale)
and huge (near the float16 limit) groups, with and without the search and its clipping factors.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import slmcore
from slmcore import quant as production
from slmcore._core import kernels as K
from slmcore.reference import quant as Q

ISAS = K.available_isas()
GROUPS = [32, 64, 128]


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def awkward_weights(rng, rows: int, in_features: int, group_size: int) -> np.ndarray:
    w = rng.standard_normal((rows, in_features)).astype(np.float32)
    w *= np.exp2(rng.integers(-20, 12, (rows, 1))).astype(np.float32)
    w[0, : min(group_size, in_features)] = 0.0  # an all-zero group
    if rows > 1:
        w[1, :3] = [-0.0, 0.0, -0.0]
    if rows > 2:  # every element on a tie of the grid absmax / 7: k + 1/2 steps
        w[2] = (rng.integers(-7, 7, in_features) + 0.5).astype(np.float32) * np.float32(0.25)
        w[2, 0] = 7 * 0.25
    if rows > 3:  # the largest magnitude twice, negative first
        w[3, 1], w[3, 5] = -3.0, 3.0
    if rows > 4:  # tiny groups: scales in float16's subnormal range or flushed to zero
        w[4] = rng.standard_normal(in_features).astype(np.float32) * np.float32(1e-7)
    if rows > 5:  # near the largest float16 scale
        w[5] = rng.uniform(-1, 1, in_features).astype(np.float32) * np.float32(65504 * 7 * 0.999)
    return w


def reference(w, group_size, search, factors=()):
    qweight, scales = Q.quantize_int4_sym(w, group_size, search, factors)
    return qweight, scales.view(np.uint16)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("in_features", [31, 100, 257, 576])
@pytest.mark.parametrize("search", [False, True])
def test_int4_quantize_sym_bit_exact(isa, group_size, in_features, search):
    w = awkward_weights(rng_for(group_size, in_features), 23, in_features, group_size)
    q, s, stop_row, stop_col = K.int4_quantize_sym(isa, w, group_size, search, [], 2, 1)
    want_q, want_s = reference(w, group_size, search)
    assert (stop_row, stop_col) == (-1, -1)
    assert q.dtype == np.uint8 and s.dtype == np.float16
    assert np.array_equal(q, want_q)
    assert np.array_equal(s.view(np.uint16), want_s)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_quantize_sym_factors_and_refits(isa):
    w = awkward_weights(rng_for("factors"), 17, 200, 32)
    for factors, rounds in [((0.97, 0.94, 0.91), 2), ((0.9,), 0), ((), 5)]:
        q, s, _, _ = K.int4_quantize_sym(isa, w, 32, True, list(factors), rounds, 2)
        want_q, want_s = Q.quantize_int4_sym(w, 32, True, factors, rounds)
        assert np.array_equal(q, want_q) and np.array_equal(s, want_s), (factors, rounds)


def test_int4_quantize_sym_threads_and_isas_agree():
    w = awkward_weights(rng_for("threads"), 41, 300, 64)
    results = [K.int4_quantize_sym(isa, w, 64, True, [], 2, threads) for isa in ISAS for threads in (1, 2, 5, 64)]
    for q, s, _, _ in results[1:]:
        assert np.array_equal(q, results[0][0]) and np.array_equal(s, results[0][1])


def test_reference_search_is_round_to_nearest_without_search():
    """The definition without the search is the plain round-to-nearest quantizer of the reference."""
    w = awkward_weights(rng_for("rtn"), 9, 100, 32)
    q, s = Q.quantize_int4_sym(w, 32, search=False)
    want_q, want_s, _ = Q.quantize_int4(w, 32, sym=True)
    assert np.array_equal(q, want_q) and np.array_equal(s, want_s)


def test_reference_search_never_worse_than_round_to_nearest():
    w = rng_for("never-worse").standard_normal((64, 256)).astype(np.float32)

    def group_errors(qweight, scales):
        deq = Q.dequantize_int4(qweight, scales, None, 32)
        return ((deq - w.astype(np.float64)) ** 2).reshape(64, -1, 32).sum(axis=-1)

    rtn = group_errors(*Q.quantize_int4_sym(w, 32, search=False))
    searched = group_errors(*Q.quantize_int4_sym(w, 32, search=True))
    assert np.all(searched <= rtn * (1 + 1e-12))
    assert np.mean(searched) < 0.9 * np.mean(rtn)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_quantize_sym_overflow_row(isa):
    w = np.ones((6, 64), np.float32)
    w[4, 10] = 65504 * 7 * 1.01  # absmax / 7 rounds to float16 infinity
    _, _, stop_row, stop_col = K.int4_quantize_sym(isa, w, 32, True, [], 2, 3)
    assert (stop_row, stop_col) == (4, -1)
    with pytest.raises(slmcore.InvalidArgumentError, match="exceed what a float16 scale"):
        production.quantize_int4(w, 32)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_quantize_sym_reads_16_bit_rows(isa):
    """float16 and bfloat16 rows are quantized as their exact float32 values."""
    w = awkward_weights(rng_for("16-bit"), 9, 100, 32)
    w[5] /= 8  # keep the near-limit row inside float16's range
    half = w.astype(np.float16)
    bf16 = (w.view(np.uint32) >> 16).astype(np.uint16)
    for stored, dtype, widened in [
        (half, None, half.astype(np.float32)),
        (bf16, "bfloat16", (bf16.astype(np.uint32) << 16).view(np.float32)),
    ]:
        q, s, stop_row, _ = K.int4_quantize_sym(isa, stored, 32, True, [], 2, 2, dtype)
        want_q, want_s = reference(widened, 32, True)
        assert stop_row == -1
        assert np.array_equal(q, want_q) and np.array_equal(s.view(np.uint16), want_s), dtype


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_int4_quantize_sym_stops_at_nonfinite(isa, bad):
    w = np.ones((7, 70), np.float32)
    w[5, 66] = bad
    w[6, 3] = bad
    _, _, stop_row, stop_col = K.int4_quantize_sym(isa, w, 32, True, [], 2, 2)
    assert (stop_row, stop_col) == (5, 66)
    bf16 = (w.view(np.uint32) >> 16).astype(np.uint16)
    assert K.int4_quantize_sym(isa, bf16, 32, True, [], 2, 1, "bfloat16")[2:] == (5, 66)
    with pytest.raises(slmcore.InvalidArgumentError, match=r"element \[5, 66\]"):
        production.quantize_int4(bf16, 32, dtype="bfloat16")


def test_int4_quantize_sym_argument_checks():
    w = np.ones((4, 64), np.float32)
    bad = [
        (w.astype(np.float64), 32),  # not float32 / float16
        (w.view(np.uint32), 32),  # integers without dtype="bfloat16"
        (w[:, ::2], 32),  # not contiguous
        (np.ones(64, np.float32), 32),  # not 2-D
        (np.ones((0, 64), np.float32), 32),  # empty
        (w, 48),  # group size
    ]
    for array, group_size in bad:
        with pytest.raises(slmcore.InvalidArgumentError):
            K.int4_quantize_sym("auto", array, group_size, True, [], 2, 1)
    for rounds, threads in [(-1, 1), (2, 0)]:
        with pytest.raises(slmcore.InvalidArgumentError):
            K.int4_quantize_sym("auto", w, 32, True, [], rounds, threads)
    with pytest.raises(slmcore.InvalidArgumentError):
        K.int4_quantize_sym("auto", w, 32, True, [], 2, 1, "bfloat16")  # float32 named bfloat16
    with pytest.raises(slmcore.InvalidArgumentError, match="threads"):
        production.quantize_int4(w, 32, threads=0)


def test_production_quantizer_is_the_definition():
    """slmcore.quant.quantize_int4 (symmetric) = the reference definition, whatever its row blocks."""
    w = awkward_weights(rng_for("production"), 70, 130, 32)
    for search in (False, True):
        want_q, want_s = Q.quantize_int4_sym(w, 32, search, production.SYM_SEARCH_FACTORS, production.REFIT_ROUNDS)
        for stored in (w, w.astype(np.float64), np.asfortranarray(w)):
            t = production.quantize_int4(stored, 32, sym=True, search=search, threads=2)
            assert np.array_equal(t.qweight, want_q) and np.array_equal(t.scales, want_s)
