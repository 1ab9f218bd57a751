"""safetensors files (single and sharded) -> zero-copy numpy views on a read-only mmap.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N, then N bytes
of UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the data region; offsets are relative to the data region's start (8 + N).

We parse the header ourselves because the safetensors numpy API copies and cannot read BF16.
Files are untrusted: every size and offset is checked against the file size (with Python ints,
so nothing overflows) before anything is read or allocated.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from slmcore.errors import ClosedError, InvalidArgumentError, ModelFormatError

# Header JSON larger than this is refused before reading it (real headers are well under 10 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

# safetensors dtype -> (our name, numpy dtype of the view); BF16 is viewed as uint16 bits.
SUPPORTED_DTYPES: dict[str, tuple[str, np.dtype]] = {
    "F32": ("float32", np.dtype("<f4")),
    "F16": ("float16", np.dtype("<f2")),
    "BF16": ("bfloat16", np.dtype("<u2")),
}

# our dtype name -> numpy dtype of the view
NUMPY_VIEW_DTYPES: dict[str, np.dtype] = {ours: view for ours, view in SUPPORTED_DTYPES.values()}

# Every other dtype the safetensors format defines, with its size in bits: valid files, but not
# weights we can run. They are checked like the others and refused when a weight is read.
OTHER_SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "I32": 32, "U32": 32, "F64": 64, "I64": 64, "U64": 64,
    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip

# Integer dtypes that hold quantized weights (DESIGN.md section 4: int4 nibbles as U8, int8 rows as
# I8). They are never weights by themselves (`array` refuses them); `quantized_array` serves them.
QUANTIZED_STORAGE_DTYPES: dict[str, tuple[str, np.dtype]] = {
    "U8": ("uint8", np.dtype("u1")),
    "I8": ("int8", np.dtype("i1")),
}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: dtype ("float32" | "float16" | "bfloat16"), shape, file, absolute byte range."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    offset: int  # absolute byte offset in the file
    nbytes: int


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _strict_json(text: str) -> Any:
    """json.loads that refuses duplicate keys and NaN/Infinity."""
    return json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class SafetensorsFile:
    """One .safetensors file: header validated at open, tensors served as read-only mmap views."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tensors: dict[str, TensorInfo] = {}
        self.metadata: dict[str, str] = {}
        # Tensors with a valid safetensors dtype that is not a weight dtype we run (I64, U8, F64, ...).
        self.unsupported: dict[str, str] = {}
        # The U8/I8 tensors among those: quantized storage, read with `quantized_array`.
        self.quantized: dict[str, TensorInfo] = {}
        self._mmap: mmap.mmap | None = None
        try:
            with open(self.path, "rb") as f:
                file_size = os.fstat(f.fileno()).st_size
                header = self._read_header(f, file_size)
                self._parse_header(header, data_start=8 + len(header), file_size=file_size)
                # mmap keeps its own duplicate of the descriptor; the file object can close now.
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise ModelFormatError(f"{self.path}: cannot read safetensors file: {e}") from e

    def _error(self, message: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path}: {message}")

    def _read_header(self, f: Any, file_size: int) -> bytes:
        if file_size < 8:
            raise self._error(f"file is {file_size} bytes, shorter than the 8-byte safetensors header length")
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > MAX_HEADER_BYTES:
            raise self._error(
                f"header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit; not a safetensors file?"
            )
        if header_len > file_size - 8:
            raise self._error(
                f"header length {header_len} is larger than the rest of the file ({file_size - 8} bytes); "
                "the file is truncated or not safetensors"
            )
        header = f.read(header_len)
        if len(header) != header_len:
            raise self._error("file changed size while reading the header")
        return header

    def _parse_header(self, header: bytes, data_start: int, file_size: int) -> None:
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self._error(f"header is not UTF-8: {e}") from e
        try:
            parsed = _strict_json(text)
        except (ValueError, RecursionError) as e:
            raise self._error(f"header is not valid JSON: {e}") from e
        if not isinstance(parsed, dict):
            raise self._error(f"header must be a JSON object, got {type(parsed).__name__}")

        data_size = file_size - data_start
        ranges: list[tuple[int, int, str]] = []
        for name, entry in parsed.items():
            if name == "__metadata__":
                self.metadata = self._parse_metadata(entry)
                continue
            begin, end = self._parse_entry(name, entry, data_size)
            if end > begin:
                ranges.append((begin, end, name))

        ranges.sort()
        for (_, prev_end, prev_name), (begin, _, name) in zip(ranges, ranges[1:]):
            if begin < prev_end:
                raise self._error(f"tensors {prev_name!r} and {name!r} overlap in the data region")

        for table in (self.tensors, self.quantized):
            for name, info in list(table.items()):
                table[name] = TensorInfo(
                    name=name, dtype=info.dtype, shape=info.shape, file=self.path,
                    offset=data_start + info.offset, nbytes=info.nbytes,
                )  # fmt: skip

    def _parse_metadata(self, entry: Any) -> dict[str, str]:
        if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
            raise self._error(f"__metadata__ must be an object of string values, got {entry!r:.200}")
        return dict(entry)

    def _parse_entry(self, name: str, entry: Any, data_size: int) -> tuple[int, int]:
        """Validate one tensor entry; record it and return its [begin, end) relative to the data region."""
        where = f"tensor {name!r}"
        if not isinstance(entry, dict):
            raise self._error(f"{where}: entry must be an object, got {entry!r:.200}")
        keys = set(entry)
        if keys != {"dtype", "shape", "data_offsets"}:
            raise self._error(f"{where}: entry must have exactly dtype, shape, data_offsets; got {sorted(keys)}")

        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise self._error(f"{where}: dtype must be a string, got {dtype!r:.200}")
        if dtype in SUPPORTED_DTYPES:
            bits = SUPPORTED_DTYPES[dtype][1].itemsize * 8
        elif dtype in OTHER_SAFETENSORS_DTYPE_BITS:
            bits = OTHER_SAFETENSORS_DTYPE_BITS[dtype]
        else:
            raise self._error(
                f"{where}: unknown dtype {dtype!r}; slmcore reads weights stored as {', '.join(SUPPORTED_DTYPES)}"
            )
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            raise self._error(f"{where}: shape must be a list of integers, got {shape!r:.200}")
        if any(d < 0 for d in shape):
            raise self._error(f"{where}: shape {shape} has a negative dimension")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
            raise self._error(f"{where}: data_offsets must be a list of two integers, got {offsets!r:.200}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise self._error(
                f"{where}: data_offsets [{begin}, {end}] are outside the data region [0, {data_size}] "
                "(or begin > end); the file is truncated or corrupt"
            )
        # Python ints: no overflow however large the dims are.
        n_bits = math.prod(shape) * bits
        if n_bits % 8 != 0 or end - begin != n_bits // 8:
            raise self._error(
                f"{where}: {end - begin} bytes of data for shape {shape} of {dtype} "
                f"(expected {n_bits / 8:g} bytes)"
            )
        if dtype in SUPPORTED_DTYPES:
            self.tensors[name] = TensorInfo(
                name=name, dtype=SUPPORTED_DTYPES[dtype][0], shape=tuple(shape),
                file=self.path, offset=begin, nbytes=end - begin,
            )  # fmt: skip
        else:
            self.unsupported[name] = dtype
            if dtype in QUANTIZED_STORAGE_DTYPES:
                self.quantized[name] = TensorInfo(
                    name=name, dtype=QUANTIZED_STORAGE_DTYPES[dtype][0], shape=tuple(shape),
                    file=self.path, offset=begin, nbytes=end - begin,
                )  # fmt: skip
        return begin, end

    def array(self, name: str) -> np.ndarray:
        """Zero-copy read-only view: float32, float16, or uint16 holding bfloat16; may be unaligned."""
        info = self.tensors.get(name)
        if info is None:
            if name in self.unsupported:
                raise self._error(
                    f"tensor {name!r} has dtype {self.unsupported[name]}; slmcore reads weights stored as "
                    f"{', '.join(SUPPORTED_DTYPES)}"
                )
            raise self._error(f"no tensor named {name!r}")
        if self._mmap is None:
            raise ClosedError(f"{self.path}: the file was closed")
        np_dtype = NUMPY_VIEW_DTYPES[info.dtype]
        if info.nbytes == 0:
            empty = np.empty(info.shape, dtype=np_dtype)
            empty.flags.writeable = False
            return empty
        count = info.nbytes // np_dtype.itemsize
        return np.frombuffer(self._mmap, dtype=np_dtype, count=count, offset=info.offset).reshape(info.shape)

    def quantized_array(self, name: str) -> np.ndarray:
        """Zero-copy read-only view of a U8 or I8 tensor (quantized storage: int4 nibbles, int8 rows)."""
        info = self.quantized.get(name)
        if info is None:
            raise self._error(f"no uint8/int8 tensor named {name!r}")
        if self._mmap is None:
            raise ClosedError(f"{self.path}: the file was closed")
        np_dtype = QUANTIZED_STORAGE_DTYPES["U8" if info.dtype == "uint8" else "I8"][1]
        if info.nbytes == 0:
            empty = np.empty(info.shape, dtype=np_dtype)
            empty.flags.writeable = False
            return empty
        return np.frombuffer(self._mmap, dtype=np_dtype, count=info.nbytes, offset=info.offset).reshape(info.shape)

    def close(self) -> None:
        """Release this object's mmap; views already handed out keep it alive until they go. Never raises."""
        mapping, self._mmap = self._mmap, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                pass  # views still exist: the mapping is unmapped when the last one is freed

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Checkpoint:
    """All tensors of a model directory: model.safetensors, or the shards named by its index."""

    def __init__(self, model_dir: Path, files: list[SafetensorsFile], tensors: dict[str, TensorInfo]) -> None:
        self.model_dir = model_dir
        self.files = files
        self.tensors = tensors
        # Tensors stored with a dtype we do not run (name -> safetensors dtype); reading one raises.
        self.unsupported: dict[str, str] = {name: dt for f in files for name, dt in f.unsupported.items()}
        # U8/I8 tensors (quantized storage), read with `quantized_tensor`.
        self.quantized: dict[str, TensorInfo] = {name: info for f in files for name, info in f.quantized.items()}
        self._file_of = {f.path: f for f in files}
        self._unsupported_in = {name: f for f in files for name in f.unsupported}

    @classmethod
    def open(cls, model_dir: str | os.PathLike) -> "Checkpoint":
        """Open model_dir/model.safetensors, else the shards of model_dir/model.safetensors.index.json."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelFormatError(f"{model_dir}: not a directory; expected a model directory with safetensors weights")
        single = model_dir / SINGLE_FILE
        index = model_dir / INDEX_FILE
        if single.is_file():
            files = [SafetensorsFile(single)]
            return cls(model_dir, files, dict(files[0].tensors))
        if index.is_file():
            return cls._open_sharded(model_dir, index)
        hint = ""
        if any(model_dir.glob("*.bin")) or any(model_dir.glob("*.pt")) or any(model_dir.glob("*.pth")):
            hint = " (PyTorch pickle checkpoints are never loaded: convert them to safetensors)"
        raise ModelFormatError(f"{model_dir}: no weights found; looked for {SINGLE_FILE} and {INDEX_FILE}{hint}")

    @classmethod
    def _open_sharded(cls, model_dir: Path, index: Path) -> "Checkpoint":
        weight_map = _read_index(index)
        root = model_dir.resolve()
        shard_names = sorted(set(weight_map.values()))
        shard_paths = {name: _shard_path(root, index, name) for name in shard_names}

        files: list[SafetensorsFile] = []
        try:
            for name in shard_names:
                files.append(SafetensorsFile(shard_paths[name]))
            by_name = dict(zip(shard_names, files))
            tensors: dict[str, TensorInfo] = {}
            seen_in: dict[str, Path] = {}
            for f in files:
                for tensor in [*f.tensors, *f.unsupported]:
                    if tensor in seen_in:
                        raise ModelFormatError(
                            f"{index}: tensor {tensor!r} is stored in both {seen_in[tensor]} and {f.path}"
                        )
                    seen_in[tensor] = f.path
                tensors.update(f.tensors)
            for tensor, shard in weight_map.items():
                f = by_name[shard]
                if tensor not in f.tensors and tensor not in f.unsupported:
                    raise ModelFormatError(
                        f"{index}: tensor {tensor!r} is listed in shard {shard!r} but {f.path} does not contain it"
                    )
        except BaseException:
            for f in files:
                f.close()
            raise
        return cls(model_dir, files, tensors)

    def tensor(self, name: str) -> tuple[np.ndarray, str]:
        """(zero-copy view, dtype) of one tensor; ModelFormatError naming it when it is missing."""
        info = self.tensors.get(name)
        if info is not None:
            return self._file_of[info.file].array(name), info.dtype
        if name in self._unsupported_in:
            self._unsupported_in[name].array(name)  # raises, naming the file and the dtype
        raise ModelFormatError(f"{self.model_dir}: the checkpoint has no tensor {name!r}")

    def quantized_tensor(self, name: str) -> tuple[np.ndarray, str]:
        """(zero-copy view, "uint8" | "int8") of a quantized-storage tensor; ModelFormatError when absent."""
        info = self.quantized.get(name)
        if info is None:
            raise ModelFormatError(f"{self.model_dir}: the checkpoint has no uint8/int8 tensor {name!r}")
        return self._file_of[info.file].quantized_array(name), info.dtype

    def close(self) -> None:
        """Release every file's mmap (views handed out stay valid). Never raises."""
        for f in self.files:
            f.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_index(index: Path) -> dict[str, str]:
    try:
        text = index.read_bytes().decode("utf-8")
        parsed = _strict_json(text)
    except OSError as e:
        raise ModelFormatError(f"{index}: cannot read the shard index: {e}") from e
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise ModelFormatError(f"{index}: shard index is not valid UTF-8 JSON: {e}") from e
    if not isinstance(parsed, dict) or not isinstance(parsed.get("weight_map"), dict):
        raise ModelFormatError(f"{index}: shard index must be a JSON object with a 'weight_map' object")
    weight_map = parsed["weight_map"]
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str):
            raise ModelFormatError(f"{index}: weight_map[{tensor!r}] must be a file name, got {shard!r:.200}")
    return weight_map


def _shard_path(root: Path, index: Path, name: str) -> Path:
    """The shard's path, refused unless it is a plain relative path that stays inside the model directory."""
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or os.path.isabs(name)
        or any(part in ("..", "") for part in name.split("/"))
    )
    if bad:
        raise ModelFormatError(
            f"{index}: shard file name {name!r} is not a plain relative path inside the model directory"
        )
    path = root / name
    resolved = path.resolve()
    if not (resolved.is_relative_to(root) or _is_hub_cache_blob(root, resolved)):
        raise ModelFormatError(f"{index}: shard {name!r} resolves to {resolved}, outside the model directory {root}")
    if not resolved.is_file():
        raise ModelFormatError(f"{index}: shard {name!r} ({path}) does not exist")
    return resolved


def _is_hub_cache_blob(root: Path, resolved: Path) -> bool:
    """True for the Hugging Face cache layout: models--x--y/snapshots/<rev>/f -> models--x--y/blobs/<hash>."""
    repo = root.parent.parent
    return (
        root.parent.name == "snapshots"
        and repo.name.startswith("models--")
        and resolved.parent == repo / "blobs"
    )


WEIGHT_DTYPES = ("float32", "float16", "bfloat16")

# Elements converted per step: bounds the temporaries of a conversion, whatever the tensor's size.
_CONVERT_BLOCK = 1 << 20


def _f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays a (quiet) NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = np.isnan(x)
    # For every non-NaN value bits + 0x7FFF + lsb stays below 2**32 (the largest is -inf's 0xFF80_0000).
    safe = np.where(nan, np.uint32(0), bits)
    rounded = ((safe + np.uint32(0x7FFF) + ((safe >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    return np.where(nan, ((bits >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16), rounded)


def _to_f32(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (x.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return x.astype(np.float32)


def convert(array: np.ndarray, src_dtype: str, dst_dtype: str) -> np.ndarray:
    """A weight in dst_dtype (bfloat16 as uint16 bits, rounded to nearest even), converted block by block."""
    for dtype in (src_dtype, dst_dtype):
        if dtype not in WEIGHT_DTYPES:
            raise InvalidArgumentError(f"unknown weight dtype {dtype!r}; expected one of {', '.join(WEIGHT_DTYPES)}")
    if src_dtype == dst_dtype:
        return array
    out = np.empty(array.shape, dtype=NUMPY_VIEW_DTYPES[dst_dtype])
    src, dst = array.reshape(-1), out.reshape(-1)
    for start in range(0, src.size, _CONVERT_BLOCK):
        block = _to_f32(src[start : start + _CONVERT_BLOCK], src_dtype)
        if dst_dtype == "bfloat16":
            dst[start : start + _CONVERT_BLOCK] = _f32_to_bf16_bits(block)
        else:
            dst[start : start + _CONVERT_BLOCK] = block  # float16: numpy rounds to nearest even
    return out


# --- writing ---------------------------------------------------------------------------------------

# safetensors dtype name -> the numpy dtype its data must arrive in (BF16 as uint16 bits).
WRITE_DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "F64": np.dtype("<f8"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"), "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"), "BOOL": np.dtype("?"),
}  # fmt: skip

# Our weight dtype names are accepted as well as the safetensors ones.
_WRITE_DTYPE_ALIASES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}

# One entry of write_safetensors: (name, array or a function that returns it, dtype, shape).
TensorToWrite = tuple[str, "np.ndarray | Callable[[], np.ndarray]", str, tuple[int, ...]]


def write_safetensors(
    path: str | os.PathLike,
    tensors: Sequence[TensorToWrite],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a .safetensors file: header first, then each tensor in turn, each produced only when written.

    A tensor given as a function is called when its turn comes and dropped once written, so at
    most one tensor is in memory. dtype is a safetensors name (F32, F16, BF16, U8, I8, ...) or one
    of ours (float32, float16, bfloat16); BF16 data is uint16 bits. The file is written beside
    `path` under a temporary name and renamed into place only when complete.
    """
    path = Path(path)
    entries, header = _safetensors_header(tensors, metadata)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for (name, data, dtype, shape), np_dtype in zip(tensors, entries):
                array = data() if callable(data) else data
                shape = tuple(shape)
                wrong = not isinstance(array, np.ndarray) or array.dtype.newbyteorder("<") != np_dtype
                if wrong or array.shape != shape:
                    got = f"{getattr(array, 'dtype', type(array).__name__)} {getattr(array, 'shape', '')}"
                    raise InvalidArgumentError(
                        f"tensor {name!r}: expected a {np_dtype} array of shape {shape} for {dtype}, got {got}"
                    )
                array = np.ascontiguousarray(array, dtype=np_dtype)  # little-endian, C order
                f.write(memoryview(array.reshape(-1)).cast("B"))
                del array
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _safetensors_header(
    tensors: Sequence[TensorToWrite], metadata: dict[str, str] | None
) -> tuple[list[np.dtype], bytes]:
    """The numpy dtype of each entry and the header bytes, padded with spaces to a multiple of 8."""
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise InvalidArgumentError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    np_dtypes: list[np.dtype] = []
    offset = 0
    for name, _, dtype, shape in tensors:
        st_dtype = _WRITE_DTYPE_ALIASES.get(dtype, dtype)
        if st_dtype not in WRITE_DTYPES:
            raise InvalidArgumentError(
                f"tensor {name!r}: unknown dtype {dtype!r}; expected one of {', '.join(WRITE_DTYPES)}"
            )
        if not isinstance(name, str) or name == "__metadata__" or name in header:
            raise InvalidArgumentError(f"tensor name {name!r} is not a string, is reserved, or is repeated")
        shape = tuple(shape)
        if not all(_is_int(d) and d >= 0 for d in shape):
            raise InvalidArgumentError(f"tensor {name!r}: shape {shape} must be non-negative integers")
        np_dtype = WRITE_DTYPES[st_dtype]
        nbytes = math.prod(shape) * np_dtype.itemsize
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        np_dtypes.append(np_dtype)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return np_dtypes, encoded + b" " * (-len(encoded) % 8)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity on Linux), the default thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
