"""slmcore.quant: the int4 format against a plain-Python quantizer written here, error bounds, the
scale search, lossless GGUF Q4_0/Q4_1 import against gguf.quants, int8 rows, and quantized
checkpoints (round trip and hostile files built here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize
from safetensors.numpy import load_file

from slmcore.config import ModelConfig
from slmcore.errors import ConfigError, InvalidArgumentError, ModelFormatError
from slmcore.loader import Checkpoint, write_safetensors
from slmcore.quant import (
    Int4Tensor,
    Int8Rows,
    dequantize_int4,
    dequantize_int8_rows,
    int4_from_gguf,
    load_quantized,
    quantize_int4,
    quantize_int8_rows,
    save_quantized,
    unpack_nibbles,
)

F32 = np.float32


def weights(shape: tuple[int, int], seed: int = 0, heavy: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_t(3, shape) if heavy else rng.standard_normal(shape)
    return (values * 0.02).astype(np.float32)


# --- an independent quantizer: one element at a time, float32 scalar arithmetic, Python's round ---


def reference_int4(w: np.ndarray, group_size: int, sym: bool) -> tuple[bytes, list, list]:
    """Round-to-nearest int4 as DESIGN.md section 4 states it: (qweight bytes, scales, mins) as lists."""
    out_features, in_features = w.shape
    n_groups = math.ceil(in_features / group_size)
    packed, scales, mins = bytearray(), [], []
    for r in range(out_features):
        codes = []
        row_scales, row_mins = [], []
        for g in range(n_groups):
            real = [F32(w[r, i]) for i in range(g * group_size, min((g + 1) * group_size, in_features))]
            if sym:
                s = np.float16(F32(max(abs(v) for v in real)) / F32(7))
                m = None
            else:
                low, high = min(real), max(real)
                s = np.float16(F32(high - low) / F32(15))
                m = np.float16(low)
            for i in range(g * group_size, (g + 1) * group_size):
                v = F32(w[r, i]) if i < in_features else F32(0)  # padding is quantized as 0
                if s == 0:
                    q = 0
                elif sym:
                    q = min(7, max(-8, round(float(v / F32(s)))))
                else:
                    q = min(15, max(0, round(float((v - F32(m)) / F32(s)))))
                codes.append(q + 8 if sym else q)
            row_scales.append(s)
            row_mins.append(m)
        for j in range(0, len(codes), 2):
            packed.append(codes[j] | (codes[j + 1] << 4))
        scales.append(row_scales)
        mins.append(row_mins)
    return bytes(packed), scales, mins


def special_weights(shape: tuple[int, int], group_size: int, seed: int) -> np.ndarray:
    """Random weights with an all-zero group, a constant group and a tiny group where they fit."""
    w = weights(shape, seed)
    if shape[1] > group_size:
        w[0, :group_size] = 0.0
        w[-1, :group_size] = F32(0.013)
    w[shape[0] // 2, : min(group_size, shape[1])] *= F32(1e-3)
    return w


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize(
    "shape, group_size", [((3, 40), 32), ((5, 70), 64), ((2, 300), 128), ((1, 7), 32), ((4, 64), 64), ((3, 129), 128)]
)
def test_format_matches_plain_python_quantizer(shape, group_size, sym) -> None:
    w = special_weights(shape, group_size, seed=shape[1])
    t = quantize_int4(w, group_size, sym=sym, search=False)
    packed, scales, mins = reference_int4(w, group_size, sym)
    n_groups = math.ceil(shape[1] / group_size)
    assert t.qweight.dtype == np.uint8 and t.qweight.shape == (shape[0], n_groups * group_size // 2)
    assert t.scales.dtype == np.float16 and t.scales.shape == (shape[0], n_groups)
    assert t.qweight.tobytes() == packed
    assert np.array_equal(t.scales, np.array(scales, dtype=np.float16))
    if sym:
        assert t.mins is None
    else:
        assert t.mins.dtype == np.float16 and np.array_equal(t.mins, np.array(mins, dtype=np.float16))
    assert (t.group_size, t.in_features, t.sym, t.shape) == (group_size, shape[1], sym, shape)


def test_nibble_order_and_dequantize_by_hand() -> None:
    # Symmetric, G=32: absmax 7 gives s = 1; codes are the values themselves.
    row = np.zeros(32, dtype=np.float32)
    row[:4] = [7, -7, 3, -1]
    t = quantize_int4(row[None, :], 32, sym=True, search=False)
    assert t.scales[0, 0] == 1
    # element 0 (7 -> nibble 15) low, element 1 (-7 -> nibble 1) high; then 3 -> 11, -1 -> 7; zeros -> 8.
    assert list(t.qweight[0, :3]) == [0x1F, 0x7B, 0x88]
    assert np.array_equal(dequantize_int4(t), row[None, :])
    # Asymmetric: min 2, max 17 gives s = 1, m = 2.
    row = np.arange(2, 34, dtype=np.float32).clip(max=17)
    t = quantize_int4(row[None, :], 32, sym=False, search=False)
    assert (t.scales[0, 0], t.mins[0, 0]) == (1, 2)
    assert list(t.qweight[0, :2]) == [0x10, 0x32]
    assert np.array_equal(dequantize_int4(t), row[None, :])


def test_dequantize_is_scale_times_code() -> None:
    w = weights((6, 200), seed=3)
    for sym in (True, False):
        t = quantize_int4(w, 64, sym=sym)
        codes = unpack_nibbles(t.qweight).astype(np.float64).reshape(6, 4, 64)
        s = t.scales.astype(np.float64)[..., None]
        expected = s * (codes - 8) if sym else s * codes + t.mins.astype(np.float64)[..., None]
        assert np.array_equal(dequantize_int4(t), expected.reshape(6, 256)[:, :200].astype(np.float32))


# --- error bounds, padding, search ----------------------------------------------------------------


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("heavy", [False, True], ids=["normal", "student_t"])
def test_round_to_nearest_error_bounds(group_size, heavy) -> None:
    w = weights((16, 333), seed=group_size, heavy=heavy)
    n_groups = math.ceil(333 / group_size)
    padded = np.zeros((16, n_groups * group_size), np.float64)
    padded[:, :333] = w
    groups = padded.reshape(16, n_groups, group_size)
    real = (np.arange(n_groups * group_size) < 333).reshape(n_groups, group_size)
    slack = 1e-6

    t = quantize_int4(w, group_size, sym=True, search=False)
    s = t.scales.astype(np.float64)
    error = np.abs(padded - np.pad(dequantize_int4(t), ((0, 0), (0, padded.shape[1] - 333))))
    assert (error.reshape(16, n_groups, group_size) <= s[..., None] / 2 * (1 + slack)).all()

    t = quantize_int4(w, group_size, sym=False, search=False)
    s, m = t.scales.astype(np.float64), t.mins.astype(np.float64)
    low = np.where(real, groups, np.inf).min(axis=-1)
    high = np.where(real, groups, -np.inf).max(axis=-1)
    # Inside [m, m + 15 s] the error is at most s/2; outside it, the float16 rounding of m and s.
    bound = s / 2 + np.abs(m - low) + 15 * np.abs(s - (high - low) / 15)
    error = np.abs(groups - np.pad(dequantize_int4(t), ((0, 0), (0, padded.shape[1] - 333))).reshape(groups.shape))
    assert (np.where(real, error, 0) <= bound[..., None] * (1 + slack)).all()


def test_padding_takes_no_part_in_a_groups_scale() -> None:
    # SmolLM2's 576 with G=128: 5 groups, the last one half padding. Its last 64 columns are positive,
    # so padding zeros would pull an asymmetric minimum down to 0 if they counted.
    w = weights((8, 576), seed=5)
    w[:, 512:] = np.abs(w[:, 512:]) + F32(0.01)
    for sym in (True, False):
        for search in (False, True):
            t = quantize_int4(w, 128, sym=sym, search=search)
            assert t.qweight.shape == (8, 320) and t.scales.shape == (8, 5)
            # The last group's 64 real values, quantized alone as one G=64 group, give the same result.
            alone = quantize_int4(w[:, 512:], 64, sym=sym, search=search)
            assert np.array_equal(t.scales[:, 4], alone.scales[:, 0])
            if not sym:
                assert np.array_equal(t.mins[:, 4], alone.mins[:, 0])
                assert (t.mins[:, 4] > 0).all()
            assert np.array_equal(dequantize_int4(t)[:, 512:], dequantize_int4(alone))
            if sym:
                assert (unpack_nibbles(t.qweight)[:, 576:] == 8).all()  # padding is the code of 0


def group_errors(w: np.ndarray, t: Int4Tensor) -> np.ndarray:
    """Squared error of each group [out, n_groups], in float64 (padding contributes nothing)."""
    diff = np.zeros((w.shape[0], t.in_padded))
    diff[:, : w.shape[1]] = dequantize_int4(t).astype(np.float64) - w
    return (diff**2).reshape(w.shape[0], t.n_groups, t.group_size).sum(axis=-1)


@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("heavy", [False, True], ids=["normal", "student_t"])
def test_search_is_never_worse_than_round_to_nearest(group_size, sym, heavy) -> None:
    w = weights((64, 300), seed=7, heavy=heavy)
    rtn = group_errors(w, quantize_int4(w, group_size, sym=sym, search=False))
    searched = group_errors(w, quantize_int4(w, group_size, sym=sym, search=True))
    # The search compares float32 sums of squares: equal within their rounding at worst.
    assert (searched <= rtn * (1 + 1e-5) + 1e-30).all()
    assert searched.sum() < 0.9 * rtn.sum()  # and it does find better scales (10-30% less squared error)


@pytest.mark.parametrize("heavy", [False, True], ids=["normal", "student_t"])
def test_symmetric_search_is_never_worse_than_gguf_q4_0(heavy) -> None:
    """At G=32 the symmetric search tries Q4_0's own scale (the signed largest element / -8), so
    no group may come out worse than gguf.quants' Q4_0; round-to-nearest (absmax / 7, code -8
    unused) is ~25% worse in total."""
    w = weights((96, 320), seed=11, heavy=heavy)
    q4_0 = gguf_dequantize(gguf_quantize(w, GGMLQuantizationType.Q4_0), GGMLQuantizationType.Q4_0)
    q4_0_error = ((q4_0.astype(np.float64) - w) ** 2).reshape(96, 10, 32).sum(axis=-1)
    searched = group_errors(w, quantize_int4(w, 32, sym=True, search=True))
    assert (searched <= q4_0_error * (1 + 1e-5) + 1e-30).all()
    assert group_errors(w, quantize_int4(w, 32, sym=True, search=False)).sum() > 1.1 * q4_0_error.sum()


def test_zero_constant_tiny_and_huge_groups() -> None:
    for sym in (True, False):
        for search in (False, True):
            zeros = quantize_int4(np.zeros((2, 40), np.float32), 32, sym=sym, search=search)
            assert (zeros.scales == 0).all() and (dequantize_int4(zeros) == 0).all()
            constant = np.full((2, 64), 0.3, np.float32)
            deq = dequantize_int4(quantize_int4(constant, 64, sym=sym, search=search))
            assert np.abs(deq - constant).max() <= 0.3 * 2**-10
            negative = np.full((1, 32), -5.0, np.float32)
            deq = dequantize_int4(quantize_int4(negative, 32, sym=sym, search=search))
            assert np.abs(deq - negative).max() <= (5.0 * 2**-10 if sym else 0.0)  # asym: s = 0, m = -5 exactly
            tiny = weights((3, 64), seed=1) * F32(1e-6)  # scales underflow to float16 subnormals or 0
            deq = dequantize_int4(quantize_int4(tiny, 32, sym=sym, search=search))
            # Within a few float16 subnormal steps (2**-24 ~ 6e-8) of the values.
            assert np.isfinite(deq).all() and np.abs(deq - tiny).max() < 3e-7
            large = weights((3, 64), seed=2) * F32(1e5 if sym else 1e4)  # ~2000 (sym) / ~200 (asym)
            t = quantize_int4(large, 32, sym=sym, search=search)
            assert np.isfinite(t.scales).all() and np.abs(dequantize_int4(t) - large).max() <= t.scales.max()


@pytest.mark.parametrize(
    "value, sym, words",
    [(np.nan, True, "nan"), (np.inf, False, "inf"), (-np.inf, True, "inf"), (1e6, True, "float16"), (-7e4, False, "float16")],
)
def test_bad_values_name_the_tensor(value, sym, words) -> None:
    w = weights((4, 64), seed=0)
    w[2, 33] = value
    with pytest.raises(InvalidArgumentError) as e:
        quantize_int4(w, 32, sym=sym, name="model.layers.3.mlp.up_proj.weight")
    assert "model.layers.3.mlp.up_proj.weight" in str(e.value) and words in str(e.value).lower()
    if not np.isfinite(value):
        assert "[2, 33]" in str(e.value)


@pytest.mark.parametrize(
    "w, kwargs",
    [
        (np.zeros((2, 32), np.float32), {"group_size": 16}),
        (np.zeros((2, 32), np.float32), {"group_size": True}),
        (np.zeros((2, 32), np.float32), {"sym": 1}),
        (np.zeros(32, np.float32), {}),
        (np.zeros((2, 32), np.int32), {}),
        (np.zeros((0, 32), np.float32), {}),
        ([[0.0] * 32], {}),
    ],
)
def test_bad_arguments(w, kwargs) -> None:
    with pytest.raises(InvalidArgumentError):
        quantize_int4(w, **kwargs)


def test_row_blocks_do_not_change_the_result(monkeypatch) -> None:
    from slmcore import quant

    w = weights((37, 96), seed=9)
    whole = quantize_int4(w, 32, sym=False)
    monkeypatch.setattr(quant, "_BLOCK_ELEMENTS", 200)  # two rows per block
    blocked = quantize_int4(w, 32, sym=False)
    assert np.array_equal(whole.qweight, blocked.qweight) and np.array_equal(whole.scales, blocked.scales)
    assert np.array_equal(dequantize_int4(whole), dequantize_int4(blocked))


def test_float16_and_float64_inputs_are_read_as_float32() -> None:
    w = weights((4, 64), seed=4)
    expected = quantize_int4(w, 32).qweight
    assert np.array_equal(quantize_int4(w.astype(np.float64), 32).qweight, expected)
    half = w.astype(np.float16)
    assert np.array_equal(quantize_int4(half, 32).qweight, quantize_int4(half.astype(np.float32), 32).qweight)


# --- int8 rows ------------------------------------------------------------------------------------


def test_int8_rows() -> None:
    w = weights((9, 50), seed=11, heavy=True)
    w[3] = 0
    rows = quantize_int8_rows(w)
    assert isinstance(rows, Int8Rows)
    q, s = rows  # unpacks as (q, scale)
    assert q.dtype == np.int8 and q.shape == (9, 50) and s.dtype == np.float16 and s.shape == (9,)
    assert np.array_equal(s, (np.abs(w).max(axis=1) / F32(127)).astype(np.float16))
    assert (q >= -127).all() and (q <= 127).all() and (q[3] == 0).all() and s[3] == 0
    for r in range(9):
        if s[r]:
            expected = [min(127, max(-127, round(float(F32(v) / F32(s[r]))))) for v in w[r]]
            assert q[r].tolist() == expected
    deq = dequantize_int8_rows(rows)
    assert deq.dtype == np.float32
    assert (np.abs(deq - w) <= s.astype(np.float64)[:, None] / 2 * (1 + 1e-6)).all()
    with pytest.raises(InvalidArgumentError, match="lm_head"):
        quantize_int8_rows(np.full((2, 3), np.nan, np.float32), name="lm_head.weight")
    with pytest.raises(InvalidArgumentError, match="float16"):
        quantize_int8_rows(np.full((2, 3), 1e7, np.float32))


# --- GGUF Q4_0 / Q4_1 -----------------------------------------------------------------------------


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a, np.float32).view(np.uint32), np.ascontiguousarray(b, np.float32).view(np.uint32)
    )


@pytest.mark.parametrize("qtype", [GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1], ids=lambda q: q.name)
@pytest.mark.parametrize("shape", [(1, 32), (7, 96), (16, 576)])
def test_gguf_import_is_lossless(qtype, shape) -> None:
    w = weights(shape, seed=shape[1], heavy=True) * F32(3)
    w[0, :32] = 0  # an all-zero block
    raw = gguf_quantize(w, qtype)
    assert raw.dtype == np.uint8
    t = int4_from_gguf(raw, qtype, shape, name="blk.0.ffn_up.weight")
    assert t.group_size == 32 and t.sym == (qtype == GGMLQuantizationType.Q4_0) and t.shape == shape
    assert bits_equal(dequantize_int4(t), gguf_dequantize(raw, qtype).reshape(shape))
    # Also from the flat bytes, as a GGUF reader may give them.
    assert bits_equal(dequantize_int4(int4_from_gguf(raw.reshape(-1), qtype, shape)), dequantize_int4(t))


def test_gguf_block_layout_is_as_documented() -> None:
    """Byte j of a block holds element j in its low nibble and element j + 16 in its high nibble."""
    codes = np.arange(32) % 16
    qs = [codes[j] | (codes[j + 16] << 4) for j in range(16)]
    d, m = np.float16(0.5), np.float16(-2.0)
    block = np.frombuffer(d.tobytes() + m.tobytes() + bytes(qs), dtype=np.uint8)[None, :]
    expected = (F32(0.5) * codes + F32(-2.0)).astype(np.float32)
    assert bits_equal(gguf_dequantize(block, GGMLQuantizationType.Q4_1).reshape(-1), expected)
    t = int4_from_gguf(block, GGMLQuantizationType.Q4_1, (1, 32))
    assert unpack_nibbles(t.qweight)[0].tolist() == codes.tolist()
    block0 = np.frombuffer(d.tobytes() + bytes(qs), dtype=np.uint8)[None, :]
    assert bits_equal(gguf_dequantize(block0, GGMLQuantizationType.Q4_0).reshape(-1), (F32(0.5) * (codes - 8)).astype(np.float32))


def test_gguf_import_errors() -> None:
    raw = gguf_quantize(weights((2, 64)), GGMLQuantizationType.Q4_1)
    with pytest.raises(ModelFormatError, match="bytes"):
        int4_from_gguf(raw[:, :-1], GGMLQuantizationType.Q4_1, (2, 64))
    with pytest.raises(ModelFormatError, match="blocks of 32"):
        int4_from_gguf(raw, GGMLQuantizationType.Q4_1, (4, 40))
    with pytest.raises(InvalidArgumentError, match="Q8_0"):
        int4_from_gguf(raw, GGMLQuantizationType.Q8_0, (2, 64))
    bad = raw.copy()
    bad[1, 0:2] = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)
    with pytest.raises(ModelFormatError, match="NaN"):
        int4_from_gguf(bad, GGMLQuantizationType.Q4_1, (2, 64), name="blk.1.attn_q.weight")


def test_take_rows_permutes_whole_rows() -> None:
    w = weights((8, 64), seed=12)
    t = quantize_int4(w, 32, sym=False)
    order = np.array([3, 1, 0, 2, 7, 6, 5, 4])
    assert np.array_equal(dequantize_int4(t.take_rows(order)), dequantize_int4(t)[order])


@pytest.mark.slow
def test_smollm2_q4_1_tensors_import_losslessly() -> None:
    from gguf import GGUFReader

    from real_models import smollm2_gguf

    reader = GGUFReader(smollm2_gguf())
    checked = 0
    for tensor in reader.tensors:
        if tensor.tensor_type == GGMLQuantizationType.Q4_1:
            shape = tuple(int(d) for d in reversed(tensor.shape))
            t = int4_from_gguf(tensor.data, tensor.tensor_type, shape, name=tensor.name)
            assert bits_equal(dequantize_int4(t), gguf_dequantize(tensor.data, tensor.tensor_type).reshape(shape))
            checked += 1
    assert checked == 30 * 7


# --- checkpoints ----------------------------------------------------------------------------------

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 100,  # not a multiple of any group size: down_proj's rows are padded
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 50,
    "max_position_embeddings": 128,
    "tie_word_embeddings": False,
    "dtype": "float32",
}


def model_tensors(config: dict = CONFIG) -> dict[str, np.ndarray]:
    """Random float32 weights under HF names for CONFIG-like llama configs."""
    shapes = {}
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv = config["num_key_value_heads"] * h // config["num_attention_heads"]
    shapes["model.embed_tokens.weight"] = (v, h)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        shapes |= {
            f"{p}.input_layernorm.weight": (h,), f"{p}.post_attention_layernorm.weight": (h,),
            f"{p}.self_attn.q_proj.weight": (h, h), f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h), f"{p}.self_attn.o_proj.weight": (h, h),
            f"{p}.mlp.gate_proj.weight": (i, h), f"{p}.mlp.up_proj.weight": (i, h), f"{p}.mlp.down_proj.weight": (h, i),
        }  # fmt: skip
    shapes["model.norm.weight"] = (h,)
    if not config.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (v, h)
    rng = np.random.default_rng(0)
    return {name: (rng.standard_normal(shape) * 0.05).astype(np.float32) for name, shape in shapes.items()}


def quantized_model(floats: dict[str, np.ndarray], group_size: int = 32, sym: bool = False) -> dict:
    tensors = {}
    for name, w in floats.items():
        if w.ndim == 1:
            tensors[name] = (w, "float32")
        elif name == "model.embed_tokens.weight":
            tensors[name] = quantize_int8_rows(w)
        elif name == "lm_head.weight":
            tensors[name] = (w.astype(np.float16), "float16")
        else:
            tensors[name] = quantize_int4(w, group_size, sym=sym, name=name)
    return tensors


def same(a, b) -> bool:
    if isinstance(a, Int4Tensor):
        return (
            isinstance(b, Int4Tensor) and (a.group_size, a.in_features, a.sym) == (b.group_size, b.in_features, b.sym)
            and np.array_equal(a.qweight, b.qweight) and np.array_equal(a.scales, b.scales)
            and (a.mins is None) == (b.mins is None) and (a.mins is None or np.array_equal(a.mins, b.mins))
        )  # fmt: skip
    if isinstance(a, Int8Rows):
        return isinstance(b, Int8Rows) and np.array_equal(a.qweight, b.qweight) and np.array_equal(a.scales, b.scales)
    return a[1] == b[1] and a[0].dtype == b[0].dtype and np.array_equal(a[0], b[0])


@pytest.mark.parametrize("sym", [True, False], ids=["sym", "asym"])
def test_save_and_load_round_trip(tmp_path: Path, sym: bool) -> None:
    tensors = quantized_model(model_tensors(), group_size=64, sym=sym)
    out = save_quantized(tmp_path / "q", CONFIG, tensors, {"quant_method": "slmcore", "bits": 4, "group_size": 64})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    written = json.loads((out / "config.json").read_text())
    assert {k: v for k, v in written.items() if k != "quantization_config"} == CONFIG
    assert written["quantization_config"] == {
        "quant_method": "slmcore", "bits": 4, "group_size": 64, "sym": sym,
        "unquantized": ["lm_head"], "int8": ["model.embed_tokens"],
    }  # fmt: skip

    raw = load_file(out / "model.safetensors")  # the safetensors library reads every tensor too
    q = "model.layers.0.self_attn.q_proj"
    assert raw[f"{q}.qweight"].dtype == np.uint8 and raw[f"{q}.qweight"].shape == (64, 32)
    assert raw[f"{q}.scales"].dtype == np.float16 and raw[f"{q}.scales"].shape == (64, 1)
    assert (f"{q}.mins" in raw) == (not sym) and f"{q}.weight" not in raw
    assert raw["model.layers.1.mlp.down_proj.qweight"].shape == (64, 64)  # in 100 -> padded to 128
    assert raw["model.embed_tokens.qweight"].dtype == np.int8 and raw["model.embed_tokens.scales"].shape == (50,)
    assert raw["lm_head.weight"].dtype == np.float16

    config = ModelConfig.from_file(out)
    with Checkpoint.open(out) as checkpoint:
        loaded = load_quantized(checkpoint, config)
        assert set(loaded) == set(tensors)
        for name, value in tensors.items():
            assert same(value, loaded[name]), name


def test_tied_embeddings_have_no_lm_head(tmp_path: Path) -> None:
    config = {**CONFIG, "tie_word_embeddings": True}
    tensors = quantized_model(model_tensors(config), group_size=32, sym=True)
    save_quantized(tmp_path / "q", config, tensors)
    with Checkpoint.open(tmp_path / "q") as checkpoint:
        assert "lm_head.weight" not in load_quantized(checkpoint, ModelConfig.from_file(tmp_path / "q"))


def test_save_refuses_inconsistent_input(tmp_path: Path) -> None:
    floats = model_tensors()
    tensors = quantized_model(floats, group_size=32, sym=True)
    with pytest.raises(InvalidArgumentError, match="group_size"):
        save_quantized(tmp_path / "a", CONFIG, tensors, {"group_size": 64})
    mixed = {**tensors, "model.layers.0.mlp.up_proj.weight": quantize_int4(floats["model.layers.0.mlp.up_proj.weight"], 64)}
    with pytest.raises(InvalidArgumentError, match="one group_size"):
        save_quantized(tmp_path / "b", CONFIG, mixed)
    missing = {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(ModelFormatError, match="up_proj"):
        save_quantized(tmp_path / "c", CONFIG, missing)
    assert not any(p.name.startswith(".c") for p in tmp_path.iterdir())  # nothing left behind
    with pytest.raises(InvalidArgumentError, match="'X.weight'"):
        save_quantized(tmp_path / "d", CONFIG, {**tensors, "model.extra": quantize_int4(floats["lm_head.weight"], 32)})
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("")
    with pytest.raises(InvalidArgumentError, match="not an empty directory"):
        save_quantized(tmp_path / "e", CONFIG, tensors)


# --- hostile quantized checkpoints ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_asym(tmp_path_factory) -> Path:
    return save_quantized(tmp_path_factory.mktemp("quant") / "q", CONFIG, quantized_model(model_tensors(), 32, sym=False))


def tampered(source: Path, target: Path, changes: dict | None = None, config_changes: dict | None = None) -> Path:
    """A copy of a quantized checkpoint with tensors replaced ((array, dtype)) or removed (None),
    and quantization_config fields replaced (None removes one)."""
    target.mkdir()
    tensors = load_file(source / "model.safetensors")
    for name, value in (changes or {}).items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8"}
    write_safetensors(
        target / "model.safetensors",
        [(n, v[0] if isinstance(v, tuple) else v, v[1] if isinstance(v, tuple) else dtypes[v.dtype],
          (v[0] if isinstance(v, tuple) else v).shape) for n, v in tensors.items()],
    )  # fmt: skip
    config = json.loads((source / "config.json").read_text())
    for key, value in (config_changes or {}).items():
        if value is None:
            config["quantization_config"].pop(key)
        else:
            config["quantization_config"][key] = value
    (target / "config.json").write_text(json.dumps(config))
    return target


def load_error(path: Path, error: type, *words: str) -> str:
    with pytest.raises(error) as e:
        config = ModelConfig.from_file(path)
        with Checkpoint.open(path) as checkpoint:
            load_quantized(checkpoint, config)
    for word in words:
        assert word in str(e.value), str(e.value)
    return str(e.value)


Q = "model.layers.1.self_attn.k_proj"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({f"{Q}.qweight": np.zeros((32, 16), np.uint8)}, [f"{Q}.qweight", "[32, 16]", "[32, 32]"]),
        ({f"{Q}.qweight": np.zeros((32, 32), np.int8)}, [f"{Q}.qweight", "int8", "uint8"]),
        ({f"{Q}.qweight": np.zeros((32, 64), np.float16)}, [f"{Q}.qweight", "float16"]),
        ({f"{Q}.scales": np.ones((32, 2), np.float32)}, [f"{Q}.scales", "float32", "float16"]),
        ({f"{Q}.scales": np.ones((32, 1), np.float16)}, [f"{Q}.scales", "[32, 1]", "[32, 2]"]),
        ({f"{Q}.mins": None}, [f"{Q}.mins", "sym false"]),
        ({f"{Q}.mins": np.full((32, 2), np.nan, np.float16)}, [f"{Q}.mins", "NaN"]),
        ({f"{Q}.scales": np.full((32, 2), np.inf, np.float16)}, [f"{Q}.scales", "Inf"]),
        ({f"{Q}.qweight": None, f"{Q}.scales": None, f"{Q}.mins": None}, [f"{Q}.weight"]),
        ({f"{Q}.weight": np.zeros((32, 64), np.float32)}, [f"{Q}.weight", "unquantized"]),
        ({"model.embed_tokens.qweight": np.zeros((50, 64), np.uint8)}, ["model.embed_tokens.qweight", "int8"]),
        ({"model.embed_tokens.scales": None}, ["model.embed_tokens.scales"]),
        ({"lm_head.weight": np.zeros((50, 64), np.uint8)}, ["lm_head.weight", "uint8"]),
        ({"model.norm.weight": np.zeros(63, np.float32)}, ["model.norm.weight", "[63]"]),
    ],
    ids=[
        "qweight_shape", "qweight_int8", "qweight_float", "scales_dtype", "scales_groups", "missing_mins",
        "nan_mins", "inf_scales", "missing_matrix", "unlisted_float", "int8_as_uint8", "int8_no_scales",
        "unquantized_as_u8", "norm_shape",
    ],
)  # fmt: skip
def test_hostile_tensors(saved_asym: Path, tmp_path: Path, changes: dict, words: list[str]) -> None:
    load_error(tampered(saved_asym, tmp_path / "bad", changes), ModelFormatError, *words)


def test_stray_mins_with_sym(tmp_path: Path) -> None:
    sym = save_quantized(tmp_path / "sym", CONFIG, quantized_model(model_tensors(), 32, sym=True))
    bad = tampered(sym, tmp_path / "bad", {f"{Q}.mins": np.zeros((32, 2), np.float16)})
    load_error(bad, ModelFormatError, f"{Q}.mins", "sym is true")


@pytest.mark.parametrize(
    "config_changes, words",
    [
        ({"group_size": 16}, ["group_size", "16", "32, 64, 128"]),
        ({"group_size": 64}, ["q_proj.scales", "group_size 64"]),  # valid field, tensors made with 32
        ({"bits": 8}, ["bits", "8"]),
        ({"bits": None}, ["bits", "missing"]),
        ({"sym": "false"}, ["sym"]),
        ({"sym": True}, ["q_proj.mins", "sym is true"]),
        ({"desc_act": True}, ["unknown", "desc_act"]),
        ({"int8": ["model.embed_tokens", "model.layers.9.mlp.up_proj"]}, ["model.layers.9.mlp.up_proj"]),
        ({"unquantized": ["lm_head"], "int8": ["model.embed_tokens", "lm_head"]}, ["lm_head", "both"]),
        ({"unquantized": "lm_head"}, ["unquantized", "list"]),
        ({"int8": []}, ["model.embed_tokens"]),
        ({"quant_method": "gptq"}, ["gptq", "not supported"]),
    ],
)
def test_hostile_quantization_config(saved_asym: Path, tmp_path: Path, config_changes: dict, words: list[str]) -> None:
    bad = tampered(saved_asym, tmp_path / "bad", config_changes=config_changes)
    format_level = config_changes in ({"group_size": 64}, {"sym": True}, {"int8": []}) or "model.layers.9.mlp.up_proj" in str(config_changes)
    load_error(bad, ModelFormatError if format_level else ConfigError, *words)


def test_load_needs_a_quantization_config(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", [("x", np.zeros(2, np.float32), "F32", (2,))])
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    load_error(tmp_path, ConfigError, "no quantization_config")
