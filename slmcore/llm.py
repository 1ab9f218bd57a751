"""The LLM class: load a model directory and run it on the CPU."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from slmcore import _core
from slmcore.config import ModelConfig
from slmcore.errors import (
    ClosedError,
    DeviceUnavailableError,
    InvalidArgumentError,
    InvalidTokenError,
    NumericalError,
)
from slmcore.loader import Checkpoint
from slmcore.models import family_for
from slmcore.rope import rope_tables

logger = logging.getLogger("slmcore")

DEFAULT_MAX_SEQ_LEN = 4096
WEIGHT_DTYPES = ("auto", "float32", "bfloat16", "float16")
KV_DTYPES = ("auto", "float32", "float16")


def _choose(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgumentError(f"{name}={value!r} is not supported; choose one of: {', '.join(allowed)}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _token_array(token_ids: Any) -> np.ndarray:
    """Validate a sequence of token ids and return it as int64 (range checks happen in C++)."""
    if isinstance(token_ids, np.ndarray):
        if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
            raise InvalidArgumentError("token_ids must be a 1-D sequence of integers")
        ids = token_ids.astype(np.int64)
    else:
        if isinstance(token_ids, (str, bytes)) or not isinstance(token_ids, Sequence):
            raise InvalidArgumentError(f"token_ids must be a list of integers, got {type(token_ids).__name__}")
        for i, t in enumerate(token_ids):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise InvalidArgumentError(f"token_ids[{i}] must be an integer, got {t!r}")
        too_big = next((int(t) for t in token_ids if not -(2**63) <= int(t) < 2**63), None)
        if too_big is not None:
            raise InvalidTokenError(f"token id {too_big} is outside the vocabulary")
        ids = np.array([int(t) for t in token_ids], dtype=np.int64)
    if ids.size == 0:
        raise InvalidArgumentError("token_ids is empty: give at least one token")
    return ids


class LLM:
    """A language model loaded for inference.

    >>> llm = slmcore.LLM("path/to/SmolLM2-135M")      # config.json + *.safetensors
    >>> llm.logits([1, 2, 3]).shape                     # (3, vocab_size)
    """

    def __init__(
        self,
        model: str | os.PathLike,
        device: str = "auto",
        dtype: str = "auto",
        max_seq_len: int | None = None,
        kv_dtype: str = "auto",
        threads: int | None = None,
    ) -> None:
        self._engine = None
        self._checkpoint = None
        if not isinstance(model, (str, os.PathLike)):
            raise InvalidArgumentError(f"model must be a path, got {type(model).__name__}")
        path = Path(model)
        if not path.exists():
            raise InvalidArgumentError(f"model path {str(path)!r} does not exist")
        if path.is_file():
            raise InvalidArgumentError(
                f"{str(path)!r} is a file; give the model directory (config.json + *.safetensors)"
            )
        if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
            raise InvalidArgumentError(f"device={device!r} is not supported; choose 'auto', 'cpu' or 'cuda[:N]'")
        if device.startswith("cuda"):
            raise DeviceUnavailableError("this build of slmcore has no CUDA backend; use device='cpu'")
        self.device = "cpu"
        dtype = _choose("dtype", dtype, WEIGHT_DTYPES)
        kv_dtype = _choose("kv_dtype", kv_dtype, KV_DTYPES)
        threads = _available_cores() if threads is None else _positive_int("threads", threads)

        self.config = ModelConfig.from_file(path)
        family = family_for(self.config)
        limit = self.config.max_position_embeddings
        if max_seq_len is None:
            max_seq_len = min(limit, DEFAULT_MAX_SEQ_LEN)
            logger.info("max_seq_len=%d (the smaller of max_position_embeddings=%d and %d)", max_seq_len, limit, DEFAULT_MAX_SEQ_LEN)
        else:
            max_seq_len = _positive_int("max_seq_len", max_seq_len)
            if max_seq_len > limit:
                raise InvalidArgumentError(
                    f"max_seq_len={max_seq_len} exceeds the model's max_position_embeddings={limit}"
                )
        self.max_seq_len = max_seq_len

        self._checkpoint = Checkpoint.open(path)
        weights = family.engine_weights(self.config, self._checkpoint, dtype)
        matrix_dtypes = {d for name, (_, d) in weights.items() if not name.endswith(("norm", "bias"))}
        if kv_dtype == "auto":
            kv_dtype = "float32" if matrix_dtypes == {"float32"} else "float16"
        self.kv_dtype = kv_dtype
        self.dtype = matrix_dtypes.pop() if len(matrix_dtypes) == 1 else "mixed"

        cfg = self.config
        rotary_dim = cfg.head_dim
        cos, sin = rope_tables(cfg.rope, rotary_dim, max_seq_len)
        engine_config = {
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim,
            "rotary_dim": rotary_dim,
            "rope_style": "neox",
            "rope_cos": cos,
            "rope_sin": sin,
            "rms_norm_eps": cfg.rms_norm_eps,
            "attention_scale": cfg.head_dim**-0.5,
            "max_seq_len": max_seq_len,
            "kv_dtype": kv_dtype,
            "layer_windows": list(cfg.layer_windows),
            "threads": threads,
            "isa": "auto",
        }
        self._engine = _core.Engine(family.GRAPH, engine_config, weights)

    # -- public API -------------------------------------------------------------------------

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits of every position of one fresh sequence: float32 array (len(token_ids), vocab)."""
        engine = self._live()
        ids = _token_array(token_ids)
        engine.reset()
        out = engine.forward(ids, "all")
        engine.reset()
        return self._finite(out)

    @property
    def threads(self) -> int:
        """Number of threads the engine computes with."""
        return self._live().threads

    def close(self) -> None:
        """Free the KV cache and release the model files. Further use raises ClosedError."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._checkpoint is not None:
            self._checkpoint.close()
            self._checkpoint = None

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._engine is None else f"isa={self._engine.isa}, threads={self._engine.threads}"
        return (
            f"LLM({self.config.architecture}, layers={self.config.num_hidden_layers}, "
            f"hidden={self.config.hidden_size}, dtype={self.dtype}, kv_dtype={self.kv_dtype}, "
            f"max_seq_len={self.max_seq_len}, {state})"
        )

    # -- incremental interface for the generation loop (internal) ----------------------------

    def _prefill(self, token_ids: Sequence[int]) -> np.ndarray:
        """Start a fresh sequence with token_ids; return the logits of the last one [vocab]."""
        engine = self._live()
        ids = _token_array(token_ids)
        engine.reset()
        return self._finite(engine.forward(ids, "last"))

    def _decode(self, token_id: int) -> np.ndarray:
        """Append one token to the current sequence; return its logits [vocab]."""
        return self._finite(self._live().forward(_token_array([token_id]), "last"))

    def _live(self) -> Any:
        if self._engine is None:
            raise ClosedError("this LLM was closed; create a new one")
        return self._engine

    @staticmethod
    def _finite(logits: np.ndarray) -> np.ndarray:
        if not np.isfinite(logits).all():
            raise NumericalError("the model produced NaN or Inf logits (check the weights and dtype)")
        return logits
