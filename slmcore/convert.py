"""GGUF -> a Hugging Face-style model directory (config.json, model.safetensors, tokenizer files).

    convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2", dtype="float32")

The reference is transformers 5.24 loading the same file (`from_pretrained(dir, gguf_file=name)`):
the tensors written here equal the ones it loads, and the tokenizer tokenizes as its does. What
the file stores and how it differs from Hugging Face checkpoints follows llama.cpp's
convert_hf_to_gguf.py:

- Names: `token_embd`, `blk.N.attn_q`, ..., `output_norm`, `output` (see _LAYER_NAMES). No
  `output` tensor means the embeddings are tied.
- llama (Mistral files say llama too): Q and K rows are permuted for llama.cpp's interleaved
  rope; within each head (K: each KV head), row i*2+j of the GGUF is row j*(head_dim/2)+i of
  the checkpoint. Undone here. qwen2 and gemma3 are stored unpermuted.
- gemma3: every RMSNorm weight (q/k norms included) is stored as 1 + w; 1 is subtracted here.
- Shapes: GGUF lists dims fastest-varying first, so [in, out] is numpy's (out, in), as in HF.
- Quantized tensors are dequantized with `gguf.quants.dequantize`, the function transformers
  uses, so the values are bit-identical to its; then cast to the requested dtype (bfloat16
  rounds to nearest even). Norm weights and biases stay float32.

Untrusted input: the header is checked by slmcore.gguf_header before the `gguf` package reads
the file; every tensor's shape is checked against the config, and the tokenizer is built, before
anything is written; the result appears under out_dir only when complete (it is built in a
temporary directory beside it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize
from tqdm.auto import tqdm

from slmcore.errors import ConfigError, InvalidArgumentError, ModelFormatError
from slmcore.gguf_header import GGUFHeader, GGUFTensorInfo, read_gguf_header
from slmcore.gguf_tokenizer import tokenizer_files
from slmcore.loader import WEIGHT_DTYPES, convert, write_safetensors

Q = GGMLQuantizationType
SUPPORTED_TENSOR_TYPES = (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q4_K, Q.Q6_K)

# general.architecture -> (HF architecture, HF model_type)
SUPPORTED_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("LlamaForCausalLM", "llama"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
}

# Per-layer GGUF names -> HF names under model.layers.N (weights and biases alike).
_COMMON_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LAYER_NAMES: dict[str, dict[str, str]] = {
    "llama": {**_COMMON_LAYER_NAMES, "ffn_norm": "post_attention_layernorm"},
    "qwen2": {**_COMMON_LAYER_NAMES, "ffn_norm": "post_attention_layernorm"},
    "gemma3": {
        **_COMMON_LAYER_NAMES,
        "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm",
        "post_attention_norm": "post_attention_layernorm",
        "ffn_norm": "pre_feedforward_layernorm",
        "post_ffw_norm": "post_feedforward_layernorm",
    },
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}

# Gemma 3 defaults that llama.cpp hard-codes rather than stores (llama-model.cpp, LLM_ARCH_GEMMA3).
GEMMA3_SLIDING_WINDOW_PATTERN = 6  # every 6th layer attends globally
GEMMA3_ROPE_LOCAL_BASE_FREQ = 10000.0

# Llama 3.x rope scaling parameters tried against a file's rope_freqs tensor (see _llama3_rope).
_LLAMA3_FACTOR_PAIRS = ((1.0, 4.0),)
_LLAMA3_ORIGINAL_CONTEXTS = (8192, *(1 << k for k in range(4, 21)))


@dataclass(frozen=True)
class _PlannedTensor:
    """One output tensor: where it comes from and what is done to it."""

    hf_name: str
    source: GGUFTensorInfo
    dtype: str  # output dtype (our names)
    transform: Callable[[np.ndarray], np.ndarray] | None = None


def convert_gguf(
    gguf_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    dtype: str = "float32",
    progress: bool = True,
) -> Path:
    """Convert a GGUF file (llama, mistral, qwen2, gemma3) into a model directory; returns out_dir."""
    if dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"dtype={dtype!r} is not supported; choose one of {', '.join(WEIGHT_DTYPES)}")
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise InvalidArgumentError(f"{gguf_path}: no such file")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidArgumentError(f"{out_dir} already exists and is not an empty directory; choose a new path")

    header = read_gguf_header(gguf_path)
    model = _GGUFModel(header)
    config = model.hf_config(dtype)
    plan = model.tensor_plan(dtype)
    tokenizer = tokenizer_files(header.metadata, model.architecture, str(gguf_path))
    reader = _open_reader(header)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0o700 would make the model private to this user
        with tqdm(total=len(plan), desc=f"Converting {gguf_path.name}", unit="tensor", disable=not progress) as bar:
            write_safetensors(
                staging / "model.safetensors",
                [(t.hf_name, _producer(t, reader, bar), t.dtype, t.source.shape) for t in plan],
                metadata={"format": "pt"},
            )
        _write_json(staging / "config.json", config)
        _write_json(staging / "generation_config.json", model.generation_config())
        for name, content in tokenizer.items():
            (staging / name).write_bytes(content)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above): rename cannot replace it on every platform
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def gguf_int4_matrices(gguf_path: str | os.PathLike) -> tuple[dict[str, Any], bool] | None:
    """The decoder layers' Q4_0 / Q4_1 matrices of a GGUF as Int4Tensors, without loss.

    Returns ({HF name: Int4Tensor}, sym), with the same row order as convert_gguf writes (llama's
    Q/K rows un-permuted), or None when the layer matrices hold no Q4_0/Q4_1 tensor or both kinds
    (one checkpoint has one group size and one symmetry). Q4_0 is symmetric G=32, Q4_1 asymmetric
    G=32; matrices of other types (Q6_K, Q8_0, ...) are not returned.
    """
    from slmcore.quant import int4_from_gguf

    header = read_gguf_header(Path(gguf_path))
    model = _GGUFModel(header)
    plan = [t for t in model.tensor_plan("float32") if t.hf_name.startswith("model.layers.") and len(t.source.shape) == 2]
    q4 = [t for t in plan if t.source.ggml_type in (GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1)]
    kinds = {t.source.ggml_type for t in q4}
    if len(kinds) != 1:
        return None
    raw = _open_reader(header)
    out = {}
    for t in q4:
        m = int4_from_gguf(raw[t.source.name], t.source.ggml_type, t.source.shape, name=t.source.name)
        if t.transform is not None:  # a row permutation (llama's Q/K), exact on int4 rows
            m = m.take_rows(t.transform(np.arange(m.out_features)))
        out[t.hf_name] = m
    return out, kinds == {GGMLQuantizationType.Q4_0}


def _open_reader(header: GGUFHeader) -> dict[str, np.ndarray]:
    """The raw data of every tensor, as the `gguf` package maps it; its errors become ModelFormatError."""
    try:
        reader = GGUFReader(header.path)
    except Exception as e:  # GGUFReader raises ValueError, KeyError, IndexError, ... on bad input
        raise ModelFormatError(f"{header.path}: the gguf package cannot read the file: {e}") from e
    if reader.data_offset != header.data_start or len(reader.tensors) != len(header.tensors):
        raise ModelFormatError(f"{header.path}: the gguf package reads a different tensor layout; the file is corrupt")
    data = {}
    for tensor in reader.tensors:
        info = header.tensors.get(tensor.name)
        if info is None or tensor.data_offset != info.offset or tensor.tensor_type != info.ggml_type:
            raise ModelFormatError(f"{header.path}: the gguf package reads tensor {tensor.name!r} differently")
        data[tensor.name] = tensor.data
    return data


def _producer(planned: _PlannedTensor, raw: dict[str, np.ndarray], bar: Any) -> Callable[[], np.ndarray]:
    def produce() -> np.ndarray:
        source = planned.source
        values = dequantize(raw[source.name], source.ggml_type).reshape(source.shape)
        if planned.transform is not None:
            values = planned.transform(values)
        result = convert(np.asarray(values, dtype=np.float32), "float32", planned.dtype)
        bar.update(1)
        return result

    return produce


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --- the model the metadata describes --------------------------------------------------------------


class _GGUFModel:
    """Hyperparameters and tensor layout of one GGUF file, validated."""

    def __init__(self, header: GGUFHeader) -> None:
        self.header = header
        self.source = str(header.path)
        arch = header.metadata.get("general.architecture")
        if not isinstance(arch, str) or arch not in SUPPORTED_ARCHITECTURES:
            raise ConfigError(
                f"{self.source}: GGUF architecture {arch!r} is not supported; supported architectures: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)} (mistral files are stored as llama)"
            )
        self.architecture: str = arch
        self.hidden_size = self.integer("embedding_length")
        self.num_hidden_layers = self.integer("block_count")
        self.intermediate_size = self.integer("feed_forward_length")
        self.num_attention_heads = self.integer("attention.head_count")
        self.num_key_value_heads = self.integer("attention.head_count_kv", self.num_attention_heads)
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ConfigError(
                f"{self.source}: {arch}.attention.head_count ({self.num_attention_heads}) is not a multiple of "
                f"{arch}.attention.head_count_kv ({self.num_key_value_heads})"
            )
        default_head_dim = self.hidden_size // self.num_attention_heads
        self.head_dim = self.integer("attention.key_length", default_head_dim)
        if self.head_dim % 2 != 0:
            raise ConfigError(f"{self.source}: head size {self.head_dim} is odd; rotary embeddings need an even one")
        if self.integer("attention.value_length", self.head_dim) != self.head_dim:
            raise ConfigError(f"{self.source}: key and value head sizes differ; not supported")
        rotary_dim = self.integer("rope.dimension_count", self.head_dim)
        if rotary_dim != self.head_dim:
            raise ConfigError(
                f"{self.source}: rope covers {rotary_dim} of {self.head_dim} head dimensions; partial rotary "
                "embeddings are not supported"
            )
        self.vocab_size = self.integer("vocab_size", self._vocab_size_default())
        self.tied = "output.weight" not in header.tensors
        self.layer_names = _LAYER_NAMES[arch]

    # -- metadata access -----------------------------------------------------------------------

    def value(self, key: str, kinds: type | tuple[type, ...], default: Any = ...) -> Any:
        """metadata[`{arch}.{key}`] (or the absolute key if it has a dot prefix of its own)."""
        name = key if key.startswith(("general.", "tokenizer.")) else f"{self.architecture}.{key}"
        if name not in self.header.metadata:
            if default is ...:
                raise ModelFormatError(f"{self.source}: the file lacks the metadata key {name!r}")
            return default
        value = self.header.metadata[name]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise ModelFormatError(f"{self.source}: metadata {name!r} has the wrong type ({value!r})")
        if not isinstance(value, kinds):
            raise ModelFormatError(f"{self.source}: metadata {name!r} has the wrong type ({value!r:.100})")
        return value

    def integer(self, key: str, default: Any = ..., minimum: int = 1) -> int:
        value = self.value(key, int, default)
        if value is not None and value < minimum:
            raise ModelFormatError(f"{self.source}: metadata {self.architecture}.{key} is {value}, below {minimum}")
        return value

    def number(self, key: str, default: Any = ...) -> float | None:
        value = self.value(key, (int, float), default)
        if value is None:
            return None
        if not math.isfinite(value) or value <= 0:
            raise ModelFormatError(f"{self.source}: metadata {self.architecture}.{key} is {value}; expected > 0")
        return _shortest_float32(value)

    def token_id(self, name: str) -> int | None:
        value = self.header.metadata.get(f"tokenizer.ggml.{name}_token_id")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.vocab_size:
            return value
        return None

    def _vocab_size_default(self) -> int:
        tokens = self.header.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, list):
            return len(tokens)
        embedding = self.header.tensors.get("token_embd.weight")
        if embedding is None:
            raise ModelFormatError(f"{self.source}: the file has no token_embd.weight tensor")
        return embedding.shape[0]

    # -- config.json / generation_config.json ----------------------------------------------------

    def hf_config(self, dtype: str) -> dict[str, Any]:
        """config.json in the hub's spelling (rope_theta / rope_scaling / torch_dtype)."""
        hf_architecture, model_type = SUPPORTED_ARCHITECTURES[self.architecture]
        config: dict[str, Any] = {
            "architectures": [hf_architecture],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.number("attention.layer_norm_rms_epsilon"),
            "max_position_embeddings": self.integer("context_length"),
            "rope_theta": self.number("rope.freq_base", 10000.0),
            "rope_scaling": self.rope_scaling(),
            "tie_word_embeddings": self.tied,
            "bos_token_id": self.token_id("bos"),
            "eos_token_id": self.token_id("eos"),
            "pad_token_id": self.token_id("padding"),
            "torch_dtype": dtype,
        }
        if self.architecture == "llama":
            config |= {"hidden_act": "silu", "attention_bias": self.has_attention_bias(), "mlp_bias": False}
        elif self.architecture == "qwen2":
            config |= {"hidden_act": "silu", "use_sliding_window": False}
        else:
            config |= self.gemma3_config()
        return config

    def generation_config(self) -> dict[str, Any]:
        eos = [self.token_id(name) for name in ("eos", "eot", "eom")]
        eos = list(dict.fromkeys(i for i in eos if i is not None))
        config: dict[str, Any] = {"bos_token_id": self.token_id("bos")}
        config["eos_token_id"] = eos[0] if len(eos) == 1 else (eos or None)
        config["pad_token_id"] = self.token_id("padding")
        return {k: v for k, v in config.items() if v is not None}

    def rope_scaling(self) -> dict[str, Any] | None:
        kind = self.value("rope.scaling.type", str, None)
        factor = self.number("rope.scaling.factor", None)
        if kind is None and self.value("rope.scale_linear", (int, float), None) is not None:
            kind, factor = "linear", self.number("rope.scale_linear")  # older files
        if "rope_freqs.weight" in self.header.tensors:
            if kind not in (None, "none"):
                raise ConfigError(f"{self.source}: both rope_freqs.weight and rope scaling {kind!r}; not supported")
            return self._llama3_rope()
        if kind in (None, "none") or factor in (None, 1.0) and kind == "linear":
            return None
        if factor is None:
            raise ModelFormatError(
                f"{self.source}: rope scaling {kind!r} without {self.architecture}.rope.scaling.factor"
            )
        if kind == "linear":
            return {"rope_type": "linear", "factor": factor}
        if kind == "yarn":
            scaling = {"rope_type": "yarn", "factor": factor}
            original = self.integer("rope.scaling.original_context_length", None)
            if original is not None:
                scaling["original_max_position_embeddings"] = original
            return scaling
        raise ConfigError(f"{self.source}: rope scaling type {kind!r} is not supported; supported: linear, yarn")

    def _llama3_rope(self) -> dict[str, Any]:
        """Llama 3.x stores its rope scaling as a per-frequency divisor table (rope_freqs.weight,
        computed by convert_hf_to_gguf.py from factor, low/high_freq_factor and the original
        context). The table does not name those numbers, so candidates are tried against it."""
        info = self.header.tensors["rope_freqs.weight"]
        if info.shape != (self.head_dim // 2,) or info.ggml_type != Q.F32:
            raise ModelFormatError(
                f"{self.source}: rope_freqs.weight must be F32 of shape [{self.head_dim // 2}], "
                f"got {info.ggml_type.name} {list(info.shape)}"
            )
        with open(self.header.path, "rb") as f:
            f.seek(info.offset)
            table = np.frombuffer(f.read(info.nbytes), dtype="<f4").astype(np.float64)
        theta = self.number("rope.freq_base", 10000.0)
        factor = float(np.float32(table.max()))
        for low, high in _LLAMA3_FACTOR_PAIRS:
            for original in _LLAMA3_ORIGINAL_CONTEXTS:
                expected = _llama3_divisors(theta, self.head_dim, factor, low, high, original)
                if np.allclose(expected, table, rtol=1e-6, atol=0):
                    return {
                        "rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                        "high_freq_factor": high, "original_max_position_embeddings": original,
                    }  # fmt: skip
        raise ConfigError(
            f"{self.source}: rope_freqs.weight matches no Llama 3 rope scaling (factor {factor}, "
            f"low/high frequency factors {_LLAMA3_FACTOR_PAIRS}); this rope scaling is not supported"
        )

    def has_attention_bias(self) -> bool:
        return any(f"blk.{i}.attn_q.bias" in self.header.tensors for i in range(self.num_hidden_layers))

    def gemma3_config(self) -> dict[str, Any]:
        layer_count = self.num_hidden_layers
        pattern = self.value("attention.sliding_window_pattern", (int, np.ndarray), GEMMA3_SLIDING_WINDOW_PATTERN)
        if isinstance(pattern, np.ndarray):
            if pattern.shape != (layer_count,) or pattern.dtype != bool:
                raise ModelFormatError(
                    f"{self.source}: gemma3.attention.sliding_window_pattern must list {layer_count} booleans"
                )
            sliding = pattern.tolist()
        else:
            # llama.cpp's set_swa_pattern(n): layer i slides unless it is the last of each group of n.
            sliding = [pattern == 0 or i % pattern < pattern - 1 for i in range(layer_count)]
        # llama.cpp scales queries by 1/sqrt(head_dim), except Gemma 3 27B (62 layers): 1/sqrt(hidden/heads).
        query_scalar = self.hidden_size // self.num_attention_heads if layer_count == 62 else self.head_dim
        return {
            "hidden_activation": "gelu_pytorch_tanh",
            "sliding_window": self.integer("attention.sliding_window"),
            "layer_types": ["sliding_attention" if s else "full_attention" for s in sliding],
            "rope_local_base_freq": self.number("rope.freq_base_swa", GEMMA3_ROPE_LOCAL_BASE_FREQ),
            "query_pre_attn_scalar": query_scalar,
            "final_logit_softcapping": self.number("final_logit_softcapping", None),
            "attn_logit_softcapping": self.number("attn_logit_softcapping", None),
            "attention_bias": False,
        }

    # -- tensors -------------------------------------------------------------------------------

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """GGUF tensor name -> shape (numpy order) for every tensor the config calls for."""
        hidden, inter, head_dim = self.hidden_size, self.intermediate_size, self.head_dim
        q_rows, kv_rows = self.num_attention_heads * head_dim, self.num_key_value_heads * head_dim
        shapes = {"token_embd.weight": (self.vocab_size, hidden), "output_norm.weight": (hidden,)}
        if not self.tied:
            shapes["output.weight"] = (self.vocab_size, hidden)
        per_layer = {
            "attn_norm.weight": (hidden,), "ffn_norm.weight": (hidden,),
            "attn_q.weight": (q_rows, hidden), "attn_k.weight": (kv_rows, hidden),
            "attn_v.weight": (kv_rows, hidden), "attn_output.weight": (hidden, q_rows),
            "ffn_gate.weight": (inter, hidden), "ffn_up.weight": (inter, hidden), "ffn_down.weight": (hidden, inter),
        }  # fmt: skip
        if self.architecture == "qwen2" or (self.architecture == "llama" and self.has_attention_bias()):
            per_layer |= {"attn_q.bias": (q_rows,), "attn_k.bias": (kv_rows,), "attn_v.bias": (kv_rows,)}
        if self.architecture == "llama" and self.has_attention_bias():
            per_layer["attn_output.bias"] = (hidden,)  # LlamaConfig.attention_bias covers o_proj too
        if self.architecture == "gemma3":
            per_layer |= {
                "attn_q_norm.weight": (head_dim,), "attn_k_norm.weight": (head_dim,),
                "post_attention_norm.weight": (hidden,), "post_ffw_norm.weight": (hidden,),
            }  # fmt: skip
        for i in range(self.num_hidden_layers):
            shapes |= {f"blk.{i}.{name}": shape for name, shape in per_layer.items()}
        return shapes

    def tensor_plan(self, dtype: str) -> list[_PlannedTensor]:
        """Every output tensor with its source and transform, all checked before anything is written."""
        tensors = self.header.tensors
        expected = self.expected_shapes()
        extra = [name for name in tensors if name not in expected and name != "rope_freqs.weight"]
        missing = [name for name in expected if name not in tensors]
        if missing or extra:
            raise ModelFormatError(
                f"{self.source}: the tensors do not match the {self.architecture} config in the metadata"
                + (f"; missing: {_some(missing)}" if missing else "")
                + (f"; unexpected: {_some(extra)}" if extra else "")
            )
        plan = []
        for name, shape in expected.items():
            info = tensors[name]
            if info.shape != shape:
                raise ModelFormatError(
                    f"{self.source}: tensor {name!r} has shape {list(info.shape)}, expected {list(shape)} from "
                    "the metadata (embedding_length, feed_forward_length, head counts, vocabulary size)"
                )
            if info.ggml_type not in SUPPORTED_TENSOR_TYPES:
                raise ModelFormatError(
                    f"{self.source}: tensor {name!r} is stored as {info.ggml_type.name}; supported tensor types: "
                    f"{', '.join(t.name for t in SUPPORTED_TENSOR_TYPES)}"
                )
            is_vector = len(shape) == 1  # norm weights and biases stay float32
            plan.append(
                _PlannedTensor(
                    hf_name=self.hf_name(name),
                    source=info,
                    dtype="float32" if is_vector else dtype,
                    transform=self.transform(name),
                )
            )
        return plan

    def hf_name(self, gguf_name: str) -> str:
        stem, suffix = gguf_name.rsplit(".", 1)
        if stem in _GLOBAL_NAMES:
            return f"{_GLOBAL_NAMES[stem]}.{suffix}"
        _, layer, part = stem.split(".", 2)
        return f"model.layers.{layer}.{self.layer_names[part]}.{suffix}"

    def transform(self, gguf_name: str) -> Callable[[np.ndarray], np.ndarray] | None:
        if self.architecture == "llama" and ".attn_q." in gguf_name:
            return lambda w: _unpermute_rope_rows(w, self.num_attention_heads)
        if self.architecture == "llama" and ".attn_k." in gguf_name:
            return lambda w: _unpermute_rope_rows(w, self.num_key_value_heads)
        if self.architecture == "gemma3" and gguf_name.endswith("norm.weight"):
            return lambda w: w - np.float32(1.0)
        return None


def _unpermute_rope_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo convert_hf_to_gguf.py's LlamaModel.permute: within each head, GGUF row 2i+j is HF row
    j*(head_dim/2)+i (llama.cpp rotates adjacent pairs, HF rotates the two halves)."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _llama3_divisors(theta: float, head_dim: int, factor: float, low: float, high: float, original: int) -> np.ndarray:
    """convert_hf_to_gguf.py's Llama 3 rope_freqs table for these parameters (float64)."""
    frequencies = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelengths = 2 * math.pi / frequencies
    smooth = (original / wavelengths - low) / (high - low)
    middle = 1.0 / ((1 - smooth) / factor + smooth)
    divisors = np.where(wavelengths < original / high, 1.0, np.where(wavelengths > original / low, factor, middle))
    return divisors.astype(np.float32).astype(np.float64)


def _shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (GGUF stores 1e-5 as 9.99999974e-06)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def _some(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
