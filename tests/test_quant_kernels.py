"""Quantized CPU kernels (slm/kernels/quant.h) on every ISA against slmcore/reference/quant.py.

- activation quantization: bit for bit (halfway cases, zero blocks, subnormal blocks, padding);
- the packed int4 layout: byte for byte against a numpy spelling of quant.h's description;
- int4 matmul (sym/asym, G = 32/64/128) and int8-row matmul: within tests/tolerances.py of the
  float64 reference (integer sums are exact, only the float32 scaling differs), and exactly equal
  where every scale is a power of two (then all float32 arithmetic is exact);
- bitwise invariants: one token at a time, odd token batches and odd row splits give the same bits.
Shapes cross the 16-row tiles (n_out 1, 7, 13, 29), the groups (in_features 33, 100, 576 with G=128
-> 5 groups) and the GEMM token tiles and blocks (70 tokens).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import slmcore
from slmcore._core import kernels as K
from slmcore.reference import quant as Q
from tolerances import TOLERANCES, quant_matmul_bound

ISAS = K.available_isas()
GROUPS = [32, 64, 128]
IN_FEATURES = [33, 100, 576]
N_OUT = [1, 7, 13, 29]
N_TOKENS = [1, 2, 7, 70]


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def misaligned(a: np.ndarray, offset: int) -> np.ndarray:
    a = np.ascontiguousarray(a)
    buf = bytes(offset) + a.tobytes()
    return np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=offset).reshape(a.shape)


def activations(rng, n_tokens, in_features):
    """Rows of varied magnitude, with an all-zero block and a few outliers."""
    x = rng.standard_normal((n_tokens, in_features)).astype(np.float32)
    x *= np.exp2(rng.integers(-6, 6, (n_tokens, 1))).astype(np.float32)
    if in_features >= 64:
        x[0, 32:64] = 0.0
    x[:, rng.integers(0, in_features)] *= 20
    return x


def int4_weights(rng, n_out, in_features, group_size, sym):
    w = rng.standard_normal((n_out, in_features)).astype(np.float32) * 0.05
    w *= np.exp2(rng.integers(-3, 3, (n_out, 1))).astype(np.float32)
    if not sym:
        w += 0.02  # an offset, so that mins matter
    return Q.quantize_int4(w, group_size, sym)


def check_int4(isa, x, qw, sc, mn, group_size, packed=None, bias=None, y0=None, terms=None):
    n_out = qw.shape[0]
    in_features = x.shape[1]
    sym = mn is None
    if packed is None:
        packed = K.int4_pack(isa, qw, sc, mn, group_size, in_features)
    got = K.int4_matmul(isa, x, packed, n_out, in_features, group_size, sym, bias=bias, y=y0)
    t, abs_t = terms if terms is not None else Q.int4_terms(x, qw, sc, mn, group_size)
    want = t[: x.shape[0]].sum(axis=2)
    if bias is not None:
        want = want + bias.astype(np.float64)
    if y0 is not None:
        want = want + y0.astype(np.float64)
    tol = quant_matmul_bound("int4_matmul", "sym" if sym else "asym", abs_t[: x.shape[0]].sum(axis=2), bias, y0)
    assert got.dtype == np.float32 and got.shape == want.shape
    bad = np.abs(got - want) > tol
    assert not bad.any(), (
        f"{isa} G{group_size} {'sym' if sym else 'asym'} x{x.shape} n_out {n_out}: "
        f"{bad.sum()} outputs off, worst ratio {(np.abs(got - want) / tol).max():.3g}"
    )
    return got


# ----------------------------------------------------------------------------------------------
# activation quantization


def halfway_rows():
    """Blocks whose d is an exact power of two (amax = 127 * 2^e), so that x / d hits k + 0.5 exactly."""
    rows = []
    for e in [-3, 0, 5]:
        k = np.arange(-127, 127) + 0.5  # every halfway point in range
        vals = np.concatenate([k, [127.0, -127.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5]])
        vals = np.resize(vals, 31 * ((vals.size + 30) // 31))
        blocks = vals.reshape(-1, 31)
        blocks = np.concatenate([blocks, np.full((blocks.shape[0], 1), 127.0)], axis=1)  # amax 127
        rows.append((blocks * 2.0**e).astype(np.float32).reshape(-1))
    n = max(r.size for r in rows)
    return np.stack([np.pad(r, (0, n - r.size)) for r in rows])


def special_rows(in_features=200):
    rng = np.random.default_rng(3)
    n = 200
    x = rng.standard_normal((6, n)).astype(np.float32)
    x[0] = 0.0  # all blocks zero
    x[1, :32] = 0.0
    x[1, 32:64] = -0.0
    x[2, :32] = rng.standard_normal(32).astype(np.float32) * 1e-41  # subnormal block: d subnormal
    x[2, 32:64] = np.float32(1e-45)  # amax / 127 underflows to 0: an all-zero block
    x[2, 64:96] = rng.standard_normal(32).astype(np.float32) * 1e-43  # d with few bits: x / d beyond 127
    x[3, :32] = np.float32(3e38) * np.sign(rng.standard_normal(32)).astype(np.float32)  # near float max
    x[4] = np.nextafter(np.float32(0.5), np.float32(1)) * np.sign(rng.standard_normal(n))
    x[4, ::32] = 127.0  # d = 1: 0.50000006 -> 1 (not a tie)
    x[5] = np.where(np.arange(n) % 2, np.float32(0.49999997), -np.float32(2.5000002))
    x[5, ::32] = 127.0  # 0.49999997 -> 0, not 1
    return np.ascontiguousarray(x[:, :in_features])


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_activations_bit_exact(isa):
    rng = rng_for("quantize", isa)
    cases = [activations(rng, t, n) for t, n in [(1, 1), (2, 31), (3, 32), (7, 33), (5, 100), (70, 576), (2, 1537)]]
    cases += [halfway_rows(), special_rows(), special_rows(37)]
    for x in cases:
        for pad in [None, 64, 128]:
            in_padded = None if pad is None else Q.round_up(x.shape[1], pad)
            got = K.quantize_activations(isa, x, in_padded)
            want = Q.quantize_activations(x, in_padded)
            for g, w, name in zip(got, want, ["a", "d", "sums"]):
                assert g.dtype == w.dtype and g.shape == w.shape, name
                assert np.array_equal(g.view(np.uint8), w.view(np.uint8)), f"{isa} {name} differs for x{x.shape} pad {pad}"


def test_quantize_activations_reference_properties():
    """The reference itself: halfway points round to even, a is within [-127, 127], d is amax/127."""
    x = halfway_rows()
    a, d, sums = Q.quantize_activations(x)
    v = x.reshape(x.shape[0], -1, 32) / d[:, :, None]
    half = np.abs(v - np.floor(v) - 0.5) == 0
    assert half.sum() > 500
    assert np.all(a.reshape(v.shape)[half] % 2 == 0)
    assert np.abs(a.astype(int)).max() == 127
    assert np.array_equal(sums, a.reshape(v.shape).astype(np.int32).sum(axis=2))
    a, d, _ = Q.quantize_activations(special_rows())
    assert not a[0].any() and not d[0].any() and d[2, 1] == 0 and not a[2, 32:64].any()


def test_quantize_activations_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    x = np.ones((2, 40), np.float32)
    with pytest.raises(E, match="in_padded"):
        K.quantize_activations("generic", x, 48)
    with pytest.raises(E, match="in_padded"):
        K.quantize_activations("generic", x, 32)
    with pytest.raises(E, match="dimension"):
        K.quantize_activations("generic", x[0])


# ----------------------------------------------------------------------------------------------
# packed int4 layout


def numpy_pack(qw, sc, mn, group_size):
    """The tile layout of quant.h, spelled out in numpy."""
    nib = Q.unpack_nibbles(qw)
    n_out, in_padded = nib.shape
    ng, bpg = in_padded // group_size, group_size // 32
    per_record = 2 if mn is None else 1
    tiles = -(-n_out // 16)
    nibp = np.zeros((tiles * 16, in_padded), np.uint8)
    nibp[:n_out] = nib
    scp = np.zeros((tiles * 16, ng + 1), np.float16)  # one spare zero group for an odd count
    scp[:n_out, :ng] = sc
    mnp = np.zeros((tiles * 16, ng), np.float16)
    if mn is not None:
        mnp[:n_out] = mn
    out = []
    for t in range(tiles):
        rows = slice(16 * t, 16 * t + 16)
        n = nibp[rows].reshape(16, ng, bpg, 4, 2, 4)  # row, group, block, chunk, low/high, i
        data = (n[..., 0, :] | (n[..., 1, :] << 4)).transpose(1, 2, 3, 0, 4)  # group, block, chunk, row, i
        for r in range(-(-ng // per_record)):
            g0 = r * per_record
            if mn is None:
                out.append(scp[rows, g0].tobytes() + scp[rows, g0 + 1].tobytes())
            else:
                out.append(scp[rows, g0].tobytes() + mnp[rows, g0].tobytes())
            out.append(np.ascontiguousarray(data[g0 : g0 + per_record]).tobytes())
    return np.frombuffer(b"".join(out), np.uint8)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_pack_layout(isa):
    rng = rng_for("pack", isa)
    for n_out, in_features, g, sym in [(1, 33, 32, True), (29, 100, 64, False), (16, 576, 128, True), (17, 576, 128, False),
                                       (13, 64, 32, True), (3, 200, 64, True)]:
        qw, sc, mn = int4_weights(rng, n_out, in_features, g, sym)
        got = K.int4_pack(isa, qw, sc, mn, g, in_features)
        assert got.dtype == np.uint8 and got.size == K.int4_packed_size(isa, n_out, in_features, g, sym)
        assert np.array_equal(got, numpy_pack(qw, sc, mn, g))
        # strided inputs (views into wider arrays) pack the same
        wide = np.zeros((n_out, qw.shape[1] + 5), np.uint8)
        wide[:, 3 : 3 + qw.shape[1]] = qw
        sc_wide = np.zeros((n_out, sc.shape[1] + 2), np.float16)
        sc_wide[:, 1 : 1 + sc.shape[1]] = sc
        mn_view = None
        if mn is not None:
            mn_wide = np.zeros_like(sc_wide)
            mn_wide[:, 1 : 1 + mn.shape[1]] = mn
            mn_view = mn_wide[:, 1 : 1 + mn.shape[1]]
        got2 = K.int4_pack(isa, wide[:, 3 : 3 + qw.shape[1]], sc_wide[:, 1 : 1 + sc.shape[1]], mn_view, g, in_features)
        assert np.array_equal(got, got2)
        for threads in (2, 3, 7):  # threads pack runs of tiles: the same bytes
            assert np.array_equal(K.int4_pack(isa, qw, sc, mn, g, in_features, threads), got)


def test_int4_pack_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    qw = np.zeros((4, 64), np.uint8)
    sc = np.ones((4, 1), np.float16)
    K.int4_pack("generic", qw, sc, None, 128)
    with pytest.raises(E, match="group_size"):
        K.int4_pack("generic", qw, sc, None, 48)
    with pytest.raises(E, match="shape"):
        K.int4_pack("generic", qw, np.ones((4, 2), np.float16), None, 128)
    with pytest.raises(E, match="shape"):
        K.int4_pack("generic", qw, np.ones((3, 1), np.float16), None, 128)
    with pytest.raises(E, match="float16"):
        K.int4_pack("generic", qw, sc.astype(np.float32), None, 128)
    with pytest.raises(E, match="uint8"):
        K.int4_pack("generic", qw.view(np.int8), sc, None, 128)
    with pytest.raises(E, match="mins"):
        K.int4_pack("generic", qw, sc, np.ones((4, 2), np.float16), 128)
    with pytest.raises(E, match="in_features"):
        K.int4_pack("generic", qw, sc, None, 128, 128 - 128)
    with pytest.raises(E, match="in_features"):
        K.int4_pack("generic", qw, sc, None, 128, 129)
    with pytest.raises(E, match="threads"):
        K.int4_pack("generic", qw, sc, None, 128, None, 0)
    with pytest.raises(E, match="contiguous"):
        K.int4_pack("generic", np.zeros((4, 128), np.uint8)[:, ::2], sc, None, 128)


# ----------------------------------------------------------------------------------------------
# int4 matmul


@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_matches_reference(isa, sym, group_size):
    rng = rng_for("int4", isa, sym, group_size)
    for in_features in IN_FEATURES:
        x = activations(rng, max(N_TOKENS), in_features)
        for n_out in N_OUT:
            qw, sc, mn = int4_weights(rng, n_out, in_features, group_size, sym)
            packed = K.int4_pack(isa, qw, sc, mn, group_size, in_features)
            terms = Q.int4_terms(x, qw, sc, mn, group_size)
            for n_tokens in N_TOKENS:
                check_int4(isa, x[:n_tokens], qw, sc, mn, group_size, packed=packed, terms=terms)


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_large(isa, sym):
    """Model-sized rows: 1536 x 576 (G=128: 5 groups, the last half padding) and 576 x 1536."""
    rng = rng_for("int4-large", isa, sym)
    for n_out, in_features, g, n_tokens in [(1536, 576, 128, 7), (576, 1536, 32, 3)]:
        qw, sc, mn = int4_weights(rng, n_out, in_features, g, sym)
        check_int4(isa, activations(rng, n_tokens, in_features), qw, sc, mn, g)


def power_of_two_case(rng, n_out, in_features, group_size, sym, n_tokens):
    """Activations with amax = 127 * 2^e per block (d = 2^e exactly) and power-of-two scales (mins
    small multiples of them): every float32 operation of the kernel is then exact."""
    nb = -(-in_features // 32)
    a = rng.integers(-127, 128, (n_tokens, nb * 32)).astype(np.float32)
    a[:, ::32] = 127.0
    e = rng.integers(-1, 1, (n_tokens, nb)).astype(np.float32)
    x = (a.reshape(n_tokens, nb, 32) * np.exp2(e)[:, :, None]).reshape(n_tokens, -1)[:, :in_features]
    ng = -(-in_features // group_size)
    nib = rng.integers(0, 16, (n_out, ng * group_size)).astype(np.uint8)
    qw = Q.pack_nibbles(nib)
    sc = np.exp2(rng.integers(-1, 1, (n_out, ng))).astype(np.float16)
    mn = None if sym else (sc.astype(np.float32) * rng.integers(-8, 8, (n_out, ng))).astype(np.float16)
    return np.ascontiguousarray(x, dtype=np.float32), qw, sc, mn


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_exact_with_power_of_two_scales(isa, sym):
    """The integer block sums are exact: with exactly representable scaling the result is the
    reference bit for bit."""
    rng = rng_for("int4-exact", isa, sym)
    for g in GROUPS:
        for n_out, in_features, n_tokens in [(29, 100, 7), (16, 576, 1), (13, 33, 70)]:
            x, qw, sc, mn = power_of_two_case(rng, n_out, in_features, g, sym, n_tokens)
            got = K.int4_matmul(isa, x, K.int4_pack(isa, qw, sc, mn, g, in_features), n_out, in_features, g, sym)
            want = Q.int4_matmul(x, qw, sc, mn, g)
            assert np.all(np.abs(want) < 2**24)
            assert np.array_equal(got, want.astype(np.float32)), f"G{g} {n_out}x{in_features} T{n_tokens}"


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_bias_and_accumulate(isa, sym):
    rng = rng_for("int4-bias", isa, sym)
    for n_out, in_features, g, n_tokens in [(13, 33, 32, 1), (29, 100, 64, 7), (7, 576, 128, 70)]:
        qw, sc, mn = int4_weights(rng, n_out, in_features, g, sym)
        x = activations(rng, n_tokens, in_features)
        bias = (rng.standard_normal(n_out) * 4).astype(np.float32)
        y0 = (rng.standard_normal((n_tokens, n_out)) * 4).astype(np.float32)
        packed = K.int4_pack(isa, qw, sc, mn, g, in_features)
        terms = Q.int4_terms(x, qw, sc, mn, g)
        plain = check_int4(isa, x, qw, sc, mn, g, packed=packed, terms=terms)
        with_bias = check_int4(isa, x, qw, sc, mn, g, packed=packed, bias=bias, terms=terms)
        check_int4(isa, x, qw, sc, mn, g, packed=packed, y0=y0, terms=terms)
        both = check_int4(isa, x, qw, sc, mn, g, packed=packed, bias=bias, y0=y0, terms=terms)
        # the documented order: s, then s + bias, then y0 + (s + bias)
        assert np.array_equal(with_bias, plain + bias)
        assert np.array_equal(both, y0 + (plain + bias))


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_bitwise_invariant(isa, sym):
    """Each output is bitwise the same whatever n_tokens, token batch or row range computed it."""
    rng = rng_for("int4-invariant", isa, sym)
    for n_out, in_features, g in [(45, 100, 32), (29, 576, 128)]:
        n_tokens = 70
        qw, sc, mn = int4_weights(rng, n_out, in_features, g, sym)
        packed = K.int4_pack(isa, qw, sc, mn, g, in_features)
        x = activations(rng, n_tokens, in_features)
        bias = rng.standard_normal(n_out).astype(np.float32)
        y0 = rng.standard_normal((n_tokens, n_out)).astype(np.float32)

        def run(xs, ys=None, **kw):
            return K.int4_matmul(isa, xs, packed, n_out, in_features, g, sym, bias=bias, y=ys, **kw)

        full = run(x, y0)
        per_token = np.concatenate([run(x[t : t + 1], y0[t : t + 1]) for t in range(n_tokens)])
        assert np.array_equal(full, per_token)
        cuts = [0, 2, 3, 8, 15, 28, 41, 70]
        batched = np.concatenate([run(x[a:b], y0[a:b]) for a, b in zip(cuts, cuts[1:])])
        assert np.array_equal(full, batched)
        for t in [1, 2, 7, 70]:
            whole = run(x[:t], y0[:t])
            pieces = y0[:t].copy()
            edges = [e for e in [0, 1, 4, 5, 16, 21, 32, 40] if e < n_out] + [n_out]
            for a, b in zip(edges, edges[1:]):
                part = run(x[:t], y0[:t], row_begin=a, row_end=b)
                assert np.array_equal(part[:, :a], y0[:t, :a]) and np.array_equal(part[:, b:], y0[:t, b:])
                pieces[:, a:b] = part[:, a:b]
            assert np.array_equal(whole, pieces)
            assert np.array_equal(whole, full[:t])


@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_rows_outside_range_untouched(isa):
    rng = rng_for("int4-range", isa)
    qw, sc, mn = int4_weights(rng, 29, 64, 32, True)
    packed = K.int4_pack(isa, qw, sc, mn, 32)
    for n_tokens in [1, 7]:
        x = activations(rng, n_tokens, 64)
        got = K.int4_matmul(isa, x, packed, 29, 64, 32, True, row_begin=3, row_end=20)
        assert not got[:, :3].any() and not got[:, 20:].any() and got[:, 3:20].any()
        y0 = rng.standard_normal((n_tokens, 29)).astype(np.float32)
        assert np.array_equal(K.int4_matmul(isa, x, packed, 29, 64, 32, True, y=y0, row_begin=9, row_end=9), y0)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_matmul_unaligned_packed(isa):
    rng = rng_for("int4-unaligned", isa)
    qw, sc, mn = int4_weights(rng, 29, 100, 32, False)
    packed = K.int4_pack(isa, qw, sc, mn, 32, 100)
    x = activations(rng, 7, 100)
    want = K.int4_matmul(isa, x, packed, 29, 100, 32, False)
    for offset in [1, 3]:
        assert np.array_equal(K.int4_matmul(isa, x, misaligned(packed, offset), 29, 100, 32, False), want)
        assert np.array_equal(K.int4_matmul(isa, x[:1], misaligned(packed, offset), 29, 100, 32, False), want[:1])


def test_int4_matmul_isas_agree_bitwise():
    """Every ISA runs quant.h's float sequence per output (generic through std::fma): int4 results
    are the same bits on every ISA, GEMV and GEMM alike."""
    rng = rng_for("int4-isas")
    for sym in [True, False]:
        qw, sc, mn = int4_weights(rng, 45, 576, 64, sym)
        x = activations(rng, 9, 576)
        outs = {isa: K.int4_matmul(isa, x, K.int4_pack(isa, qw, sc, mn, 64, 576), 45, 576, 64, sym) for isa in ISAS}
        for isa in ISAS:
            assert np.array_equal(outs[isa], outs["generic"]), isa


@pytest.mark.parametrize("isa", ISAS)
def test_quant_matmul_degenerate_shapes(isa):
    bias = np.arange(3, dtype=np.float32)
    for sym in [True, False]:
        empty = K.int4_pack(isa, np.zeros((3, 0), np.uint8), np.zeros((3, 0), np.float16),
                            None if sym else np.zeros((3, 0), np.float16), 32)
        assert empty.size == 0
        got = K.int4_matmul(isa, np.zeros((2, 0), np.float32), empty, 3, 0, 32, sym, bias=bias)
        assert np.array_equal(got, np.tile(bias, (2, 1)))
    qw, sc, mn = int4_weights(rng_for("degenerate"), 3, 40, 32, True)
    packed = K.int4_pack(isa, qw, sc, mn, 32, 40)
    assert K.int4_matmul(isa, np.zeros((0, 40), np.float32), packed, 3, 40, 32, True).shape == (0, 3)
    got = K.int8_matmul(isa, np.zeros((2, 0), np.float32), np.zeros((3, 0), np.int8), np.ones(3, np.float16), bias=bias)
    assert np.array_equal(got, np.tile(bias, (2, 1)))
    assert K.int8_matmul(isa, np.zeros((0, 5), np.float32), np.ones((3, 5), np.int8), np.ones(3, np.float16)).shape == (0, 3)
    assert K.quantize_activations(isa, np.zeros((0, 5), np.float32))[0].shape == (0, 32)


def test_int4_matmul_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    qw = np.zeros((4, 64), np.uint8)
    sc = np.ones((4, 4), np.float16)
    packed = K.int4_pack("generic", qw, sc, None, 32)
    x = np.ones((2, 128), np.float32)
    K.int4_matmul("generic", x, packed, 4, 128, 32, True)
    with pytest.raises(E, match="bytes"):
        K.int4_matmul("generic", x, packed, 4, 128, 32, False)  # asym needs room for mins
    with pytest.raises(E, match="bytes"):
        K.int4_matmul("generic", x, packed[:-1], 4, 128, 32, True)
    with pytest.raises(E, match="bytes"):
        K.int4_matmul("generic", x, packed, 17, 128, 32, True)
    with pytest.raises(E, match="in_features"):
        K.int4_matmul("generic", x[:, :127], packed, 4, 128, 32, True)
    with pytest.raises(E, match="group_size"):
        K.int4_matmul("generic", x, packed, 4, 128, 16, True)
    with pytest.raises(E, match="uint8"):
        K.int4_matmul("generic", x, packed.view(np.int8), 4, 128, 32, True)
    with pytest.raises(E, match="row_begin"):
        K.int4_matmul("generic", x, packed, 4, 128, 32, True, row_begin=3, row_end=5)
    with pytest.raises(E, match="bias"):
        K.int4_matmul("generic", x, packed, 4, 128, 32, True, bias=np.ones(3, np.float32))
    with pytest.raises(E, match="y"):
        K.int4_matmul("generic", x, packed, 4, 128, 32, True, y=np.ones((2, 5), np.float32))
    with pytest.raises(E):
        K.int4_matmul("sse9", x, packed, 4, 128, 32, True)


# ----------------------------------------------------------------------------------------------
# int8-row matmul


def int8_weights(rng, n_out, in_features):
    w = rng.standard_normal((n_out, in_features)).astype(np.float32)
    w *= np.exp2(rng.integers(-4, 4, (n_out, 1))).astype(np.float32)
    q, s = Q.quantize_int8_rows(w)
    q[0, : min(3, in_features)] = -128  # the full int8 range, which the kernels must take
    return q, s


def check_int8(isa, x, q, s, bias=None, y0=None, terms=None):
    got = K.int8_matmul(isa, x, q, s, bias=bias, y=y0)
    t, abs_t = terms if terms is not None else Q.int8_terms(x, q, s)
    t, abs_t = t[: x.shape[0]], abs_t[: x.shape[0]]
    want = t.sum(axis=2)
    if bias is not None:
        want = want + bias.astype(np.float64)
    if y0 is not None:
        want = want + y0.astype(np.float64)
    tol = quant_matmul_bound("int8_matmul", "int8", abs_t.sum(axis=2), bias, y0)
    bad = np.abs(got - want) > tol
    assert not bad.any(), f"{isa} int8 x{x.shape} q{q.shape}: worst ratio {(np.abs(got - want) / tol).max():.3g}"
    return got


@pytest.mark.parametrize("in_features", [1, 31, 33, 64, 100, 576])
@pytest.mark.parametrize("isa", ISAS)
def test_int8_matmul_matches_reference(isa, in_features):
    rng = rng_for("int8", isa, in_features)
    x = activations(rng, max(N_TOKENS), in_features)
    for n_out in N_OUT:
        q, s = int8_weights(rng, n_out, in_features)
        terms = Q.int8_terms(x, q, s)
        for n_tokens in N_TOKENS:
            check_int8(isa, x[:n_tokens], q, s, terms=terms)


@pytest.mark.parametrize("isa", ISAS)
def test_int8_matmul_exact_and_extremes(isa):
    """Power-of-two scales make the float part exact; all-extreme values check the integer
    arithmetic (127 * -128 products summed over whole rows)."""
    rng = rng_for("int8-exact", isa)
    for n_out, in_features, n_tokens in [(29, 100, 7), (13, 576, 1), (5, 64, 70)]:
        nb = -(-in_features // 32)
        a = rng.integers(-127, 128, (n_tokens, nb * 32)).astype(np.float32)
        a[:, ::32] = 127.0
        x = np.ascontiguousarray((a.reshape(n_tokens, nb, 32) * 0.5).reshape(n_tokens, -1)[:, :in_features])
        q = rng.integers(-128, 128, (n_out, in_features)).astype(np.int8)
        s = np.exp2(rng.integers(-2, 2, n_out)).astype(np.float16)
        got = K.int8_matmul(isa, x, q, s)
        assert np.array_equal(got, Q.int8_matmul(x, q, s).astype(np.float32))
        x2 = np.where(np.arange(in_features) % 2, 127.0, -127.0).astype(np.float32)[None].repeat(n_tokens, 0)
        q2 = np.where(np.arange(in_features) % 2, -128, 127).astype(np.int8)[None].repeat(n_out, 0)
        ones = np.ones(n_out, np.float16)
        assert np.array_equal(K.int8_matmul(isa, x2, q2, ones), Q.int8_matmul(x2, q2, ones).astype(np.float32))


@pytest.mark.parametrize("isa", ISAS)
def test_int8_matmul_bias_accumulate_and_invariance(isa):
    rng = rng_for("int8-invariant", isa)
    n_out, in_features, n_tokens = 29, 100, 70
    q, s = int8_weights(rng, n_out, in_features)
    x = activations(rng, n_tokens, in_features)
    bias = (rng.standard_normal(n_out) * 4).astype(np.float32)
    y0 = (rng.standard_normal((n_tokens, n_out)) * 4).astype(np.float32)
    terms = Q.int8_terms(x, q, s)
    plain = check_int8(isa, x, q, s, terms=terms)
    both = check_int8(isa, x, q, s, bias=bias, y0=y0, terms=terms)
    assert np.array_equal(both, y0 + (plain + bias))
    per_token = np.concatenate([K.int8_matmul(isa, x[t : t + 1], q, s, bias=bias, y=y0[t : t + 1]) for t in range(n_tokens)])
    assert np.array_equal(both, per_token)
    cuts = [0, 2, 3, 8, 15, 28, 41, 70]
    batched = np.concatenate([K.int8_matmul(isa, x[a:b], q, s, bias=bias, y=y0[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert np.array_equal(both, batched)
    for t in [1, 7, 70]:
        pieces = y0[:t].copy()
        for a, b in zip([0, 1, 4, 5, 12, 21, 28], [1, 4, 5, 12, 21, 28, 29]):
            part = K.int8_matmul(isa, x[:t], q, s, bias=bias, y=y0[:t], row_begin=a, row_end=b)
            assert np.array_equal(part[:, :a], y0[:t, :a]) and np.array_equal(part[:, b:], y0[:t, b:])
            pieces[:, a:b] = part[:, a:b]
        assert np.array_equal(pieces, both[:t])


@pytest.mark.parametrize("isa", ISAS)
def test_int8_matmul_strided_unaligned(isa):
    rng = rng_for("int8-strided", isa)
    wide, s = int8_weights(rng, 13, 120)
    x = activations(rng, 7, 100)
    q = misaligned(wide, 1)[:, 3:103]
    assert not q.flags.c_contiguous
    got = check_int8(isa, x, q, s)
    assert np.array_equal(got, K.int8_matmul(isa, x, np.ascontiguousarray(q), s))


def test_int8_matmul_argument_checks():
    E = slmcore.errors.InvalidArgumentError
    x = np.ones((2, 40), np.float32)
    q = np.ones((3, 40), np.int8)
    s = np.ones(3, np.float16)
    K.int8_matmul("generic", x, q, s)
    with pytest.raises(E, match="int8"):
        K.int8_matmul("generic", x, q.view(np.uint8), s)
    with pytest.raises(E, match="scale"):
        K.int8_matmul("generic", x, q, s.astype(np.float32))
    with pytest.raises(E, match="scale"):
        K.int8_matmul("generic", x, q, np.ones(4, np.float16))
    with pytest.raises(E, match="shape"):
        K.int8_matmul("generic", x[:, :39], q, s)
    with pytest.raises(E, match="row_begin"):
        K.int8_matmul("generic", x, q, s, row_begin=2, row_end=1)


def test_tolerance_entries_exist():
    for key in [("quantize_activations", "int8"), ("int4_matmul", "sym"), ("int4_matmul", "asym"), ("int8_matmul", "int8")]:
        assert key in TOLERANCES
