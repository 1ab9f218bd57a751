"""convert_gguf against transformers (DESIGN.md sections 5 and 6).

GGUF files are built here from tiny random transformers models, written the way llama.cpp writes
them (tests/gguf_files.py). Three references: the original model (tensors and logits), transformers
loading the same GGUF (`from_pretrained(dir, gguf_file=name)`: tensors and tokenizer), and
gguf.quants.dequantize for every supported block type. Hostile files are built byte by byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import struct
import time
import tracemalloc
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
import transformers
from gguf import GGMLQuantizationType as Q
from safetensors.torch import load_file
from tokenizers import Tokenizer

import slmcore
import slmcore.convert as convert_module
from slmcore.config import ModelConfig
from slmcore.convert import SUPPORTED_TENSOR_TYPES, convert_gguf
from slmcore.errors import ConfigError, InvalidArgumentError, ModelFormatError
from slmcore.gguf_header import read_gguf_header
from gguf_files import (
    CHAT_TEMPLATE,
    CORPUS,
    Vocab,
    byte_level_vocab,
    hf_logits,
    llama_permute,
    sentencepiece_vocab,
    tiny_model,
    write_gguf,
)
from text_samples import varied_strings

SEQ = [3, 17, 250, 4, 99, 1, 0, 288, 77, 12, 5, 160, 33, 2, 201, 45, 6, 7, 299, 88, 100, 150, 42]
F32_TOL = 1e-4  # slmcore vs transformers, max abs logit error with float32 weights


@dataclass(frozen=True)
class Case:
    id: str
    arch: str
    tensor_type: Q
    tied: bool
    vocab: str  # "bpe" | "spm" | "gemma"
    pre: str | None = None
    add_bos: bool | None = None
    chat_template: str | None = None


CASES = [
    Case("llama-gqa-untied-f32", "llama", Q.F32, tied=False, vocab="bpe", pre="llama-bpe", add_bos=True,
         chat_template=CHAT_TEMPLATE),
    Case("llama-gqa-tied-f16", "llama", Q.F16, tied=True, vocab="bpe", pre="smollm", add_bos=False),
    Case("qwen2-bias-untied-f32", "qwen2", Q.F32, tied=False, vocab="bpe", pre="qwen2"),
    Case("qwen2-bias-tied-f16", "qwen2", Q.F16, tied=True, vocab="bpe", pre="deepseek-r1-qwen",
         chat_template=CHAT_TEMPLATE),
    Case("llama-sentencepiece-f32", "llama", Q.F32, tied=False, vocab="spm"),
    Case("gemma3-f32", "gemma3", Q.F32, tied=True, vocab="gemma"),
]  # fmt: skip
CASE_IDS = [c.id for c in CASES]


@dataclass
class Converted:
    case: Case
    model: transformers.PreTrainedModel
    vocab: Vocab
    sentencepiece_proto: bytes | None
    gguf_path: Path
    stored: dict[str, np.ndarray]
    out_dir: Path


@pytest.fixture(scope="module")
def vocabularies() -> dict[str, tuple[Vocab, bytes | None]]:
    bpe = byte_level_vocab()
    for case in CASES:
        assert case.vocab != "bpe" or len(bpe.tokens) == 300
    return {"bpe": (bpe, None), "spm": sentencepiece_vocab(gemma=False), "gemma": sentencepiece_vocab(gemma=True)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, vocabularies):
    cache: dict[str, Converted] = {}

    def get(case_id: str) -> Converted:
        if case_id not in cache:
            case = next(c for c in CASES if c.id == case_id)
            vocab, proto = vocabularies[case.vocab]
            vocab = dataclasses.replace(vocab, pre=case.pre or vocab.pre)
            root = tmp_path_factory.mktemp(case.id)
            model = tiny_model(case.arch, len(vocab.tokens), tie_word_embeddings=case.tied)
            gguf_path, stored = write_gguf(
                root / f"{case.id}.gguf", model, vocab, case.tensor_type,
                add_bos=case.add_bos, chat_template=case.chat_template,
            )  # fmt: skip
            out = convert_gguf(gguf_path, root / "converted", progress=False)
            cache[case_id] = Converted(case, model, vocab, proto, gguf_path, stored, out)
        return cache[case_id]

    return get


def gguf_loaded(c: Converted) -> transformers.PreTrainedModel:
    """transformers' own loading of the GGUF file."""
    return transformers.AutoModelForCausalLM.from_pretrained(
        c.gguf_path.parent, gguf_file=c.gguf_path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


# --- tensors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_tensors_equal_the_original_model(converted, case_id):
    c = converted(case_id)
    ours = load_file(c.out_dir / "model.safetensors")
    expected = {k: v for k, v in c.model.state_dict().items() if not (k == "lm_head.weight" and c.case.tied)}
    assert sorted(ours) == sorted(expected)
    for name, original in expected.items():
        if original.ndim == 2 and c.case.tensor_type == Q.F16:
            original = original.half().float()  # the file holds matrices in f16, norms and biases in f32
        if c.case.arch == "gemma3" and name.endswith("norm.weight"):
            original = (original + 1.0) - 1.0  # stored as 1 + w in float32: w comes back rounded
        assert ours[name].dtype == torch.float32
        assert torch.equal(ours[name], original), name


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_tensors_equal_transformers_gguf_loading(converted, case_id):
    c = converted(case_id)
    ours = load_file(c.out_dir / "model.safetensors")
    theirs = gguf_loaded(c).state_dict()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name
    assert set(theirs) - set(ours) <= {"lm_head.weight"}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_logits_match(converted, case_id):
    c = converted(case_id)
    reference = hf_logits(c.model if c.case.tensor_type == Q.F32 else gguf_loaded(c), SEQ)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        c.out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    assert np.abs(hf_logits(reloaded, SEQ) - reference).max() <= 1e-5
    if c.case.arch == "gemma3":
        return  # slmcore has no Gemma 3 engine yet
    with slmcore.LLM(c.out_dir, threads=2) as llm:
        ours = llm.logits(SEQ)
    error = np.abs(ours - reference).max()
    assert error <= F32_TOL, f"max abs logit error {error}"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_config(converted, case_id):
    c = converted(case_id)
    config = json.loads((c.out_dir / "config.json").read_text())
    original = c.model.config
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings"):  # fmt: skip
        assert config[key] == getattr(original, key), key
    assert config["rms_norm_eps"] == original.rms_norm_eps
    assert config["torch_dtype"] == "float32"
    loaded = transformers.AutoConfig.from_pretrained(c.out_dir)
    assert type(loaded) is type(original)
    assert loaded.rope_parameters == original.rope_parameters
    ids = c.vocab.ids
    assert (config["bos_token_id"], config["eos_token_id"]) == (ids.get("bos"), ids.get("eos"))
    generation = json.loads((c.out_dir / "generation_config.json").read_text())
    assert generation == {k: v for k, v in
                          {"bos_token_id": ids.get("bos"), "eos_token_id": ids.get("eos"),
                           "pad_token_id": ids.get("padding")}.items() if v is not None}  # fmt: skip
    if c.case.arch == "gemma3":
        assert loaded.layer_types == original.layer_types
        assert (loaded.sliding_window, loaded.head_dim, loaded.query_pre_attn_scalar) == (4, 32, 32)
        return
    ours = ModelConfig.from_file(c.out_dir)
    assert ours.head_dim == original.hidden_size // original.num_attention_heads
    assert ours.qkv_bias == (c.case.arch == "qwen2")
    assert ours.rope.theta == original.rope_parameters["rope_theta"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_output_dtypes(converted, tmp_path, dtype):
    c = converted("llama-gqa-untied-f32")
    out = convert_gguf(c.gguf_path, tmp_path / dtype, dtype=dtype, progress=False)
    ours = load_file(out / "model.safetensors")
    torch_dtype = getattr(torch, dtype)
    for name, original in c.model.state_dict().items():
        if original.ndim == 1:  # norm weights stay float32
            assert ours[name].dtype == torch.float32 and torch.equal(ours[name], original), name
        else:  # torch rounds to nearest even, as the conversion must
            assert ours[name].dtype == torch_dtype and torch.equal(ours[name], original.to(torch_dtype)), name
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == dtype
    with slmcore.LLM(out, threads=2) as llm:
        assert llm.dtype == dtype
        assert np.abs(llm.logits(SEQ) - hf_logits(c.model, SEQ)).max() < 0.05


# --- tokenizer --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_tokenizer_matches_transformers_gguf_tokenizer(converted, case_id):
    c = converted(case_id)
    reference = transformers.AutoTokenizer.from_pretrained(c.gguf_path.parent, gguf_file=c.gguf_path.name)
    ours = transformers.AutoTokenizer.from_pretrained(c.out_dir)
    plain = Tokenizer.from_file(str(c.out_dir / "tokenizer.json"))  # what slmcore's tokenizer reads
    # transformers tokenizes a qwen2 directory with Qwen2Tokenizer, which NFC-normalizes; the
    # converted tokenizer.json says so too. Its GGUF loader does not: the only difference.
    normalize = (lambda text: unicodedata.normalize("NFC", text)) if c.case.arch == "qwen2" else (lambda text: text)

    # The same pipeline, vocabulary, merges and added tokens (added tokens in any order).
    a, b = json.loads(reference.backend_tokenizer.to_str()), json.loads(ours.backend_tokenizer.to_str())
    assert json.loads(plain.to_str())["normalizer"] == b["normalizer"]
    if c.case.arch == "qwen2":
        assert (a.pop("normalizer"), b.pop("normalizer")) == (None, {"type": "NFC"})
    key = lambda token: json.dumps(token, sort_keys=True)  # noqa: E731
    assert sorted(map(key, a.pop("added_tokens"))) == sorted(map(key, b.pop("added_tokens")))
    assert a == b

    assert ours.special_tokens_map == reference.special_tokens_map
    assert ours.all_special_ids == reference.all_special_ids
    assert ours.chat_template == reference.chat_template
    strings = varied_strings(c.vocab.special_tokens(), random_count=150, seed=CASE_IDS.index(case_id))
    assert any(normalize(text) != text for text in strings) == (c.case.arch == "qwen2")
    for text in strings:
        expected = reference.encode(normalize(text))
        assert ours.encode(text) == expected, repr(text)
        assert plain.encode(text).ids == expected, repr(text)
        bare = reference.encode(normalize(text), add_special_tokens=False)
        assert ours.encode(text, add_special_tokens=False) == bare
        assert ours.decode(expected) == reference.decode(expected), repr(text)
        assert ours.decode(expected, skip_special_tokens=True) == reference.decode(expected, skip_special_tokens=True)
    if c.case.chat_template:
        messages = [{"role": "user", "content": "Hi there <think> 123"}, {"role": "assistant", "content": "Hello!"}]
        assert ours.apply_chat_template(messages, tokenize=False) == reference.apply_chat_template(
            messages, tokenize=False
        )


def test_bos_is_added_where_the_file_says(converted):
    with_bos = transformers.AutoTokenizer.from_pretrained(converted("llama-gqa-untied-f32").out_dir)
    without = transformers.AutoTokenizer.from_pretrained(converted("llama-gqa-tied-f16").out_dir)
    assert with_bos.encode("hello")[0] == with_bos.bos_token_id
    assert without.encode("hello")[0] != without.bos_token_id
    gemma = converted("gemma3-f32")  # a SentencePiece file without add_bos_token: llama.cpp adds BOS
    assert transformers.AutoTokenizer.from_pretrained(gemma.out_dir).encode("hi")[0] == gemma.vocab.ids["bos"]


@pytest.mark.parametrize("case_id", ["llama-sentencepiece-f32", "gemma3-f32"])
def test_rebuilt_sentencepiece_model_tokenizes_like_the_original(converted, case_id):
    """tokenizer.model rebuilt from the GGUF (Gemma's literal-space pieces respelled "▁") encodes as
    the SentencePiece model the vocabulary came from."""
    import sentencepiece as spm

    c = converted(case_id)
    original = spm.SentencePieceProcessor(model_proto=c.sentencepiece_proto)
    rebuilt = spm.SentencePieceProcessor(model_file=str(c.out_dir / "tokenizer.model"))
    assert rebuilt.get_piece_size() == original.get_piece_size()
    for text in [*CORPUS, "   three spaces", "a  b   c    d", "<start_of_turn>user\nhi<end_of_turn>"]:
        assert rebuilt.encode(text) == original.encode(text), repr(text)


# --- rope scaling ------------------------------------------------------------------------------------


def llama3_rope_freqs(theta: float, head_dim: int, factor: float, low: float, high: float, original: int):
    """The rope_freqs.weight table llama.cpp's converter writes for Llama 3.x rope scaling."""
    out = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * theta ** (i / head_dim)
        if wavelength < original / high:
            out.append(1.0)
        elif wavelength > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def test_llama3_rope_scaling_from_rope_freqs(tmp_path, vocabularies):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}  # fmt: skip
    model = tiny_model("llama", 300, rope_scaling=dict(scaling), rope_theta=500000.0, hidden_size=128,
                       num_attention_heads=4)  # fmt: skip
    table = llama3_rope_freqs(500000.0, 32, 8.0, 1.0, 4.0, 64)
    assert len(set(table.tolist())) > 2  # 1, the factor and smoothed entries
    vocab = vocabularies["bpe"][0]
    path, _ = write_gguf(tmp_path / "l3.gguf", model, vocab, extra_tensors={"rope_freqs.weight": table})
    out = convert_gguf(path, tmp_path / "out", progress=False)
    assert json.loads((out / "config.json").read_text())["rope_scaling"] == scaling
    with slmcore.LLM(out, threads=2) as llm:
        assert np.abs(llm.logits(SEQ) - hf_logits(model, SEQ)).max() <= F32_TOL

    bad = table.copy()
    bad[len(bad) // 2] *= 1.5
    path, _ = write_gguf(tmp_path / "bad.gguf", model, None, extra_tensors={"rope_freqs.weight": bad})
    with pytest.raises(ConfigError, match="rope_freqs"):
        convert_gguf(path, tmp_path / "bad", progress=False)


def test_linear_rope_scaling_from_metadata(tmp_path):
    model = tiny_model("qwen2", 300, rope_scaling={"rope_type": "linear", "factor": 2.0})

    def metadata(writer: gguf.GGUFWriter) -> None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(2.0)

    path, _ = write_gguf(tmp_path / "q.gguf", model, None, extra_metadata=metadata)
    out = convert_gguf(path, tmp_path / "out", progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    assert not (out / "tokenizer.json").exists()  # no tokenizer in the file: none written
    with slmcore.LLM(out, threads=2) as llm:
        assert np.abs(llm.logits(SEQ) - hf_logits(model, SEQ)).max() <= F32_TOL


# --- dequantization -----------------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", SUPPORTED_TENSOR_TYPES, ids=lambda t: t.name)
def test_dequantization_is_bit_exact(tmp_path, qtype):
    # 256-wide rows: a whole number of blocks for every type (K-quants use 256-element blocks).
    model = tiny_model("llama", 300, hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    path, stored = write_gguf(tmp_path / "q.gguf", model, None, qtype, seed=int(qtype))
    header = read_gguf_header(path)
    assert {header.tensors[n].ggml_type for n, raw in stored.items() if raw.ndim == 2} == {qtype}
    out = convert_gguf(path, tmp_path / "out", progress=False)
    ours = load_file(out / "model.safetensors")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="q.gguf", dtype=torch.float32)
    theirs = theirs.state_dict()
    config = model.config
    for hf_name in ours:
        assert torch.equal(ours[hf_name], theirs[hf_name]), hf_name
    hf_names = {gguf_name: hf_name for hf_name, gguf_name in _hf_to_gguf(model).items()}
    for gguf_name, raw in stored.items():
        if raw.ndim != 2:
            continue
        hf_name = hf_names[gguf_name]
        values = ours[hf_name].numpy()
        if ".attn_q." in gguf_name:
            values = llama_permute(values, config.num_attention_heads)
        elif ".attn_k." in gguf_name:
            values = llama_permute(values, config.num_key_value_heads)
        expected = gguf.quants.dequantize(raw, qtype).reshape(values.shape)
        assert np.array_equal(values, expected), gguf_name


def _hf_to_gguf(model) -> dict[str, str]:
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, model.config.num_hidden_layers)
    result = {}
    for hf_name in model.state_dict():
        stem, suffix = hf_name.rsplit(".", 1)
        result[hf_name] = f"{name_map.get_name(stem)}.{suffix}"
    return result


@pytest.mark.parametrize("qtype", [Q.Q5_1, Q.Q2_K], ids=lambda t: t.name)
def test_unsupported_tensor_type_is_refused(tmp_path, qtype):
    model = tiny_model("llama", 300, hidden_size=256, intermediate_size=256, num_hidden_layers=1)
    rng = np.random.default_rng(0)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (300, 256 // block_size * type_size), dtype=np.uint8)
    path, _ = write_gguf(tmp_path / "q.gguf", model, None, drop_tensors=("token_embd.weight",),
                         extra_metadata=lambda w: w.add_tensor("token_embd.weight", blocks, raw_dtype=qtype))
    with pytest.raises(ModelFormatError) as e:
        convert_gguf(path, tmp_path / "out", progress=False)
    message = str(e.value)
    assert qtype.name in message and "token_embd.weight" in message
    assert all(t.name in message for t in SUPPORTED_TENSOR_TYPES)
    assert not (tmp_path / "out").exists()


# --- architectures, arguments, output directory ------------------------------------------------------


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    writer = gguf.GGUFWriter(tmp_path / "phi.gguf", "phi3")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError) as e:
        convert_gguf(tmp_path / "phi.gguf", tmp_path / "out", progress=False)
    assert all(word in str(e.value) for word in ("phi3", "llama", "qwen2", "gemma3"))

    as_array = kv("general.architecture", 9, struct.pack("<IQ", 8, 1) + gguf_str("llama"))
    (tmp_path / "array.gguf").write_bytes(raw_gguf([as_array], []))
    expect_refused(tmp_path / "array.gguf", tmp_path / "out", "['llama']", "supported", error=ConfigError)


def test_output_directory_rules(converted, tmp_path):
    c = converted("qwen2-bias-untied-f32")
    with pytest.raises(InvalidArgumentError, match="dtype"):
        convert_gguf(c.gguf_path, tmp_path / "a", dtype="int8", progress=False)
    with pytest.raises(InvalidArgumentError, match="no such file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "a", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="not an empty directory"):
        convert_gguf(c.gguf_path, tmp_path / "full", progress=False)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    convert_gguf(c.gguf_path, tmp_path / "empty", progress=False)  # an empty directory is filled
    assert (tmp_path / "empty" / "model.safetensors").is_file()


def test_interrupted_conversion_leaves_nothing(converted, tmp_path, monkeypatch):
    c = converted("llama-gqa-untied-f32")

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_module, "_write_json", interrupt)  # after model.safetensors is written
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(c.gguf_path, tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []  # neither out nor the staging directory


def test_progress_bar_only_when_asked(converted, tmp_path, capfd):
    c = converted("qwen2-bias-tied-f16")
    capfd.readouterr()
    convert_gguf(c.gguf_path, tmp_path / "quiet", progress=False)
    assert capfd.readouterr() == ("", "")
    convert_gguf(c.gguf_path, tmp_path / "loud", progress=True)
    assert "tensor" in capfd.readouterr().err


def test_gguf_reader_errors_become_model_format_errors(converted, tmp_path, monkeypatch):
    c = converted("qwen2-bias-untied-f32")

    def broken_reader(path: Any) -> None:
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(convert_module, "GGUFReader", broken_reader)
    with pytest.raises(ModelFormatError, match="out of bounds"):
        convert_gguf(c.gguf_path, tmp_path / "out", progress=False)


# --- hostile files -----------------------------------------------------------------------------------

MEMORY_LIMIT = 16 << 20  # a hostile file is refused without allocating more than this


def expect_refused(path: Path, out: Path, *words: str, error: type = ModelFormatError) -> str:
    """convert_gguf(path) raises error naming path and words, within a second and small memory."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as e:
            convert_gguf(path, out, progress=False)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    message = str(e.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert peak < MEMORY_LIMIT, f"allocated {peak / 2**20:.1f} MiB"
    assert rss_growth_kib < 64 * 1024, f"peak RSS grew by {rss_growth_kib / 1024:.0f} MiB"
    assert not out.exists()
    return message


def gguf_str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, value_type: int, payload: bytes) -> bytes:
    return gguf_str(key) + struct.pack("<I", value_type) + payload


def tensor_info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    return gguf_str(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


def raw_gguf(kvs: list[bytes], infos: list[bytes], data: bytes = b"", *, magic: bytes = b"GGUF", version: int = 3,
             tensor_count: int | None = None, kv_count: int | None = None, alignment: int = 32) -> bytes:  # fmt: skip
    head = magic + struct.pack("<IQQ", version, len(infos) if tensor_count is None else tensor_count,
                               len(kvs) if kv_count is None else kv_count)  # fmt: skip
    head += b"".join(kvs) + b"".join(infos)
    return head + b"\0" * (-len(head) % alignment) + data


ARCH_KV = kv("general.architecture", 8, gguf_str("llama"))
F32 = int(Q.F32)


def one_tensor_file(dims=(8, 4), ggml_type=F32, offset=0, data_bytes=128, extra_kvs=(), name="token_embd.weight"):
    return raw_gguf([ARCH_KV, *extra_kvs], [tensor_info(name, list(dims), ggml_type, offset)], b"\0" * data_bytes)


HOSTILE_HEADERS = {
    "wrong magic": (raw_gguf([ARCH_KV], [], magic=b"GGML"), ["not a GGUF file"]),
    "version 1": (raw_gguf([ARCH_KV], [], version=1), ["version 1"]),
    "big-endian": (raw_gguf([ARCH_KV], [], version=3 << 24), ["big-endian"]),
    "tensor count 2**60": (raw_gguf([ARCH_KV], [], tensor_count=2**60), ["1152921504606846976 tensors"]),
    "kv count 2**60": (raw_gguf([ARCH_KV], [], kv_count=2**60), ["1152921504606846976 metadata entries"]),
    "both counts 2**64-1": (raw_gguf([], [], tensor_count=2**64 - 1, kv_count=2**64 - 1), ["more than"]),
    "key length beyond the file": (raw_gguf([struct.pack("<Q", 2**62) + b"general"], [], kv_count=1),
                                   ["metadata key #0", "bytes long"]),
    "string value beyond the file": (raw_gguf([kv("general.name", 8, struct.pack("<Q", 10**9) + b"abc")], []),
                                     ["'general.name'", "1000000000 bytes", "remain"]),
    "u8 array count beyond the file": (raw_gguf([kv("x.arr", 9, struct.pack("<IQ", 0, 10**6) + b"\1" * 10)], []),
                                       ["1000000 elements of array 'x.arr'"]),
    "string array count beyond the file": (raw_gguf([kv("tokenizer.ggml.tokens", 9,
                                                        struct.pack("<IQ", 8, 2**40) + gguf_str("a"))], []),
                                           ["limit of 2097152 elements"]),
    "arrays past the total element limit": (raw_gguf([kv(f"x.a{i}", 9, struct.pack("<IQ", 0, 3 << 19) + b"\0" * (3 << 19))
                                                      for i in range(2)], []), ["'x.a1'", "in all"]),
    "array count 2**63": (raw_gguf([kv("x.arr", 9, struct.pack("<IQ", 4, 2**63))], []), ["elements"]),
    "arrays nested too deep": (raw_gguf([kv("x.arr", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1)
                                            + struct.pack("<IQ", 4, 1) + b"\0" * 4)], []), ["nests arrays"]),
    "unknown value type": (raw_gguf([kv("x.v", 13, b"\0" * 8)], []), ["unknown value type 13"]),
    "unknown array element type": (raw_gguf([kv("x.arr", 9, struct.pack("<IQ", 42, 1) + b"\0" * 8)], []),
                                   ["unknown element type 42"]),
    "invalid UTF-8 key": (raw_gguf([gguf_str(b"\xff\xfe") + struct.pack("<I", 0) + b"\0"], []), ["UTF-8"]),
    "duplicate key": (raw_gguf([ARCH_KV, ARCH_KV], []), ["appears twice"]),
    "alignment not a power of two": (one_tensor_file(extra_kvs=[kv("general.alignment", 4, struct.pack("<I", 24))]),
                                     ["general.alignment"]),
    "alignment zero": (one_tensor_file(extra_kvs=[kv("general.alignment", 4, struct.pack("<I", 0))]),
                       ["general.alignment"]),
    "alignment of the wrong type": (one_tensor_file(extra_kvs=[kv("general.alignment", 10, struct.pack("<Q", 32))]),
                                    ["UINT32"]),
    "n_dims 0": (raw_gguf([ARCH_KV], [gguf_str("t") + struct.pack("<IIQ", 0, F32, 0)], b"\0" * 64), ["n_dims=0"]),
    "n_dims 9": (one_tensor_file(dims=(1,) * 9), ["n_dims=9"]),
    "zero dimension": (one_tensor_file(dims=(8, 0)), ["zero dimension"]),
    "unknown tensor type": (one_tensor_file(ggml_type=99), ["unknown ggml type 99"]),
    "removed tensor type Q4_2": (one_tensor_file(ggml_type=4), ["unknown ggml type 4"]),
    "offset out of range": (one_tensor_file(offset=2**40), ["outside the data section"]),
    "data beyond the end": (one_tensor_file(data_bytes=100), ["outside the data section"]),
    "huge dims": (one_tensor_file(dims=(2**62, 2**62, 2**62, 2**62)), ["outside the data section"]),
    "misaligned offset": (one_tensor_file(offset=4, data_bytes=256), ["not a multiple of the alignment 32"]),
    "row not a whole number of blocks": (one_tensor_file(dims=(33, 2), ggml_type=int(Q.Q8_0)),
                                         ["not a multiple of the Q8_0 block size"]),
    "overlapping tensors": (raw_gguf([ARCH_KV], [tensor_info("a", [8, 4], F32, 0), tensor_info("b", [8, 4], F32, 96)],
                                     b"\0" * 256), ["'a'", "'b'", "overlap"]),
    "duplicate tensor name": (raw_gguf([ARCH_KV], [tensor_info("a", [8], F32, 0), tensor_info("a", [8], F32, 32)],
                                       b"\0" * 64), ["appears twice"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE_HEADERS), ids=list(HOSTILE_HEADERS))
def test_hostile_header_is_refused_quickly(tmp_path, case):
    content, words = HOSTILE_HEADERS[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(content)
    expect_refused(path, tmp_path / "out", *words)


@pytest.fixture(scope="module")
def valid_gguf(converted) -> bytes:
    return converted("llama-gqa-untied-f32").gguf_path.read_bytes()


def test_truncated_files_are_refused_quickly(tmp_path, valid_gguf, converted):
    header = read_gguf_header(converted("llama-gqa-untied-f32").gguf_path)
    size = len(valid_gguf)
    cuts = [0, 3, 4, 8, 16, 23, 24, 40, 200, 2000, header.data_start - 40, header.data_start - 1,
            header.data_start + 10, (header.data_start + size) // 2, size - 1]  # fmt: skip
    for cut in cuts:
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(valid_gguf[:cut])
        expect_refused(path, tmp_path / "out")


def test_corrupted_counts_in_a_real_file(tmp_path, valid_gguf):
    for offset, value, words in [(8, 2**60, ["tensors"]), (16, 2**60, ["metadata entries"]), (8, 10**6, ["more than"])]:
        corrupt = bytearray(valid_gguf)
        corrupt[offset : offset + 8] = struct.pack("<Q", value)
        path = tmp_path / "corrupt.gguf"
        path.write_bytes(bytes(corrupt))
        expect_refused(path, tmp_path / "out", *words)


def test_shapes_inconsistent_with_the_config(tmp_path):
    model = tiny_model("llama", 300)
    cases = [
        ({"extra_metadata": lambda w: w.add_feed_forward_length(128)},
         ["'blk.0.ffn_gate.weight'", "[160, 64]", "[128, 64]"]),
        ({"extra_metadata": lambda w: w.add_head_count_kv(4)}, ["'blk.0.attn_k.weight'"]),
        ({"extra_metadata": lambda w: w.add_block_count(3)}, ["missing", "'blk.2.attn_q.weight'"]),
        ({"extra_metadata": lambda w: w.add_vocab_size(301)}, ["'token_embd.weight'", "[301, 64]"]),
        ({"drop_tensors": ("blk.1.ffn_up.weight",)}, ["missing", "'blk.1.ffn_up.weight'"]),
        ({"extra_tensors": {"blk.0.mystery.weight": np.zeros(64, np.float32)}},
         ["unexpected", "'blk.0.mystery.weight'"]),
        ({"extra_metadata": lambda w: w.add_head_count(3)}, ["head_count"]),
    ]  # fmt: skip
    for index, (kwargs, words) in enumerate(cases):
        path, _ = write_gguf(tmp_path / f"bad{index}.gguf", model, None, **kwargs)
        error = ConfigError if "head_count" in words else ModelFormatError
        expect_refused(path, tmp_path / "out", *words, error=error)


def test_missing_hyperparameter_is_named(tmp_path):
    content = raw_gguf([ARCH_KV, kv("llama.block_count", 4, struct.pack("<I", 1))], [])
    path = tmp_path / "sparse.gguf"
    path.write_bytes(content)
    expect_refused(path, tmp_path / "out", "llama.embedding_length")


def test_malformed_vocabulary_is_refused_before_anything_is_written(tmp_path, vocabularies):
    from slmcore.errors import TokenizerFileError

    model = tiny_model("llama", 300)
    bpe = vocabularies["bpe"][0]
    cases = [
        (lambda w: w.add_token_merges(["Ġ Ġ", "zz qq"]), ["cannot build a tokenizer", "zz"]),
        (lambda w: w.add_token_merges(["Ġ Ġ", "nospace"]), ["'nospace'", "two tokens"]),
        (lambda w: w.add_token_types([1, 1, 1]), ["token_type has 3 entries", "300"]),
        (lambda w: w.add_array("tokenizer.ggml.tokens", list(range(300))), ["tokenizer.ggml.tokens", "str"]),
        (lambda w: w.add_tokenizer_model("llama"), ["scores"]),  # SentencePiece needs scores to rank merges
    ]
    spm_vocab = vocabularies["spm"][0]
    long_token = dataclasses.replace(spm_vocab, tokens=spm_vocab.tokens[:-1] + ["a" * 100_000])
    for index, (corrupt, words) in enumerate(cases):
        path, _ = write_gguf(tmp_path / f"bad{index}.gguf", model, bpe, extra_metadata=corrupt)
        with pytest.raises(TokenizerFileError) as e:
            convert_gguf(path, tmp_path / "out", progress=False)
        assert all(word in str(e.value) for word in [str(path), *words]), str(e.value)
        assert list(tmp_path.glob("*out*")) == []

    # Deriving merges costs the square of a token's length: a 100000-character piece is refused at once.
    model = tiny_model("llama", len(long_token.tokens))
    path, _ = write_gguf(tmp_path / "long.gguf", model, long_token)
    start = time.perf_counter()
    with pytest.raises(TokenizerFileError, match="100000 characters long"):
        convert_gguf(path, tmp_path / "out", progress=False)
    assert time.perf_counter() - start < 1.0


def test_llm_loads_a_gguf_path_through_the_cache(converted, tmp_path, monkeypatch):
    """slmcore.LLM("x.gguf") converts once into $SLMCORE_HOME/converted and reuses the result."""
    c = converted(CASE_IDS[0])
    monkeypatch.setenv("SLMCORE_HOME", str(tmp_path / "home"))
    ids = [1, 5, 9, 2, 7]
    with slmcore.LLM(c.out_dir, dtype="float16", kv_dtype="float32") as ref:
        expected = ref.logits(ids)
    with slmcore.LLM(c.gguf_path, kv_dtype="float32") as llm:
        assert llm.dtype == "float16"
        cached = llm.path
        np.testing.assert_array_equal(llm.logits(ids), expected)
    assert cached.parent == tmp_path / "home" / "converted"
    stamp = (cached / "model.safetensors").stat().st_mtime_ns
    with slmcore.LLM(c.gguf_path) as again:
        assert again.path == cached
    assert (cached / "model.safetensors").stat().st_mtime_ns == stamp
