"""Helpers the family modules share to read weights: find a tensor under its possible names,
check its shape against the config, and hand it over in the requested dtype."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from slmcore.errors import InvalidArgumentError, ModelFormatError
from slmcore.loader import WEIGHT_DTYPES, Checkpoint, convert

Loaded = tuple[np.ndarray, str]  # (stored array, stored dtype)


def check_dtype(dtype: str) -> None:
    if dtype != "auto" and dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"dtype must be 'auto' or one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")


def load(checkpoint: Checkpoint, names: Sequence[str], shape: tuple[int, ...], required: bool = True) -> Loaded | None:
    """The first of `names` the checkpoint holds, shape-checked; None (or ModelFormatError) if none."""
    for name in names:
        if name in checkpoint.tensors or name in checkpoint.unsupported:
            array, stored = checkpoint.tensor(name)
            if tuple(array.shape) != tuple(shape):
                raise ModelFormatError(
                    f"{checkpoint.tensors[name].file}: tensor {name!r} has shape {list(array.shape)}, expected "
                    f"{list(shape)} from config.json"
                )
            return array, stored
    if required:
        raise ModelFormatError(f"{checkpoint.model_dir}: the checkpoint has no tensor {names[0]!r}")
    return None


def matrix(loaded: Loaded, dtype: str, transpose: bool = False) -> Loaded:
    """A weight matrix in `dtype` ("auto": as stored, zero-copy); transposed into a new array if asked."""
    array, stored = loaded
    target = stored if dtype == "auto" else dtype
    out = convert(array, stored, target)
    return (np.ascontiguousarray(out.T) if transpose else out), target


def vector(loaded: Loaded) -> Loaded:
    """A norm weight or bias: always float32."""
    return convert(loaded[0], loaded[1], "float32"), "float32"
