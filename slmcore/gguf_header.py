"""A GGUF file's header, read with every count, length and offset checked against the file size.

The format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all little-endian:
    magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
    kv_count x  (string key, u32 value_type, value)
    tensor_count x  (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
    padding to `general.alignment` (default 32), then the tensor data; offsets are relative to it.
A string is a u64 byte length and that many UTF-8 bytes; an array is a u32 element type, a u64
count and the elements. dims are listed fastest-varying first (the reverse of numpy's shape).

The `gguf` package's GGUFReader believes every count and offset it reads, so a hostile file can
make it allocate or loop without bound. This reader runs first: nothing is read or allocated
before its size has been checked against the bytes that remain (Python ints, so nothing
overflows), and every failure is a ModelFormatError naming the file and what is wrong.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from slmcore.errors import ModelFormatError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # version 1 used 32-bit counts; nothing current writes it
DEFAULT_ALIGNMENT = 32

# Metadata value types (GGUFValueType): id -> (name, struct format or None for string/array).
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(13)
_SCALAR_FORMATS = {
    _UINT8: "<B", _INT8: "<b", _UINT16: "<H", _INT16: "<h", _UINT32: "<I", _INT32: "<i",
    _FLOAT32: "<f", _BOOL: "<B", _UINT64: "<Q", _INT64: "<q", _FLOAT64: "<d",
}  # fmt: skip
VALUE_TYPE_NAMES = {
    _UINT8: "UINT8", _INT8: "INT8", _UINT16: "UINT16", _INT16: "INT16", _UINT32: "UINT32", _INT32: "INT32",
    _FLOAT32: "FLOAT32", _BOOL: "BOOL", _STRING: "STRING", _ARRAY: "ARRAY", _UINT64: "UINT64",
    _INT64: "INT64", _FLOAT64: "FLOAT64",
}  # fmt: skip

# Limits above every real file that keep a hostile one from costing minutes and gigabytes:
# GGUFReader, which runs after this, makes two numpy arrays (~100 bytes each) for every string
# and loops in Python over every array element (~10 µs each). Real files: Gemma 3 has 786432
# elements in all (tokens, scores and types of 262144 tokens), Llama 3 about 540000 (with its
# merges). llama.cpp's own loader refuses tensor names of 64 bytes or more.
MAX_ARRAY_ELEMENTS = 1 << 21  # in all arrays of the file together
MAX_ARRAY_NESTING = 2  # an array of arrays of scalars at most
MAX_KEY_BYTES = 65535  # the spec's limit
MAX_TENSOR_NAME_BYTES = 256
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ALIGNMENT = 1 << 16

# The fewest bytes one key/value pair (8-byte key length, 1-byte key, 4-byte type, 1-byte value)
# and one tensor info (8-byte name length, 1-byte name, 4-byte n_dims, one 8-byte dim, 4-byte
# type, 8-byte offset) can take: counts larger than the file could hold are refused outright.
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8


@dataclass(frozen=True)
class GGUFTensorInfo:
    """One tensor of the file: shape in numpy order (dims reversed), ggml type, absolute byte range."""

    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType
    offset: int  # absolute offset of the first byte in the file
    nbytes: int


@dataclass
class GGUFHeader:
    """Everything before the tensor data, validated."""

    path: Path
    version: int
    metadata: dict[str, Any]  # scalars as int/float/bool/str; arrays of numbers as numpy arrays, others as lists
    value_types: dict[str, tuple[int, ...]]  # key -> (type,) or (ARRAY, element type, ...)
    tensors: dict[str, GGUFTensorInfo] = field(default_factory=dict)  # in file order
    alignment: int = DEFAULT_ALIGNMENT
    data_start: int = 0


def read_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Parse and validate a GGUF file's header and tensor table; ModelFormatError on anything wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise ModelFormatError(f"{path}: file is {size} bytes, too short for a GGUF header (24 bytes)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _HeaderParser(path, data, size).parse()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read GGUF file: {e}") from e


class _HeaderParser:
    def __init__(self, path: Path, data: mmap.mmap, size: int) -> None:
        self.path = path
        self.data = data
        self.size = size
        self.pos = 0
        self.array_elements = 0

    def error(self, message: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path}: {message}")

    # -- primitive reads, each bounds-checked --------------------------------------------------

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.error(
                f"truncated or corrupt: {what} at byte {self.pos} needs {n} bytes but only "
                f"{self.size - self.pos} remain in the file"
            )

    def scalar(self, fmt: str, what: str) -> Any:
        width = struct.calcsize(fmt)
        self.need(width, what)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += width
        return value

    def string(self, what: str, max_bytes: int | None = None) -> str:
        length = self.scalar("<Q", f"length of {what}")
        if max_bytes is not None and length > max_bytes:
            raise self.error(f"{what} is {length} bytes long, more than the {max_bytes}-byte limit")
        self.need(length, f"{what} ({length} bytes)")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"{what} is not valid UTF-8: {e}") from e

    # -- structure -----------------------------------------------------------------------------

    def parse(self) -> GGUFHeader:
        magic = bytes(self.data[0:4])
        if magic != GGUF_MAGIC:
            raise self.error(f"not a GGUF file: the first 4 bytes are {magic!r}, expected {GGUF_MAGIC!r}")
        self.pos = 4
        version = self.scalar("<I", "version")
        if version & 0xFFFF == 0 and version != 0:
            raise self.error("the file is big-endian GGUF; only little-endian files are supported")
        if version not in SUPPORTED_VERSIONS:
            raise self.error(
                f"GGUF version {version} is not supported; supported versions: "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
            )
        tensor_count = self.scalar("<Q", "tensor count")
        kv_count = self.scalar("<Q", "metadata key/value count")
        room = self.size - self.pos
        if kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_INFO_BYTES > room:
            raise self.error(
                f"header claims {kv_count} metadata entries and {tensor_count} tensors, more than the "
                f"{room} remaining bytes of the file can hold; the file is corrupt or truncated"
            )

        header = GGUFHeader(path=self.path, version=version, metadata={}, value_types={})
        for index in range(kv_count):
            key = self.string(f"metadata key #{index}", MAX_KEY_BYTES)
            if key in header.metadata:
                raise self.error(f"metadata key {key!r} appears twice")
            value_type = self.scalar("<I", f"value type of {key!r}")
            value, types = self.value(key, value_type, depth=0)
            header.metadata[key] = value
            header.value_types[key] = types

        header.alignment = self.alignment(header)
        infos = [self.tensor_info(index) for index in range(tensor_count)]
        header.data_start = -(-self.pos // header.alignment) * header.alignment
        header.tensors = self.place_tensors(infos, header)
        return header

    def value(self, key: str, value_type: int, depth: int) -> tuple[Any, tuple[int, ...]]:
        """One metadata value of value_type and its type signature."""
        what = f"value of {key!r}"
        if value_type in _SCALAR_FORMATS:
            value = self.scalar(_SCALAR_FORMATS[value_type], what)
            return (bool(value) if value_type == _BOOL else value), (value_type,)
        if value_type == _STRING:
            return self.string(what), (value_type,)
        if value_type != _ARRAY:
            raise self.error(f"metadata {key!r} has unknown value type {value_type}")
        if depth + 1 > MAX_ARRAY_NESTING:
            raise self.error(f"metadata {key!r} nests arrays deeper than {MAX_ARRAY_NESTING} levels")
        element_type = self.scalar("<I", f"element type of {key!r}")
        count = self.scalar("<Q", f"element count of {key!r}")
        if element_type not in VALUE_TYPE_NAMES:
            raise self.error(f"metadata array {key!r} has unknown element type {element_type}")
        self.array_elements += count
        if self.array_elements > MAX_ARRAY_ELEMENTS:
            raise self.error(
                f"metadata array {key!r} has {count} elements, which brings the file's arrays past the "
                f"limit of {MAX_ARRAY_ELEMENTS} elements in all"
            )
        min_element = {_STRING: 8, _ARRAY: 12}.get(element_type) or struct.calcsize(_SCALAR_FORMATS[element_type])
        self.need(count * min_element, f"{count} elements of array {key!r}")
        if element_type in _SCALAR_FORMATS:
            # Numbers stay a numpy array (as many bytes as in the file, not a Python object each).
            np_dtype = np.dtype(_SCALAR_FORMATS[element_type])
            array = np.frombuffer(self.data, dtype=np_dtype, count=count, offset=self.pos).copy()
            self.pos += count * np_dtype.itemsize
            return (array.astype(bool) if element_type == _BOOL else array), (_ARRAY, element_type)
        values, element_types = [], (element_type,)
        for _ in range(count):
            item, element_types = self.value(key, element_type, depth + 1)
            values.append(item)
        return values, (_ARRAY, *element_types)

    def alignment(self, header: GGUFHeader) -> int:
        if "general.alignment" not in header.metadata:
            return DEFAULT_ALIGNMENT
        alignment = header.metadata["general.alignment"]
        if header.value_types["general.alignment"] != (_UINT32,):
            raise self.error("general.alignment must be a UINT32")
        if alignment <= 0 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
            raise self.error(f"general.alignment is {alignment}; it must be a power of two up to {MAX_ALIGNMENT}")
        return alignment

    def tensor_info(self, index: int) -> tuple[str, tuple[int, ...], GGMLQuantizationType, int]:
        """(name, dims in ggml order, type, offset relative to the data section) of one tensor."""
        name = self.string(f"name of tensor #{index}", MAX_TENSOR_NAME_BYTES)
        where = f"tensor {name!r}"
        n_dims = self.scalar("<I", f"n_dims of {where}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise self.error(f"{where} has n_dims={n_dims}; it must be between 1 and {MAX_DIMS}")
        self.need(8 * n_dims, f"dims of {where}")
        dims = struct.unpack_from(f"<{n_dims}Q", self.data, self.pos)
        self.pos += 8 * n_dims
        if any(d == 0 for d in dims):
            raise self.error(f"{where} has a zero dimension: {list(dims)}")
        raw_type = self.scalar("<I", f"type of {where}")
        try:
            ggml_type = GGMLQuantizationType(raw_type)
        except ValueError:
            raise self.error(f"{where} has unknown ggml type {raw_type}") from None
        if ggml_type not in GGML_QUANT_SIZES:
            raise self.error(f"{where} has ggml type {ggml_type.name} of unknown size")
        offset = self.scalar("<Q", f"data offset of {where}")
        return name, dims, ggml_type, offset

    def place_tensors(
        self, infos: list[tuple[str, tuple[int, ...], GGMLQuantizationType, int]], header: GGUFHeader
    ) -> dict[str, GGUFTensorInfo]:
        """Check each tensor's byte range against the data section and the others; key them by name."""
        data_size = self.size - header.data_start
        tensors: dict[str, GGUFTensorInfo] = {}
        for name, dims, ggml_type, offset in infos:
            where = f"tensor {name!r}"
            if name in tensors:
                raise self.error(f"{where} appears twice in the tensor table")
            block_size, type_size = GGML_QUANT_SIZES[ggml_type]
            if dims[0] % block_size != 0:
                raise self.error(
                    f"{where}: row length {dims[0]} is not a multiple of the {ggml_type.name} block size {block_size}"
                )
            nbytes = math.prod(dims) // block_size * type_size  # Python ints: exact for any dims
            if offset % header.alignment != 0:
                raise self.error(f"{where}: data offset {offset} is not a multiple of the alignment {header.alignment}")
            if offset + nbytes > data_size:
                raise self.error(
                    f"{where}: data [{offset}, {offset + nbytes}) of shape {list(reversed(dims))} "
                    f"({ggml_type.name}) lies outside the data section of {max(data_size, 0)} bytes; "
                    "the file is truncated or corrupt"
                )
            tensors[name] = GGUFTensorInfo(
                name=name, shape=tuple(reversed(dims)), ggml_type=ggml_type,
                offset=header.data_start + offset, nbytes=nbytes,
            )  # fmt: skip
        ordered = sorted(tensors.values(), key=lambda t: t.offset)
        for previous, current in zip(ordered, ordered[1:]):
            if current.offset < previous.offset + previous.nbytes:
                raise self.error(f"tensors {previous.name!r} and {current.name!r} overlap in the data section")
        return tensors
