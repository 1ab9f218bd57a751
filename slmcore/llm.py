"""The LLM class: load a model directory and run it on the CPU."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from slmcore import _core
from slmcore.config import ModelConfig
from slmcore.errors import (
    ClosedError,
    DeviceUnavailableError,
    InvalidArgumentError,
    InvalidTokenError,
    NumericalError,
    TokenizerFileError,
)
from slmcore.generate import Completion, StreamChunk
from slmcore.generate import generate as _generate
from slmcore.generate import stream_tokens as _stream_tokens
from slmcore.loader import Checkpoint, available_cores, convert
from slmcore.models import family_for
from slmcore.rope import rope_tables
from slmcore.sampling import SamplingParams
from slmcore.tokenizer import Tokenizer, has_tokenizer_files

logger = logging.getLogger("slmcore")

DEFAULT_MAX_SEQ_LEN = 4096
# GGUF weights are mostly quantized; float16 keeps their dequantized values closely at half the
# memory of float32. Convert explicitly (`slmcore convert --dtype float32`) for other choices.
GGUF_DTYPE = "float16"
WEIGHT_DTYPES = ("auto", "float32", "bfloat16", "float16")
# int8: one float32 scale per cached row (layer, KV head, position), about half of float16's memory.
# RWKV has no KV cache and ignores kv_dtype (its state is float32).
KV_DTYPES = ("auto", "float32", "float16", "int8")
# How quant="int4" quantizes at load, chosen by perplexity against llama.cpp Q4_0 on the same
# tokens (benchmarks/int4_accuracy.py gate, Gemma-3-270M): groups of 32 with the scale search pass
# with a margin, groups of 128 do not with a BOS in each window, round-to-nearest fails at every
# group size; 16-bit embedding / lm_head gained under 1 point of perplexity increase for twice
# the bytes of int8 rows (Gemma's 262144 x 640 embedding: 335 MB instead of 168 MB).
DEFAULT_GROUP_SIZE = 32
INT4_SEARCH = True
INT4_EMBEDDING = "int8"
# Files of a model directory that save_quantized copies next to the quantized weights.
_COMPANION_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja", "chat_template.json",
)  # fmt: skip


def _choose(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgumentError(f"{name}={value!r} is not supported; choose one of: {', '.join(allowed)}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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


def _resolve_model_path(model: Any) -> Path:
    """A model directory for `model`: a directory as is, a .gguf file converted once into the
    cache, None for the default model (fetched on first use)."""
    if model is None:
        from slmcore.default_model import default_model_dir

        return default_model_dir()
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(f"model must be a path, got {type(model).__name__}")
    path = Path(model).expanduser()
    if not path.exists():
        raise InvalidArgumentError(f"model path {str(path)!r} does not exist")
    if path.is_dir():
        return path
    if path.suffix.lower() == ".gguf":
        return _converted_gguf(path)
    raise InvalidArgumentError(
        f"{str(path)!r} is a file; give a model directory (config.json + *.safetensors) or a .gguf file"
    )


def _converted_gguf(path: Path) -> Path:
    """The cache directory holding `path` converted to safetensors, converting on first use.
    Keyed by the file's absolute path, size and modification time."""
    from slmcore.convert import convert_gguf
    from slmcore.default_model import home

    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = home() / "converted" / f"{path.stem}-{key}"
    if not (target / "config.json").exists():
        logger.info("converting %s into %s (once)", path, target)
        convert_gguf(path, target, dtype=GGUF_DTYPE)
    return target


def _eos_token_ids(model_dir: Path, config: ModelConfig) -> frozenset[int]:
    """End-of-sequence ids: generation_config.json's eos_token_id (an int or a list), else config.json's."""
    ids: set[int] = set()
    gen = model_dir / "generation_config.json"
    if gen.is_file():
        try:
            value = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            value = None
        values = value if isinstance(value, list) else [value]
        ids.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    if not ids:
        ids.update(config.eos_token_ids)
    return frozenset(i for i in ids if 0 <= i < config.vocab_size)


def _entry_dtype(entry: tuple) -> str:
    """An engine weight's dtype name: the dense dtype, "int4" or "int8"."""
    return entry[0] if isinstance(entry[0], str) else entry[1]


def _weight_bytes_per_token(weights: dict[str, tuple]) -> int:
    """Bytes of weights one decode step reads: every tensor once and one embedding row."""
    from slmcore.quant import entry_nbytes

    seen: set[int] = set()
    total = 0
    for name, entry in weights.items():
        if name != "embed_tokens" and id(entry) not in seen:
            seen.add(id(entry))
            total += entry_nbytes(entry)
    embed = weights["embed_tokens"]
    rows = embed[1].shape[0] if isinstance(embed[0], str) else embed[0].shape[0]
    return total + entry_nbytes(embed) // max(rows, 1)


def _attention_engine_config(cfg: ModelConfig, max_seq_len: int, kv_dtype: str, threads: int) -> dict[str, Any]:
    """The config dict of the C++ attention graph ("llama"): sizes, rope tables, variant switches."""
    rotary_dim = cfg.head_dim if cfg.rotary_dim is None else cfg.rotary_dim
    # One rope table for full-attention layers and, when it differs (Gemma 3), one for sliding ones.
    ropes = [cfg.rope] if cfg.rope_local is None else [cfg.rope, cfg.rope_local]
    if rotary_dim == 0:  # learned positions instead (GPT-2)
        tables = [(np.zeros((max_seq_len, 0), np.float32), np.zeros((max_seq_len, 0), np.float32))]
    else:
        tables = [rope_tables(rope, rotary_dim, max_seq_len) for rope in ropes]
    layer_rope = [1 if cfg.rope_local is not None and window > 0 else 0 for window in cfg.layer_windows]
    return {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "rotary_dim": rotary_dim,
        "rope_style": "neox",
        "rope_cos": [cos for cos, _ in tables],
        "rope_sin": [sin for _, sin in tables],
        "layer_rope": layer_rope,
        "rms_norm_eps": cfg.rms_norm_eps,
        "attention_scale": cfg.attention_scale if cfg.attention_scale is not None else cfg.head_dim**-0.5,
        "embed_scale": cfg.embed_scale,
        "activation": cfg.activation,
        "norm": cfg.norm,
        "mlp": cfg.mlp,
        "parallel_residual": cfg.parallel_residual,
        "head_norm": "layer" if cfg.head_norm == "layer_per_head" else "rms",
        "head_norm_per_head": cfg.head_norm == "layer_per_head",
        "alibi_slopes": list(cfg.alibi_slopes),
        "attn_softcap": cfg.attn_softcap,
        "final_softcap": cfg.final_softcap,
        "max_seq_len": max_seq_len,
        "kv_dtype": kv_dtype,
        "layer_windows": list(cfg.layer_windows),
        "threads": threads,
        "isa": "auto",
    }


class _Session:
    """The generation loop's view of an LLM: a fresh sequence, then one token at a time."""

    def __init__(self, llm: "LLM") -> None:
        self._llm = llm
        self.max_seq_len = llm.max_seq_len

    def prefill(self, ids: Sequence[int]) -> np.ndarray:
        return self._llm._prefill(ids)

    def decode(self, token_id: int) -> np.ndarray:
        return self._llm._decode(token_id)


def _choose_device(device: str) -> str:
    """'auto' -> 'cpu' (the CUDA engine runs int4 llama-graph models only, so it is asked for by
    name); 'cuda[:N]' -> 'cuda:N' when that device exists, else DeviceUnavailableError saying why."""
    if device in ("auto", "cpu"):
        return "cpu"
    from slmcore import _core

    index_text = device[len("cuda"):]
    if index_text and not (index_text.startswith(":") and index_text[1:].isdigit()):
        raise InvalidArgumentError(f"device={device!r} is not supported; choose 'auto', 'cpu', 'cuda' or 'cuda:N'")
    index = int(index_text[1:]) if index_text else 0
    if not _core.cuda.built:
        raise DeviceUnavailableError(
            "this build of slmcore has no CUDA backend (it was built with SLM_CUDA=OFF or without nvcc); "
            "reinstall with nvcc on PATH and SLM_CUDA=ON, or use device='cpu'"
        )
    count = _core.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f"{device!r}: {count} CUDA device(s) found ({_core.cuda.unavailable_reason() or 'index out of range'}); "
            "use device='cpu'"
        )
    return f"cuda:{index}"


class LLM:
    """A language model loaded for inference on the CPU (or, with quant="int4", device="cuda").

    `model` is a directory (config.json + *.safetensors, tokenizer files optional), a .gguf file
    (converted once into the cache), or None for the default model, SmolLM2-135M-Instruct.

    >>> llm = slmcore.LLM()
    >>> llm.generate("The capital of France is", slmcore.SamplingParams(max_tokens=8))[0].text
    >>> llm.chat([{"role": "user", "content": "Hi!"}]).text
    >>> llm.logits([1, 2, 3]).shape                     # (3, vocab_size)
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_seq_len: int | None = None,
        kv_dtype: str = "auto",
        threads: int | None = None,
        quant: str | None = None,
        group_size: int | None = None,
    ) -> None:
        self._engine = None
        self._checkpoint = None
        self._tokenizer: Tokenizer | None = None
        if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
            raise InvalidArgumentError(f"device={device!r} is not supported; choose 'auto', 'cpu' or 'cuda[:N]'")
        self.device = _choose_device(device)
        dtype = _choose("dtype", dtype, WEIGHT_DTYPES)
        kv_dtype = _choose("kv_dtype", kv_dtype, KV_DTYPES)
        threads = available_cores() if threads is None else _positive_int("threads", threads)
        path = _resolve_model_path(model)
        self._gguf = Path(model) if isinstance(model, (str, os.PathLike)) and str(model).lower().endswith(".gguf") else None

        self.path = path
        self.config = ModelConfig.from_file(path)
        self.eos_token_ids = _eos_token_ids(path, self.config)
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
        weights = self._load_weights(family, dtype, quant, group_size, threads)
        matrix_dtypes = {
            _entry_dtype(entry) for name, entry in weights.items()
            if not name.endswith(("norm", "bias")) and (isinstance(entry[0], str) or entry[0].ndim == 2)
        }  # fmt: skip
        on_cuda = self.device.startswith("cuda")
        if on_cuda and not self.quant:
            raise InvalidArgumentError("device='cuda' runs int4 weights in this version: pass quant='int4'")
        if kv_dtype == "auto":
            kv_dtype = "float32" if matrix_dtypes == {"float32"} and not on_cuda else "float16"
        if on_cuda and kv_dtype != "float16":
            raise InvalidArgumentError(f"device='cuda' keeps a float16 KV cache; kv_dtype={kv_dtype!r} is not available there")
        self.kv_dtype = kv_dtype
        if self.quant:
            self.dtype = self.quant
        else:
            self.dtype = matrix_dtypes.pop() if len(matrix_dtypes) == 1 else "mixed"
        self._bytes_per_token = _weight_bytes_per_token(weights)
        self._entries = weights if self.quant else None  # for save_quantized

        if hasattr(family, "engine_config"):  # graphs without attention describe themselves (rwkv)
            engine_config = family.engine_config(self.config, max_seq_len=max_seq_len, threads=threads)
        else:
            engine_config = _attention_engine_config(self.config, max_seq_len, kv_dtype, threads)
        cuda_index = int(self.device.split(":")[1]) if on_cuda else -1
        self._engine = _core.Engine(family.GRAPH, engine_config, weights, device=cuda_index)
        if self._engine.kv_cache_bytes:
            logger.info("KV cache: %s, %.1f MiB for %d positions", kv_dtype, self._engine.kv_cache_bytes / 2**20, max_seq_len)

    def _load_weights(self, family: Any, dtype: str, quant: Any, group_size: Any, threads: int) -> dict:
        """The engine's weights: as stored (or in dtype), quantized at load, or from a quantized checkpoint."""
        from slmcore import quant as q

        if quant not in (None, "int4"):
            raise InvalidArgumentError(f"quant={quant!r} is not supported; choose None or 'int4'")
        if group_size is not None and (isinstance(group_size, bool) or group_size not in q.GROUP_SIZES):
            raise InvalidArgumentError(f"group_size={group_size!r} is not supported; choose one of {q.GROUP_SIZES}")
        stored = self.config.quantization
        if stored is not None:  # an slmcore-quantized checkpoint: used as it is
            if group_size is not None and group_size != stored.group_size:
                raise InvalidArgumentError(
                    f"{self.path} is already quantized with group_size {stored.group_size}; "
                    f"group_size={group_size} would need the unquantized checkpoint"
                )
            self.quant, self.group_size = "int4", stored.group_size
            values = q.load_quantized(self._checkpoint, self.config, canonical=True)
            weights = {}
            for name, value in values.items():
                if isinstance(value, tuple) and value[0].ndim == 1:
                    value = (convert(value[0], value[1], "float32"), "float32")
                elif isinstance(value, tuple) and dtype != "auto":
                    value = (convert(value[0], value[1], dtype), dtype)
                weights[name] = q.engine_entry(value, threads)
            if self.config.tie_word_embeddings:
                weights["lm_head"] = weights["embed_tokens"]
            return weights
        if quant is None:
            if group_size is not None:
                raise InvalidArgumentError("group_size applies to quant='int4' only")
            self.quant, self.group_size = None, None
            return family.engine_weights(self.config, self._checkpoint, dtype)
        source = family.engine_weights(self.config, self._checkpoint, "auto")
        exact = self._gguf_int4(source) if group_size in (None, q.GGUF_GROUP_SIZE) else None
        if exact is not None:
            prequantized, sym = exact
            self.quant, self.group_size = "int4", q.GGUF_GROUP_SIZE
        else:
            prequantized, sym = {}, True
            self.quant, self.group_size = "int4", group_size or DEFAULT_GROUP_SIZE
        weights = q.quantize_engine_weights(
            source, self.group_size, sym=sym, search=INT4_SEARCH, embedding=INT4_EMBEDDING, progress=True,
            prequantized=prequantized, threads=threads,
        )
        if dtype != "auto":  # what stays unquantized (learned positions)
            for name, entry in weights.items():
                if not isinstance(entry[0], str) and entry[0].ndim == 2:
                    weights[name] = (convert(entry[0], entry[1], dtype), dtype)
        return weights

    def _gguf_int4(self, source: dict) -> tuple[dict, bool] | None:
        """For a GGUF whose layer matrices are Q4_0 or Q4_1: those matrices as Int4Tensors under
        their canonical names (taken without loss, G=32), and the symmetry; else None."""
        if self._gguf is None:
            return None
        from slmcore.convert import gguf_int4_matrices

        found = gguf_int4_matrices(self._gguf)
        if found is None:
            return None
        matrices, sym = found
        # The GGUF architectures' layer matrices are stored under Llama's names: model.<canonical>.weight.
        prequantized = {hf[len("model."):-len(".weight")]: t for hf, t in matrices.items()}
        if not set(prequantized) <= set(source):
            return None
        logger.info(
            "int4: %d matrices taken from the GGUF's %s blocks without loss (group size 32, %s); the rest quantized",
            len(prequantized), "Q4_0" if sym else "Q4_1", "symmetric" if sym else "asymmetric",
        )
        return prequantized, sym

    # -- public API -------------------------------------------------------------------------

    def save_quantized(self, out_dir: str | os.PathLike) -> Path:
        """Write this int4 model (loaded with quant="int4", or from a quantized checkpoint) to a new
        directory: model.safetensors + config.json with its quantization_config, plus the model's
        tokenizer and generation files. slmcore.LLM(out_dir) loads it without a quant= argument."""
        from slmcore import quant as q

        self._live()
        if self._entries is None:
            raise InvalidArgumentError("save_quantized needs a quantized model: load it with quant='int4'")
        tensors = q.quantized_checkpoint_tensors(self._entries, self.config)
        extra = [p for p in sorted(self.path.iterdir()) if p.is_file() and p.name in _COMPANION_FILES]
        raw = {k: v for k, v in self.config.raw.items() if k != "quantization_config"}
        return q.save_quantized(out_dir, raw, tensors, extra_files=extra)

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits of every position of one fresh sequence: float32 array (len(token_ids), vocab)."""
        engine = self._live()
        ids = _token_array(token_ids)
        engine.reset()
        out = engine.forward(ids, "all")
        engine.reset()
        return self._finite(out)

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer (tokenizer.json, else tokenizer.model); TokenizerFileError if it has none."""
        self._live()
        if self._tokenizer is None:
            if not has_tokenizer_files(self.path):
                raise TokenizerFileError(
                    f"{self.path} has no tokenizer.json or tokenizer.model; pass token ids instead of text, "
                    "or add the model's tokenizer files to the directory"
                )
            self._tokenizer = Tokenizer.from_dir(self.path)
        return self._tokenizer

    def generate(
        self, prompts: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]], params: SamplingParams | None = None
    ) -> list[Completion]:
        """Complete one prompt or a list of them (text or token ids); one Completion per prompt, in order."""
        params = self._params(params)
        return [
            _generate(_Session(self), ids, params, tokenizer=self._tokenizer_if_any(), eos_token_ids=self.eos_token_ids)
            for ids in self._prompt_ids(prompts)
        ]

    def stream(self, prompt: str | Sequence[int], params: SamplingParams | None = None) -> Iterator[StreamChunk]:
        """Complete one prompt, yielding text deltas as they are decided (never a split UTF-8 character)."""
        params = self._params(params)
        (ids,) = self._prompt_ids(prompt, single=True)
        yield from _stream_tokens(_Session(self), ids, params, tokenizer=self._tokenizer_if_any(),
                                  eos_token_ids=self.eos_token_ids)

    def chat(self, messages: Sequence[dict], params: SamplingParams | None = None) -> Completion:
        """Answer an OpenAI-style conversation ([{"role": ..., "content": ...}, ...]) through the model's chat template."""
        params = self._params(params)
        ids = self.tokenizer.encode_chat(list(messages), add_generation_prompt=True)
        return _generate(_Session(self), ids, params, tokenizer=self.tokenizer, eos_token_ids=self.eos_token_ids)

    def stream_chat(self, messages: Sequence[dict], params: SamplingParams | None = None) -> Iterator[StreamChunk]:
        """Like chat(), yielding text deltas."""
        params = self._params(params)
        ids = self.tokenizer.encode_chat(list(messages), add_generation_prompt=True)
        yield from _stream_tokens(_Session(self), ids, params, tokenizer=self.tokenizer, eos_token_ids=self.eos_token_ids)

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
        self._tokenizer = None

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
        """Start a fresh sequence with token_ids; return the logits of the last one [vocab].

        Always from a reset engine, never by truncating to a prefix shared with the last request:
        a recurrent graph (rwkv) cannot truncate to a middle position."""
        engine = self._live()
        ids = _token_array(token_ids)
        engine.reset()
        return self._finite(engine.forward(ids, "last"))

    def _decode(self, token_id: int) -> np.ndarray:
        """Append one token to the current sequence; return its logits [vocab]."""
        return self._finite(self._live().forward(_token_array([token_id]), "last"))

    def _params(self, params: Any) -> SamplingParams:
        self._live()
        if params is None:
            return SamplingParams()
        if not isinstance(params, SamplingParams):
            raise InvalidArgumentError(f"params must be slmcore.SamplingParams, got {type(params).__name__}")
        return params

    def _tokenizer_if_any(self) -> Tokenizer | None:
        return self.tokenizer if has_tokenizer_files(self.path) else None

    def _prompt_ids(self, prompts: Any, single: bool = False) -> list[list[int]]:
        """Normalise str | list[str] | list[int] | list[list[int]] to a list of token id lists."""
        if isinstance(prompts, str):
            return [self.tokenizer.encode(prompts)]
        if isinstance(prompts, np.ndarray) and prompts.ndim == 1:
            return [_token_array(prompts).tolist()]
        if not isinstance(prompts, Sequence) or isinstance(prompts, bytes) or len(prompts) == 0:
            raise InvalidArgumentError("prompts must be a str, a list of str, a list of token ids or a list of those")
        if all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in prompts):
            return [_token_array(prompts).tolist()]
        if single:
            raise InvalidArgumentError("stream() takes one prompt: a str or a list of token ids")
        out = []
        for p in prompts:
            if isinstance(p, str):
                out.append(self.tokenizer.encode(p))
            else:
                out.append(_token_array(p).tolist())
        return out

    def _weight_bytes_per_token(self) -> int:
        return self._bytes_per_token

    def _live(self) -> Any:
        if self._engine is None:
            raise ClosedError("this LLM was closed; create a new one")
        return self._engine

    @staticmethod
    def _finite(logits: np.ndarray) -> np.ndarray:
        if not np.isfinite(logits).all():
            raise NumericalError("the model produced NaN or Inf logits (check the weights and dtype)")
        return logits
