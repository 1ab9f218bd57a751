"""slmcore's int4 weight format (DESIGN.md section 4): quantize, dequantize, GGUF import, save, load.

A weight W[out, in] is cut into groups of G (32, 64 or 128) consecutive elements along `in`, after
`in` is padded with zeros to a multiple of G. Each group has a float16 scale s (and, asymmetric,
a float16 minimum m); each element is a 4-bit code:

    symmetric   s = fp16(absmax / 7)          q = clamp(round(w / s), -8, 7)        nibble = q + 8
                w ~ s * (nibble - 8)
    asymmetric  s = fp16((max - min) / 15)    q = clamp(round((w - m) / s), 0, 15)  nibble = q
                m = fp16(min)                 w ~ s * nibble + m

Storage: qweight uint8 [out, in_padded / 2] (element 2j in the low nibble of byte j, 2j + 1 in its
high nibble), scales float16 [out, n_groups], mins float16 [out, n_groups] when asymmetric.

The arithmetic, exactly (so that another implementation reproduces every bit):
- absmax / 7 and (max - min) / 15 are float32 operations, then rounded to float16 (nearest even);
- the quotients w / s and (w - m) / s are float32 operations on the float16 s and m widened to
  float32, rounded half to even; a group whose s is 0 (all zeros; constant, when asymmetric)
  stores q = 0;
- padded elements take no part in any group's statistics nor in the search's error; they are
  stored as the code of 0 in their group (nibble 8 when symmetric);
- dequantization is float32 s * (nibble - 8), and s * nibble + m (a product, then a sum, never
  fused): the operations of gguf.quants, so imported Q4_0 / Q4_1 blocks dequantize bit for bit.
- Scales may be negative (GGUF's Q4_0 stores d = max / -8); only finite values are accepted.

The scale search (search=True) tries other scales per group besides the round-to-nearest one
(symmetric: the signed largest element / -8, GGUF Q4_0's scale, which uses code -8 for a grid
8/7 finer, and SYM_SEARCH_FACTORS's clipping candidates, none by default; asymmetric: the
[min, max] range shrunk from either end) plus a least-squares refit of s (and m) to the codes the
best candidate chose, and keeps the candidate whose dequantized group has the least squared
error. Round-to-nearest is the first candidate and wins ties, so the search never does worse.
Symmetric quantization runs in C++ (kernels/cpu/int4_quantize.inc), defined bit for bit by
slmcore/reference/quant.py's quantize_int4_sym: its squared errors and the refit's dot products are
float64 sums in a fixed order, and the refit divides their float32 roundings. Asymmetric
quantization runs in numpy here.

Checkpoint layout: tensor `X.weight` of the unquantized checkpoint becomes `X.qweight` (uint8),
`X.scales` and, asymmetric, `X.mins` (float16); an int8-row matrix becomes `X.qweight` (int8)
and `X.scales` (float16 [out], s = fp16(absmax / 127) per row). config.json's
quantization_config lists the X of matrices kept in floating point (`unquantized`) and stored
as int8 rows (`int8`); norms and biases are never quantized and never listed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence, Union

import numpy as np
from gguf.constants import GGMLQuantizationType
from tqdm.auto import tqdm

from slmcore.config import QUANT_GROUP_SIZES, ModelConfig, QuantizationConfig
from slmcore.errors import ConfigError, InvalidArgumentError, ModelFormatError
from slmcore.loader import WEIGHT_DTYPES, Checkpoint, available_cores, convert, write_safetensors
from slmcore.models import canonical_naming

GROUP_SIZES = QUANT_GROUP_SIZES

# Clipping candidates of the symmetric search: s = fp16(absmax / 7 * factor) and fp16(extreme / -8
# * factor) for factors below 1, which clip the largest element in exchange for a finer grid for
# the rest. None by default: they lower the weights' squared error further, but clipping raised
# Gemma-3-270M's perplexity (int4 G=32: +51% with factors 0.97/0.94/0.91, +31% without; see
# benchmarks/int4_accuracy.py gate), so the search keeps every group's largest element.
SYM_SEARCH_FACTORS: tuple[float, ...] = ()
# Candidates of the asymmetric search: [min + a * range, max - b * range] for each (a, b).
_SHRINKS = (0.0, 0.03, 0.06, 0.09, 0.12, 0.15)
ASYM_SEARCH_SHRINKS = tuple((a, b) for a in _SHRINKS for b in _SHRINKS if a + b > 0)
# Rounds of least-squares refitting of s (and m) to the best candidate's codes.
REFIT_ROUNDS = 2

# Elements of W quantized per step: bounds the temporaries (a few float32 arrays of this size).
_BLOCK_ELEMENTS = 1 << 17

_F16_MAX = float(np.finfo(np.float16).max)


# --- the tensors --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Int4Tensor:
    """A weight [out_features, in_features] in slmcore's int4 format (see the module docstring)."""

    qweight: np.ndarray  # uint8 [out, in_padded // 2]
    scales: np.ndarray  # float16 [out, n_groups]
    mins: np.ndarray | None  # float16 [out, n_groups] when asymmetric, else None
    group_size: int
    in_features: int
    sym: bool

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    @property
    def n_groups(self) -> int:
        return -(-self.in_features // self.group_size)

    @property
    def in_padded(self) -> int:
        return self.n_groups * self.group_size

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of the weight it stands for."""
        return (self.out_features, self.in_features)

    def take_rows(self, rows: np.ndarray) -> "Int4Tensor":
        """The same weight with its rows reordered or selected (W[rows]); groups run along rows, so this is exact."""
        return Int4Tensor(
            qweight=self.qweight[rows], scales=self.scales[rows],
            mins=None if self.mins is None else self.mins[rows],
            group_size=self.group_size, in_features=self.in_features, sym=self.sym,
        )  # fmt: skip


class Int8Rows(NamedTuple):
    """A weight [out, in] as int8 codes with one float16 scale per row: w ~ scales[r] * qweight[r, c]."""

    qweight: np.ndarray  # int8 [out, in], in [-127, 127]
    scales: np.ndarray  # float16 [out]


# What save_quantized takes and load_quantized returns for one checkpoint tensor.
QuantizedValue = Union[Int4Tensor, Int8Rows, "tuple[np.ndarray, str]"]


def _int4_shapes(out_features: int, in_features: int, group_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(qweight shape, scales/mins shape) of an [out, in] weight."""
    n_groups = -(-in_features // group_size)
    return (out_features, n_groups * group_size // 2), (out_features, n_groups)


def _check_int4(t: Int4Tensor, where: str) -> None:
    """InvalidArgumentError unless t's arrays have the dtypes and shapes its fields imply."""
    if not isinstance(t, Int4Tensor):
        raise InvalidArgumentError(f"{where}: expected an Int4Tensor, got {type(t).__name__}")
    if t.group_size not in GROUP_SIZES or not isinstance(t.sym, bool):
        raise InvalidArgumentError(f"{where}: group_size must be one of {GROUP_SIZES} and sym a bool")
    if isinstance(t.in_features, bool) or not isinstance(t.in_features, int) or t.in_features < 1:
        raise InvalidArgumentError(f"{where}: in_features must be a positive integer, got {t.in_features!r}")
    rows = t.qweight.shape[0] if isinstance(t.qweight, np.ndarray) and t.qweight.ndim == 2 else -1
    q_shape, s_shape = _int4_shapes(rows, t.in_features, t.group_size)
    parts = [("qweight", t.qweight, np.uint8, q_shape), ("scales", t.scales, np.float16, s_shape)]
    if t.sym and t.mins is not None:
        raise InvalidArgumentError(f"{where}: a symmetric Int4Tensor has no mins")
    if not t.sym:
        parts.append(("mins", t.mins, np.float16, s_shape))
    for part, array, dtype, shape in parts:
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
            got = f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}"
            raise InvalidArgumentError(f"{where}: {part} must be {np.dtype(dtype)} {shape}, got {got}")


def _as_matrix(w: np.ndarray, name: str, dtype: str | None = None) -> np.ndarray:
    if dtype is not None and dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"{name}: dtype {dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    floating = isinstance(w, np.ndarray) and (
        w.dtype == np.uint16 if dtype == "bfloat16" else np.issubdtype(w.dtype, np.floating)
    )
    if not floating or w.ndim != 2:
        got = f"{getattr(w, 'dtype', type(w).__name__)} {getattr(w, 'shape', '')}"
        raise InvalidArgumentError(f"{name}: expected a 2-D floating-point array [out, in], got {got}")
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise InvalidArgumentError(f"{name}: cannot quantize an empty weight of shape {w.shape}")
    return w


def _finite_block(w: np.ndarray, start: int, stop: int, name: str, dtype: str | None = None) -> np.ndarray:
    """Rows [start, stop) of w (stored as dtype; None: w's own values) as float32; InvalidArgumentError
    naming the tensor on NaN/Inf."""
    if dtype is None:
        block = np.asarray(w[start:stop], dtype=np.float32)
    else:
        block = convert(np.ascontiguousarray(w[start:stop]), dtype, "float32")
    if not np.isfinite(block).all():
        row, col = np.argwhere(~np.isfinite(block))[0]
        raise InvalidArgumentError(
            f"{name}: element [{start + row}, {col}] is {block[row, col]}; weights with NaN or Inf cannot be quantized"
        )
    return block


def _threads(threads: int | None) -> int:
    if threads is None:
        return available_cores()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InvalidArgumentError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def _rows_per_block(width: int) -> int:
    return max(1, _BLOCK_ELEMENTS // width)


# --- int4: quantize -----------------------------------------------------------------------------


def quantize_int4(
    w: np.ndarray,
    group_size: int = 128,
    sym: bool = True,
    search: bool = True,
    *,
    name: str = "weight",
    dtype: str | None = None,
    threads: int | None = None,
) -> Int4Tensor:
    """Quantize a float weight [out, in] to slmcore's int4 format.

    dtype names how w is stored when its numpy type does not say it ("bfloat16": uint16 bits).
    Symmetric quantization runs in C++ (kernels/cpu/int4_quantize.inc) on `threads` threads
    (default: every core this process may use), reading w as stored; asymmetric runs in numpy,
    block of rows by block of rows.
    """
    w = _as_matrix(w, name, dtype)
    if isinstance(group_size, bool) or group_size not in GROUP_SIZES:
        raise InvalidArgumentError(f"group_size={group_size!r} is not supported; choose one of {GROUP_SIZES}")
    if not isinstance(sym, bool) or not isinstance(search, bool):
        raise InvalidArgumentError("sym and search must be True or False")
    out_features, in_features = w.shape
    if sym:
        from slmcore import _core

        if dtype == "bfloat16" or w.dtype in (np.float32, np.float16):
            source = np.ascontiguousarray(w)
        else:
            source = np.ascontiguousarray(w, dtype=np.float32)
        qweight, scales, row, _ = _core.kernels.int4_quantize_sym(
            "auto", source, group_size, search, list(SYM_SEARCH_FACTORS) if search else [], REFIT_ROUNDS,
            _threads(threads), "bfloat16" if dtype == "bfloat16" else None,
        )  # fmt: skip
        if row >= 0:
            values = _finite_block(w, row, row + 1, name, dtype)  # raises for the row's NaN / Inf, if any
            raise InvalidArgumentError(
                f"{name}: values up to {float(np.abs(values).max()):g} exceed what a float16 scale can represent "
                f"(|w| <= {_F16_MAX * 7:g}); rescale the weight before quantizing"
            )
        return Int4Tensor(qweight, scales, None, group_size, in_features, sym)
    q_shape, s_shape = _int4_shapes(out_features, in_features, group_size)
    n_groups, in_padded = s_shape[1], q_shape[1] * 2
    qweight = np.empty(q_shape, dtype=np.uint8)
    scales = np.empty(s_shape, dtype=np.float16)
    mins = np.empty(s_shape, dtype=np.float16)
    # Which elements of a row are real (not padding), as [n_groups, G]; None when there is no padding.
    valid = None if in_padded == in_features else (np.arange(in_padded) < in_features).reshape(n_groups, group_size)

    step = _rows_per_block(in_padded)
    for start in range(0, out_features, step):
        block = _finite_block(w, start, start + step, name, dtype)
        rows = block.shape[0]
        x = np.zeros((rows, in_padded), dtype=np.float32)
        x[:, :in_features] = block
        x = x.reshape(rows, n_groups, group_size)
        codes, s, m = _quantize_asym(x, valid, search, name)
        mins[start : start + rows] = m
        scales[start : start + rows] = s
        qweight[start : start + rows] = pack_nibbles(codes.reshape(rows, in_padded))
    return Int4Tensor(qweight, scales, mins, group_size, in_features, sym)


def _asym_refit(
    x: np.ndarray, valid: np.ndarray | None, q: np.ndarray, s: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares (s, m) for fixed codes (the regression of x on q over real elements), in float16."""
    n = np.float32(x.shape[-1]) if valid is None else valid.sum(axis=-1).astype(np.float32)
    weight = np.float32(1) if valid is None else valid
    q_mean = (q * weight).sum(axis=-1) / n
    x_mean = (x * weight).sum(axis=-1) / n
    dq = (q - q_mean[..., None]) * weight
    var = np.einsum("...g,...g->...", dq, dq)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = np.einsum("...g,...g->...", dq, x) / var
        rs = np.where(var > 0, slope, s).astype(np.float16)
        rm = np.where(var > 0, x_mean - slope * q_mean, m).astype(np.float16)
    ok = np.isfinite(rs) & np.isfinite(rm) & (rs >= 0)
    return np.where(ok, rs, s), np.where(ok, rm, m)


def _asym_try(x: np.ndarray, valid: np.ndarray | None, s: np.ndarray, m: np.ndarray) -> tuple:
    q, error = _asym_codes(x, valid, s, m)
    return q, s, m, error


def _keep_better(best: tuple, candidate: tuple) -> tuple:
    """Per group, the candidate's (q, s, error) where its error is strictly smaller, else best's.

    best and candidate are (q [..., G], s [...], error [...]) for sym, (q, s, m, error) for asym.
    """
    better = candidate[-1] < best[-1]
    q = np.where(better[..., None], candidate[0], best[0])
    rest = tuple(np.where(better, c, b) for b, c in zip(best[1:], candidate[1:]))
    return (q, *rest)


def _asym_codes(
    x: np.ndarray, valid: np.ndarray | None, s: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(q as float32 in [0, 15], squared error per group over real elements) for float16 s and m."""
    s32 = s.astype(np.float32)[..., None]
    m32 = m.astype(np.float32)[..., None]
    zero = s32 == 0
    q = np.rint((x - m32) / np.where(zero, np.float32(1), s32))
    np.clip(q, 0, 15, out=q)
    q[np.broadcast_to(zero, q.shape)] = 0
    error = x - (q * s32 + m32)
    if valid is not None:
        error *= valid
    return q, np.einsum("...g,...g->...", error, error)


def _asym_scale(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore"):
        return ((high - low) / np.float32(15)).astype(np.float16), low.astype(np.float16)


def _quantize_asym(
    x: np.ndarray, valid: np.ndarray | None, search: bool, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nibbles [rows, n_groups, G], float16 scales and mins [rows, n_groups]; padding is masked out."""
    if valid is None:
        low, high = x.min(axis=-1), x.max(axis=-1)
    else:
        low = np.where(valid, x, np.float32(np.inf)).min(axis=-1)
        high = np.where(valid, x, np.float32(-np.inf)).max(axis=-1)
    with np.errstate(over="ignore"):
        spread = high - low
    s, m = _asym_scale(low, high)
    if not (np.isfinite(s).all() and np.isfinite(m).all()):
        raise InvalidArgumentError(
            f"{name}: values from {float(low.min()):g} to {float(high.max()):g} exceed what float16 scales and "
            f"minimums can represent (|w| <= {_F16_MAX:g}, max - min <= {_F16_MAX * 15:g}); rescale the weight"
        )
    q, error = _asym_codes(x, valid, s, m)
    if search:
        for a, b in ASYM_SEARCH_SHRINKS:
            cs, cm = _asym_scale(low + np.float32(a) * spread, high - np.float32(b) * spread)
            q, s, m, error = _keep_better((q, s, m, error), _asym_try(x, valid, cs, cm))
        for _ in range(REFIT_ROUNDS):
            q, s, m, error = _keep_better((q, s, m, error), _asym_try(x, valid, *_asym_refit(x, valid, q, s, m)))
    return q.astype(np.uint8), s, m


# --- int4: nibbles and dequantize ---------------------------------------------------------------


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """uint8 codes [..., 2n] in 0..15 -> bytes [..., n]: element 2j in the low nibble, 2j + 1 in the high."""
    return codes[..., 0::2] | (codes[..., 1::2] << np.uint8(4))


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """bytes [..., n] -> uint8 codes [..., 2n] (inverse of pack_nibbles)."""
    codes = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    codes[..., 0::2] = packed & np.uint8(0x0F)
    codes[..., 1::2] = packed >> np.uint8(4)
    return codes


def dequantize_int4(t: Int4Tensor) -> np.ndarray:
    """The float32 weight [out, in] an Int4Tensor stands for (padding dropped)."""
    _check_int4(t, "dequantize_int4")
    out = np.empty(t.shape, dtype=np.float32)
    step = _rows_per_block(t.in_padded)
    for start in range(0, t.out_features, step):
        stop = min(start + step, t.out_features)
        codes = unpack_nibbles(t.qweight[start:stop]).reshape(stop - start, t.n_groups, t.group_size)
        s = t.scales[start:stop].astype(np.float32)[..., None]
        if t.sym:
            values = s * (codes.astype(np.float32) - np.float32(8))
        else:
            values = s * codes.astype(np.float32) + t.mins[start:stop].astype(np.float32)[..., None]
        out[start:stop] = values.reshape(stop - start, t.in_padded)[:, : t.in_features]
    return out


# --- int8 rows ----------------------------------------------------------------------------------


def quantize_int8_rows(w: np.ndarray, *, name: str = "weight", dtype: str | None = None) -> Int8Rows:
    """Per-row int8: s = fp16(absmax / 127) (float32 division), q = clamp(round(w / s), -127, 127); q = 0 where s = 0."""
    w = _as_matrix(w, name, dtype)
    qweight = np.empty(w.shape, dtype=np.int8)
    scales = np.empty(w.shape[0], dtype=np.float16)
    step = _rows_per_block(w.shape[1])
    for start in range(0, w.shape[0], step):
        block = _finite_block(w, start, start + step, name, dtype)
        base = np.abs(block).max(axis=1) / np.float32(127)
        with np.errstate(over="ignore"):
            s = base.astype(np.float16)
        if np.isinf(s).any():
            raise InvalidArgumentError(
                f"{name}: values up to {float(base.max()) * 127:g} exceed what a float16 row scale can represent"
            )
        s32 = s.astype(np.float32)[:, None]
        zero = s32 == 0
        q = np.clip(np.rint(block / np.where(zero, np.float32(1), s32)), -127, 127)
        q[np.broadcast_to(zero, q.shape)] = 0
        qweight[start : start + block.shape[0]] = q.astype(np.int8)
        scales[start : start + block.shape[0]] = s
    return Int8Rows(qweight, scales)


def dequantize_int8_rows(t: Int8Rows) -> np.ndarray:
    """The float32 weight [out, in] of int8 rows: float32 scales[r] * qweight[r, c]."""
    qweight, scales = t
    if qweight.dtype != np.int8 or qweight.ndim != 2 or scales.dtype != np.float16 or scales.shape != qweight.shape[:1]:
        raise InvalidArgumentError("dequantize_int8_rows: expected int8 qweight [out, in] and float16 scales [out]")
    return scales.astype(np.float32)[:, None] * qweight.astype(np.float32)


# --- GGUF Q4_0 / Q4_1 import --------------------------------------------------------------------

# Blocks of 32 elements: Q4_0 = fp16 d + 16 bytes; Q4_1 = fp16 d + fp16 m + 16 bytes. In both, byte j
# holds element j in its low nibble and element j + 16 in its high nibble (ggml-common.h's
# block_q4_0 / block_q4_1; checked against gguf.quants in tests/test_quant.py).
_GGUF_BLOCK = 32
GGUF_GROUP_SIZE = _GGUF_BLOCK  # Q4_0 / Q4_1 blocks: int4 imported from them has this group size
_GGUF_LAYOUTS = {GGMLQuantizationType.Q4_0: (18, True), GGMLQuantizationType.Q4_1: (20, False)}


def int4_from_gguf(
    data: np.ndarray, ggml_type: GGMLQuantizationType | int, shape: tuple[int, int], *, name: str = "weight"
) -> Int4Tensor:
    """A GGUF tensor's raw Q4_0 / Q4_1 blocks -> the same weight as an Int4Tensor, without loss.

    Q4_0 (w = d * (q - 8)) becomes symmetric G=32 with scales = d; Q4_1 (w = d * q + m) becomes
    asymmetric G=32 with scales = d, mins = m. shape is numpy's [out, in] (GGUF dims reversed).
    """
    try:
        ggml_type = GGMLQuantizationType(ggml_type)
    except ValueError as e:
        raise InvalidArgumentError(f"{name}: unknown ggml type {ggml_type!r}") from e
    if ggml_type not in _GGUF_LAYOUTS:
        raise InvalidArgumentError(f"{name}: {ggml_type.name} has no lossless int4 form; Q4_0 and Q4_1 do")
    block_bytes, sym = _GGUF_LAYOUTS[ggml_type]
    if len(shape) != 2 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape):
        raise InvalidArgumentError(f"{name}: shape must be [out, in] with positive sizes, got {shape}")
    out_features, in_features = int(shape[0]), int(shape[1])
    if in_features % _GGUF_BLOCK != 0:
        raise ModelFormatError(f"{name}: {ggml_type.name} rows of {in_features} elements are not whole blocks of 32")
    n_blocks = in_features // _GGUF_BLOCK
    expected = out_features * n_blocks * block_bytes
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.size != expected:
        got = f"{getattr(data, 'dtype', type(data).__name__)} of {getattr(data, 'size', '?')} bytes"
        raise ModelFormatError(f"{name}: {ggml_type.name} [{out_features}, {in_features}] needs {expected} bytes, got {got}")

    blocks = data.reshape(out_features, n_blocks, block_bytes)
    scales = np.ascontiguousarray(blocks[..., 0:2]).view(np.float16)[..., 0]
    mins = None if sym else np.ascontiguousarray(blocks[..., 2:4]).view(np.float16)[..., 0]
    for part, array in (("scales (d)", scales), ("mins (m)", mins)):
        if array is not None and not np.isfinite(array).all():
            raise ModelFormatError(f"{name}: a {ggml_type.name} block has a NaN or Inf {part}")
    packed = blocks[..., block_bytes - 16 :]
    codes = np.concatenate([packed & np.uint8(0x0F), packed >> np.uint8(4)], axis=-1)  # elements 0..15, 16..31
    qweight = pack_nibbles(codes).reshape(out_features, in_features // 2)
    return Int4Tensor(qweight, scales, mins, _GGUF_BLOCK, in_features, sym)


# --- checkpoints --------------------------------------------------------------------------------


def quantized_names(weight_name: str, sym: bool = True) -> tuple[str, ...]:
    """The checkpoint names of an int4 matrix: 'X.weight' -> ('X.qweight', 'X.scales'[, 'X.mins'])."""
    stem = _stem(weight_name)
    return (f"{stem}.qweight", f"{stem}.scales") + (() if sym else (f"{stem}.mins",))


def _stem(weight_name: str) -> str:
    if not weight_name.endswith(".weight") or weight_name == ".weight":
        raise InvalidArgumentError(f"quantized tensors are stored under a matrix's 'X.weight' name, got {weight_name!r}")
    return weight_name[: -len(".weight")]


def save_quantized(
    out_dir: str | os.PathLike,
    config: dict,
    tensors: Mapping[str, QuantizedValue],
    quantization_config: QuantizationConfig | dict | None = None,
    extra_files: Sequence[Path] = (),
) -> Path:
    """Write a quantized checkpoint: model.safetensors + config.json with its quantization_config.

    `tensors` maps checkpoint names of the unquantized model ('model.layers.0.mlp.up_proj.weight',
    'model.norm.weight', ...) to an Int4Tensor, an Int8Rows, or (array, dtype) for tensors kept as
    they are (dtype float32 | float16 | bfloat16, bfloat16 as uint16 bits). quantization_config's
    lists are derived from the values; when one is given, its bits, group_size and sym (and any
    lists it has) must agree with them. The checkpoint is read back with load_quantized before it
    appears under out_dir. extra_files (tokenizer files and the like) are copied next to it.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidArgumentError(f"{out_dir} already exists and is not an empty directory; choose a new path")
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"config must be the config.json dict, got {type(config).__name__}")
    derived, entries = _plan(tensors)
    if quantization_config is not None:
        _check_agrees(quantization_config, derived)
    full_config = {**config, "quantization_config": derived.to_dict()}
    model_config = ModelConfig.from_dict(full_config)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        staging.chmod(0o755)
        write_safetensors(staging / "model.safetensors", entries, metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(full_config, indent=2, ensure_ascii=False) + "\n", "utf-8")
        for extra in extra_files:
            shutil.copyfile(extra, staging / Path(extra).name)
        with Checkpoint.open(staging) as checkpoint:
            load_quantized(checkpoint, model_config)
        if out_dir.exists():
            out_dir.rmdir()
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _plan(tensors: Mapping[str, QuantizedValue]) -> tuple[QuantizationConfig, list]:
    """The quantization_config the values imply, and write_safetensors entries for them, in order."""
    if not isinstance(tensors, Mapping) or not tensors:
        raise InvalidArgumentError("tensors must be a non-empty mapping of checkpoint names to tensors")
    formats: set[tuple[int, bool]] = set()
    unquantized: list[str] = []
    int8: list[str] = []
    entries: list = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(f"tensor names must be strings, got {name!r}")
        if isinstance(value, Int4Tensor):
            _check_int4(value, name)
            formats.add((value.group_size, value.sym))
            parts = [value.qweight, value.scales] + ([] if value.sym else [value.mins])
            for part_name, array, dtype in zip(quantized_names(name, value.sym), parts, ("U8", "F16", "F16")):
                entries.append((part_name, array, dtype, array.shape))
        elif isinstance(value, Int8Rows):
            qweight, scales = value
            if qweight.dtype != np.int8 or qweight.ndim != 2 or scales.dtype != np.float16 or scales.shape != qweight.shape[:1]:
                raise InvalidArgumentError(f"{name}: Int8Rows needs int8 qweight [out, in] and float16 scales [out]")
            stem = _stem(name)
            int8.append(stem)
            entries += [(f"{stem}.qweight", qweight, "I8", qweight.shape), (f"{stem}.scales", scales, "F16", scales.shape)]
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], np.ndarray):
            array, dtype = value
            if dtype not in WEIGHT_DTYPES:
                raise InvalidArgumentError(f"{name}: dtype {dtype!r} is not one of {', '.join(WEIGHT_DTYPES)}")
            if array.ndim == 2:
                unquantized.append(_stem(name))
            entries.append((name, array, dtype, array.shape))
        else:
            raise InvalidArgumentError(
                f"{name}: expected an Int4Tensor, Int8Rows or (array, dtype), got {type(value).__name__}"
            )
    if len(formats) != 1:
        raise InvalidArgumentError(
            "a checkpoint holds int4 tensors of one group_size and one sym; got "
            + (", ".join(f"(group_size={g}, sym={s})" for g, s in sorted(formats)) if formats else "none")
        )
    ((group_size, sym),) = formats
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise InvalidArgumentError("two tensors map to the same checkpoint name (e.g. 'X.qweight' given twice)")
    return QuantizationConfig(group_size, sym, tuple(unquantized), tuple(int8)), entries


def _check_agrees(given: QuantizationConfig | dict, derived: QuantizationConfig) -> None:
    d = given.to_dict() if isinstance(given, QuantizationConfig) else dict(given)
    wanted = derived.to_dict()
    for key, value in d.items():
        if key not in wanted:
            raise InvalidArgumentError(f"quantization_config has an unknown field {key!r}")
        same = sorted(value) == sorted(wanted[key]) if key in ("unquantized", "int8") else value == wanted[key]
        if not same:
            raise InvalidArgumentError(
                f"quantization_config.{key} is {value!r} but the tensors given imply {wanted[key]!r}"
            )


def load_quantized(checkpoint: Checkpoint, config: ModelConfig, *, canonical: bool = False) -> dict[str, QuantizedValue]:
    """Every weight of an slmcore-quantized checkpoint, checked against config.json: name -> value.

    Names are the checkpoint names of the engine's canonical weights (slmcore.models.canonical_naming:
    Llama's for every attention family, 'model.layers.0.self_attn.q_proj.weight'; RWKV's own,
    'rwkv.blocks.0.attention.key.weight'), or with canonical=True the canonical names themselves
    ('layers.0.self_attn.q_proj'); values are
    Int4Tensor / Int8Rows of zero-copy views, or (view, dtype) for norms, biases and unquantized
    matrices. A tied lm_head is not returned. Every dtype, shape and scale is checked (the file is
    untrusted): ModelFormatError naming the tensor on any mismatch, ConfigError when config.json
    has no quantization_config.
    """
    qc = config.quantization
    if qc is None:
        raise ConfigError(f"{checkpoint.model_dir}: config.json has no quantization_config; not a quantized checkpoint")
    naming = canonical_naming(config)  # ConfigError for an unsupported model_type
    unquantized, int8 = set(qc.unquantized), set(qc.int8)
    stems_seen: set[str] = set()
    weights: dict[str, QuantizedValue] = {}
    for canonical_name, shape in naming.weight_shapes(config).items():
        if canonical_name == "lm_head" and config.tie_word_embeddings:
            continue
        name = _find_stored(checkpoint, naming.checkpoint_names(canonical_name))
        key = canonical_name if canonical else name
        if len(shape) == 1:
            weights[key] = _load_float(checkpoint, name, shape)
            continue
        stem = _stem(name)
        stems_seen.add(stem)
        if stem in int8:
            weights[key] = _load_int8(checkpoint, stem, shape)
        elif stem in unquantized:
            if f"{stem}.qweight" in checkpoint.quantized or f"{stem}.qweight" in checkpoint.tensors:
                raise ModelFormatError(f"{checkpoint.model_dir}: {stem!r} is listed as unquantized but has a .qweight")
            weights[key] = _load_float(checkpoint, name, shape)
        else:
            weights[key] = _load_int4(checkpoint, stem, shape, qc)
    unknown = sorted((unquantized | int8) - stems_seen)
    if unknown:
        raise ModelFormatError(
            f"{checkpoint.model_dir}: quantization_config lists {unknown}, which are not matrices of this model"
        )
    return weights


def _find_stored(checkpoint: Checkpoint, names: tuple[str, ...]) -> str:
    """The first of names stored as itself or, for 'X.weight', as 'X.qweight'."""
    for name in names:
        stored = [name]
        if name.endswith(".weight"):
            stored.append(f"{_stem(name)}.qweight")
        if any(n in checkpoint.tensors or n in checkpoint.unsupported for n in stored):
            return name
    raise ModelFormatError(f"{checkpoint.model_dir}: the checkpoint has no tensor {names[0]!r} (nor its .qweight)")


def _stored(checkpoint: Checkpoint, name: str) -> tuple[np.ndarray, str]:
    """(view, dtype name) of any tensor we can read, floating or quantized storage."""
    if name in checkpoint.quantized:
        return checkpoint.quantized_tensor(name)
    return checkpoint.tensor(name)  # ModelFormatError naming the tensor when missing or of another dtype


def _expect(checkpoint: Checkpoint, name: str, dtypes: tuple[str, ...], shape: tuple[int, ...], what: str) -> np.ndarray:
    array, dtype = _stored(checkpoint, name)
    if dtype not in dtypes or array.shape != tuple(shape):
        raise ModelFormatError(
            f"{checkpoint.model_dir}: tensor {name!r} is {dtype} {list(array.shape)}, expected "
            f"{' or '.join(dtypes)} {list(shape)} ({what})"
        )
    return array


def _finite_scales(checkpoint: Checkpoint, name: str, array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ModelFormatError(f"{checkpoint.model_dir}: tensor {name!r} has NaN or Inf values")
    return array


def _load_float(checkpoint: Checkpoint, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    if name.endswith(".weight") and f"{_stem(name)}.qweight" in checkpoint.quantized and name not in checkpoint.tensors:
        raise ModelFormatError(
            f"{checkpoint.model_dir}: {_stem(name)!r} is stored quantized but quantization_config does not list it "
            "(norms and vectors are never quantized; matrices are int4 unless listed)"
        )
    array = _expect(checkpoint, name, WEIGHT_DTYPES, shape, "from config.json")
    return array, checkpoint.tensors[name].dtype


def _load_int4(checkpoint: Checkpoint, stem: str, shape: tuple[int, ...], qc: QuantizationConfig) -> Int4Tensor:
    out_features, in_features = shape
    if f"{stem}.weight" in checkpoint.tensors or f"{stem}.weight" in checkpoint.unsupported:
        raise ModelFormatError(
            f"{checkpoint.model_dir}: {stem + '.weight'!r} is stored unquantized, but quantization_config does not "
            "list it in 'unquantized'"
        )
    q_shape, s_shape = _int4_shapes(out_features, in_features, qc.group_size)
    what = f"int4 of [{out_features}, {in_features}] with group_size {qc.group_size}"
    qweight = _expect(checkpoint, f"{stem}.qweight", ("uint8",), q_shape, what)
    scales = _finite_scales(checkpoint, f"{stem}.scales", _expect(checkpoint, f"{stem}.scales", ("float16",), s_shape, what))
    mins_name = f"{stem}.mins"
    has_mins = mins_name in checkpoint.tensors or mins_name in checkpoint.unsupported
    if qc.sym:
        if has_mins:
            raise ModelFormatError(f"{checkpoint.model_dir}: tensor {mins_name!r} is present but quantization_config.sym is true")
        mins = None
    else:
        if not has_mins:
            raise ModelFormatError(
                f"{checkpoint.model_dir}: the checkpoint has no tensor {mins_name!r}, which asymmetric int4 (sym false) needs"
            )
        mins = _finite_scales(checkpoint, mins_name, _expect(checkpoint, mins_name, ("float16",), s_shape, what))
    return Int4Tensor(qweight, scales, mins, qc.group_size, in_features, qc.sym)


def _load_int8(checkpoint: Checkpoint, stem: str, shape: tuple[int, ...]) -> Int8Rows:
    what = f"int8 rows of [{shape[0]}, {shape[1]}]"
    qweight = _expect(checkpoint, f"{stem}.qweight", ("int8",), shape, what)
    scales = _expect(checkpoint, f"{stem}.scales", ("float16",), shape[:1], what)
    return Int8Rows(qweight, _finite_scales(checkpoint, f"{stem}.scales", scales))


# --- whole models: canonical engine weights <-> engine entries ------------------------------------

# The embedding (read one row per token) and the lm_head (vocab x hidden, often tied to it) are not
# int4 when a model is quantized at load: they are int8 rows, or kept in 16 bits (embedding="16bit").
INT8_MATRICES = ("embed_tokens", "lm_head")
EMBEDDING_FORMATS = ("int8", "16bit")
# Matrices kept as they are: learned positions are read one row per token, like the embedding.
KEPT_MATRICES = ("position_embeddings",)

EngineWeights = dict  # canonical name -> engine entry (see engine_entry)


def engine_entry(value: QuantizedValue, threads: int | None = None) -> tuple:
    """What _core.Engine takes for one weight: (array, dtype) as it is; ("int4", packed, rows, cols,
    group_size, sym) with the canonical format repacked for the CPU kernels (on `threads` threads,
    default every core this process may use); ("int8", q, scales)."""
    from slmcore import _core

    if isinstance(value, Int4Tensor):
        packed = _core.kernels.int4_pack(
            "auto", value.qweight, value.scales, value.mins, value.group_size, value.in_features, _threads(threads)
        )
        return ("int4", packed, value.out_features, value.in_features, value.group_size, value.sym)
    if isinstance(value, Int8Rows):
        return ("int8", np.ascontiguousarray(value.qweight), np.ascontiguousarray(value.scales))
    return value


def canonical_value(entry: tuple) -> QuantizedValue:
    """The inverse of engine_entry (packed int4 back to the canonical format)."""
    from slmcore import _core

    kind = entry[0] if isinstance(entry[0], str) else None
    if kind == "int4":
        _, packed, rows, cols, group_size, sym = entry
        qweight, scales, mins = _core.kernels.int4_unpack(packed, rows, cols, group_size, sym)
        return Int4Tensor(qweight, scales, mins, group_size, cols, sym)
    if kind == "int8":
        return Int8Rows(entry[1], entry[2])
    return entry


def quantize_engine_weights(
    weights: dict[str, tuple[np.ndarray, str]],
    group_size: int = 128,
    sym: bool = True,
    search: bool = False,
    progress: bool = False,
    embedding: str = "int8",
    prequantized: Mapping[str, Int4Tensor] | None = None,
    threads: int | None = None,
) -> EngineWeights:
    """A family's canonical weights (name -> (array, dtype)) -> engine entries with every layer
    matrix in int4 and the embedding / lm_head as int8 rows (embedding="int8") or in 16 bits
    ("16bit": float16 / bfloat16 as stored, float32 rounded to float16); norms, biases and learned
    positions stay. One tensor at a time: each source is released (popped from `weights`) as soon
    as it is quantized and packed, so at most one float32 copy of one tensor exists besides the result.

    prequantized: canonical name -> the same matrix already in int4 (a GGUF's Q4_0/Q4_1 blocks),
    used as it is instead of quantizing the float source; its group size and symmetry must be
    group_size and sym. threads: for quantize_int4 (default: every core this process may use)."""
    if isinstance(group_size, bool) or group_size not in GROUP_SIZES:
        raise InvalidArgumentError(f"group_size={group_size!r} is not supported; choose one of {GROUP_SIZES}")
    if embedding not in EMBEDDING_FORMATS:
        raise InvalidArgumentError(f"embedding={embedding!r} is not supported; choose one of {EMBEDDING_FORMATS}")
    prequantized = dict(prequantized or {})
    for name, t in prequantized.items():
        source = weights.get(name)
        if source is None or name in KEPT_MATRICES or name in INT8_MATRICES:
            raise InvalidArgumentError(f"prequantized {name!r} is not one of the model's int4 matrices")
        if t.shape != source[0].shape or t.group_size != group_size or t.sym != sym:
            raise InvalidArgumentError(
                f"prequantized {name!r}: shape {t.shape}, G={t.group_size}, sym={t.sym}; the model needs "
                f"{source[0].shape}, G={group_size}, sym={sym}"
            )
    # Tied weights (lm_head = embed_tokens) are one array under two names: quantize it once. Found
    # while every array is alive (ids of freed arrays are reused).
    first_name: dict[int, str] = {}
    alias = {name: first_name.setdefault(id(array), name) for name, (array, _) in weights.items()}
    out: EngineWeights = {}
    names = list(weights)
    # disable=None: the bar shows on a terminal only.
    for name in tqdm(names, desc="Quantizing to int4", unit="tensor", disable=None if progress else True, leave=False):
        array, dtype = weights.pop(name)
        if alias[name] != name:
            out[name] = out[alias[name]]
            continue
        if array.ndim != 2 or name in KEPT_MATRICES:
            entry = (array, dtype)
        elif name in prequantized:
            entry = engine_entry(prequantized.pop(name), threads)
        elif name in INT8_MATRICES and embedding == "int8":
            entry = engine_entry(quantize_int8_rows(array, name=name, dtype=dtype))
        elif name in INT8_MATRICES:
            entry = _sixteen_bit(array, dtype, name)
        else:
            entry = engine_entry(
                quantize_int4(array, group_size, sym=sym, search=search, name=name, dtype=dtype, threads=threads), threads
            )
        out[name] = entry
    return out


def _sixteen_bit(array: np.ndarray, dtype: str, name: str) -> tuple[np.ndarray, str]:
    """(array, dtype) in 16 bits: float16 and bfloat16 as they are, float32 rounded to float16."""
    if dtype in ("float16", "bfloat16"):
        return (array, dtype)
    with np.errstate(over="ignore"):
        half = convert(array, dtype, "float16")
    if not np.isfinite(half).all():
        raise InvalidArgumentError(f"{name}: values beyond float16's range (|w| <= {_F16_MAX:g}) or NaN; cannot keep it in 16 bits")
    return (half, "float16")


def quantized_checkpoint_tensors(entries: EngineWeights, config: ModelConfig) -> dict[str, QuantizedValue]:
    """Engine entries -> save_quantized's tensors under checkpoint names (a tied lm_head is left out)."""
    checkpoint_names = canonical_naming(config).checkpoint_names
    tensors: dict[str, QuantizedValue] = {}
    for name, entry in entries.items():
        if name == "lm_head" and config.tie_word_embeddings:
            continue
        tensors[checkpoint_names(name)[0]] = canonical_value(entry)
    return tensors


def entry_nbytes(entry: tuple) -> int:
    """Bytes of one engine entry's data."""
    if isinstance(entry[0], str):
        return sum(a.nbytes for a in entry[1:] if isinstance(a, np.ndarray))
    return entry[0].nbytes


__all__ = [
    "GROUP_SIZES",
    "Int4Tensor",
    "Int8Rows",
    "quantize_int4",
    "dequantize_int4",
    "quantize_int8_rows",
    "dequantize_int8_rows",
    "int4_from_gguf",
    "pack_nibbles",
    "unpack_nibbles",
    "quantized_names",
    "save_quantized",
    "load_quantized",
    "quantize_engine_weights",
]
