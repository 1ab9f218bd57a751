"""slmcore.tokenizer against transformers' AutoTokenizer on tokenizer files the tests build themselves."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import tokenizer_fixtures as fixtures
from slmcore.errors import InvalidArgumentError, InvalidTokenError, TokenizerFileError
from slmcore.tokenizer import (
    MODEL_TYPE_TOKENIZER_CLASS,
    MODEL_TYPES_WITH_WRONG_HUB_CLASS,
    Tokenizer,
    has_tokenizer_files,
)

# name -> (builder, the class AutoTokenizer picks). Variants cover the branches of transformers' loading.
VARIANTS = {
    # (a) byte-level BPE
    "smollm2": (fixtures.smollm2_like, "GPT2Tokenizer"),
    "llama3": (fixtures.llama3_like, "TokenizersBackend"),
    "qwen2": (fixtures.qwen2_like, "Qwen2Tokenizer"),
    "smollm2_split_special_tokens": (lambda p: fixtures.smollm2_like(p, split_special_tokens=True), "GPT2Tokenizer"),
    # Declares LlamaTokenizer but ships a byte-level tokenizer.json: transformers uses the file as saved.
    "llama3_declared_llama": (
        lambda p: fixtures.llama3_like(p, tokenizer_class="LlamaTokenizerFast"),
        "TokenizersBackend",
    ),
    # qwen2's registered class wins over a wrong hub class.
    "qwen2_declared_fast": (
        lambda p: fixtures.qwen2_like(p, tokenizer_class="PreTrainedTokenizerFast"),
        "Qwen2Tokenizer",
    ),
    "gpt_neox": (fixtures.gpt_neox_like, "GPTNeoXTokenizer"),
    # (b) SentencePiece-style BPE in tokenizer.json
    "tinyllama": (fixtures.llama2_like, "LlamaTokenizer"),
    "llama2_legacy": (lambda p: fixtures.llama2_like(p, legacy=True), "LlamaTokenizer"),
    "llama2_no_legacy_key": (lambda p: fixtures.llama2_like(p, legacy=fixtures.DROP), "LlamaTokenizer"),
    "llama2_no_prefix_space": (lambda p: fixtures.llama2_like(p, add_prefix_space=False), "LlamaTokenizer"),
    "mistral": (lambda p: fixtures.llama2_like(p, legacy=True, model_type="mistral"), "TokenizersBackend"),
    "phi3": (lambda p: fixtures.llama2_like(p, model_type="phi3"), "TokenizersBackend"),
    "no_config_json": (lambda p: fixtures.llama2_like(p, model_type=None), "LlamaTokenizer"),
    # (c) Gemma
    "gemma": (fixtures.gemma_like, "GemmaTokenizer"),
    # (d) tokenizer.model only
    "spm_llama": (fixtures.sentencepiece_only, "LlamaTokenizer"),
    "spm_llama_no_bos_flag": (lambda p: fixtures.sentencepiece_only(p, add_bos_token=fixtures.DROP), "LlamaTokenizer"),
    "spm_llama_legacy": (lambda p: fixtures.sentencepiece_only(p, legacy=True), "LlamaTokenizer"),
    "spm_gemma": (lambda p: fixtures.sentencepiece_only(p, tokenizer_class="GemmaTokenizer"), "GemmaTokenizer"),
    "spm_generic_bpe": (
        lambda p: fixtures.sentencepiece_only(p, tokenizer_class=None, model_type="llama"),
        "TokenizersBackend",
    ),
    "spm_generic_unigram": (
        lambda p: fixtures.sentencepiece_only(
            p, tokenizer_class=None, model_type="llama", spm_model_type="unigram", clean_up_tokenization_spaces=True
        ),
        "TokenizersBackend",
    ),
}
# Older layout (special_tokens_map.json, no added_tokens_decoder), derived from another variant.
DERIVED = {"tinyllama_special_tokens_map": "tinyllama", "smollm2_special_tokens_map": "smollm2"}

SPECIAL_TEXTS = [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] hello [/INST] hi</s>",
    "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|endoftext|><|endoftext|>",
    "x<|im_end|>y<s>z</s>",
    " <s> spaced </s> ",
    "<think>\nreasoning\n</think>\n\nanswer",
    "call <|python_tag|> then <|strip|> around",
    "<unk><pad><mask><eos>",
    "<0x41> literal byte token text",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<start_of_image><image_soft_token><image_soft_token>",
    "Hello , world . It 's n't they 're ' quoted ' !",
    "<|im_start|",
    "<repo_name>name<file_sep>",
]

HANDWRITTEN = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    "a",
    "Hello world",
    "Hello, world! How are you?",
    " leading space",
    "trailing space ",
    "   three leading and three trailing   ",
    "multiple    spaces     inside",
    "tabs\tbetween\twords\t\t",
    "line one\nline two\n\nline four\n",
    "\r\nwindows\r\nnewlines",
    "def add(a, b):\n    return a + b\n",
    "class A:\n\tdef f(self):\n\t\tpass\n",
    "if (x) {\n        y = [1, 2, 3];\n}\n",
    "    deeply\n        indented\n            code",
    "0",
    "12345678901234567890",
    "3.14159 2.71828 -1e-9 0x1F 1,000,000",
    "2024-05-17T12:30:00Z",
    "😀",
    "👍🏽👍🏿",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👩🏽‍💻 coder",
    "🇫🇷🇯🇵🇺🇸",
    "❤️ ✨ ☃ ♥",
    "日本語のテキスト",
    "中文文本，还有标点。",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "Café naïve résumé façade",
    "Ærøskøbing über Straße",
    "Ελληνικά и русский",
    "e\u0301 composed vs é precomposed",  # NFC-sensitive
    "\u00a0non-breaking\u00a0spaces\u2003em space",
    "zero\u200bwidth\u200djoiner",
    "▁ already has the SentencePiece space marker ▁▁",
    "I'm sure they've said we'll go, don't you?",
    "UPPER lower MiXeD",
    "email@example.com https://example.com/path?q=1&r=2",
    "!!!???...,,,;;;:::",
    "\x00\x01 control chars \x7f",
    "a" * 300,
    " ".join(["word"] * 100),
    "\u0000",
    "\ufeffBOM at start",
    "surrogate-free astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀",
]


def _random_strings(count: int, seed: int = 1234) -> list[str]:
    """Strings stitched from fragments of every kind, with random whitespace between them."""
    rng = random.Random(seed)
    fragments = (
        fixtures.corpus(40, seed=7)
        + HANDWRITTEN[5:]
        + SPECIAL_TEXTS
        + ["  ", "\n", "\t", " \n ", "\n\n\n", "   \t  "]
        + ["😀", "👨‍👩‍👧", "日本", "مرحبا", "ñ", "ß", "42", "007", "x", "?"]
    )
    strings = []
    for _ in range(count):
        pieces = [rng.choice(fragments) for _ in range(rng.randint(1, 5))]
        separators = [rng.choice(["", " ", "  ", "\n", "\t"]) for _ in pieces]
        text = "".join(s + p for s, p in zip(separators, pieces))
        if rng.random() < 0.3:
            start, end = sorted(rng.sample(range(len(text) + 1), 2)) if len(text) > 1 else (0, len(text))
            text = text[start:end]  # cut mid-word, mid-token, mid-emoji sequence
        strings.append(text)
    return strings


TEXTS = HANDWRITTEN + SPECIAL_TEXTS + _random_strings(260)


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    dirs = {name: build(root / name) for name, (build, _) in VARIANTS.items()}
    for name, source in DERIVED.items():
        dirs[name] = fixtures.with_special_tokens_map(root / name, dirs[source])
    return dirs


@pytest.fixture(scope="session")
def loaded(tokenizer_dirs: dict[str, Path]):
    """name -> (transformers' AutoTokenizer, slmcore Tokenizer), loaded once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            directory = tokenizer_dirs[name]
            cache[name] = (AutoTokenizer.from_pretrained(directory), Tokenizer.from_dir(directory))
        return cache[name]

    return get


ALL_VARIANTS = list(VARIANTS) + list(DERIVED)


def test_enough_texts():
    assert len(TEXTS) >= 300
    assert len(set(TEXTS)) > 250


@pytest.mark.parametrize("name", list(VARIANTS))
def test_transformers_picks_the_expected_class(name, loaded):
    hf, ours = loaded(name)
    assert type(hf).__name__ == VARIANTS[name][1]
    assert ours.tokenizer_class == VARIANTS[name][1]


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_encode_matches_transformers(name, loaded):
    hf, ours = loaded(name)
    mismatches = []
    for text in TEXTS:
        for add_special_tokens in (True, False):
            expected = hf.encode(text, add_special_tokens=add_special_tokens)
            got = ours.encode(text, add_special_tokens=add_special_tokens)
            if got != expected:
                mismatches.append((text, add_special_tokens, expected[:16], got[:16]))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_decode_matches_transformers(name, loaded):
    hf, ours = loaded(name)
    rng = random.Random(99)
    id_lists = [hf.encode(text) for text in TEXTS[::3]]
    id_lists += [[rng.randrange(len(hf)) for _ in range(rng.randint(0, 24))] for _ in range(150)]
    id_lists += [[len(hf) + 5, 0, len(hf)], []]  # ids past the vocabulary decode to nothing
    mismatches = []
    for ids in id_lists:
        for skip in (False, True):
            expected = hf.decode(ids, skip_special_tokens=skip)
            got = ours.decode(ids, skip_special_tokens=skip)
            if got != expected:
                mismatches.append((ids, skip, expected, got))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_round_trip_matches_transformers(name, loaded):
    hf, ours = loaded(name)
    for text in TEXTS[::2]:
        ids = ours.encode(text, add_special_tokens=False)
        assert ours.decode(ids) == hf.decode(ids)


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_special_tokens_match_transformers(name, loaded):
    hf, ours = loaded(name)
    assert ours.vocab_size == len(hf) == len(ours)
    assert ours.bos_token == hf.bos_token
    assert ours.eos_token == hf.eos_token
    assert ours.pad_token == hf.pad_token
    assert ours.bos_token_id == hf.bos_token_id
    assert ours.eos_token_id == hf.eos_token_id
    assert ours.all_special_ids == frozenset(i for i in hf.all_special_ids if i is not None)
    assert ours.special_tokens_map == hf.special_tokens_map


def test_bos_conventions(loaded):
    """The model families' conventions hold on these files: SmolLM2 adds no BOS, Llama 2 and Gemma do."""
    _, smollm2 = loaded("smollm2")
    assert smollm2.encode("hi")[0] != smollm2.bos_token_id
    assert smollm2.eos_token == "<|im_end|>"
    _, tinyllama = loaded("tinyllama")
    assert tinyllama.encode("hi")[0] == tinyllama.bos_token_id == tinyllama.token_to_id("<s>")
    assert tinyllama.encode("hi", add_special_tokens=False)[0] != tinyllama.bos_token_id
    _, gemma = loaded("gemma")
    assert gemma.encode("hi")[0] == gemma.bos_token_id == gemma.token_to_id("<bos>")
    assert gemma.encode("<start_of_turn>")[1] == gemma.token_to_id("<start_of_turn>")
    _, spm = loaded("spm_llama")
    assert spm.encode("hi")[0] == spm.bos_token_id


def test_byte_fallback_tokens_are_used(loaded):
    _, tinyllama = loaded("tinyllama")
    ids = tinyllama.encode("ᚠ", add_special_tokens=False)  # a rune the corpus never saw
    assert [tinyllama.id_to_token(i) for i in ids][-3:] == ["<0xE1>", "<0x9A>", "<0xA0>"]
    assert tinyllama.decode(ids) == "ᚠ"


def test_model_type_table_matches_transformers():
    from transformers.models.auto import tokenization_auto

    for model_type, class_name in MODEL_TYPE_TOKENIZER_CLASS.items():
        assert tokenization_auto.TOKENIZER_MAPPING_NAMES.get(model_type) == class_name, model_type
    for model_type in MODEL_TYPE_TOKENIZER_CLASS:
        expected = model_type in tokenization_auto.MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS
        assert (model_type in MODEL_TYPES_WITH_WRONG_HUB_CLASS) == expected, model_type
    for model_type in ("llama", "falcon", "bloom"):
        assert tokenization_auto.TOKENIZER_MAPPING_NAMES.get(model_type) is None
        assert model_type not in MODEL_TYPE_TOKENIZER_CLASS


def test_tokenizer_json_wins_over_tokenizer_model(tokenizer_dirs, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(tokenizer_dirs["tinyllama"], both)
    shutil.copy(tokenizer_dirs["spm_llama"] / "tokenizer.model", both / "tokenizer.model")
    from_json = Tokenizer.from_dir(tokenizer_dirs["tinyllama"])
    from_model = Tokenizer.from_dir(tokenizer_dirs["spm_llama"])
    ours = Tokenizer.from_dir(both)
    hf = AutoTokenizer.from_pretrained(both)
    differing = [t for t in TEXTS if from_json.encode(t) != from_model.encode(t)]
    assert len(differing) > 100  # the two files really tokenize differently
    for text in TEXTS:
        assert ours.encode(text) == from_json.encode(text) == hf.encode(text)
    assert ours.vocab_size == from_json.vocab_size != from_model.vocab_size


def test_has_tokenizer_files(tokenizer_dirs, tmp_path):
    assert has_tokenizer_files(tokenizer_dirs["smollm2"])
    assert has_tokenizer_files(tokenizer_dirs["spm_llama"])
    assert not has_tokenizer_files(tmp_path)
    assert not has_tokenizer_files(tmp_path / "missing")


def test_missing_files(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "LlamaTokenizer"}')
    with pytest.raises(TokenizerFileError, match="no tokenizer.json or tokenizer.model"):
        Tokenizer.from_dir(tmp_path)
    with pytest.raises(TokenizerFileError, match="not a directory"):
        Tokenizer.from_dir(tmp_path / "nope")
    with pytest.raises(TokenizerFileError, match="not a directory"):
        Tokenizer.from_dir(tmp_path / "config.json")


def _corrupt_copy(source: Path, destination: Path, filename: str, content: bytes) -> Path:
    shutil.copytree(source, destination)
    (destination / filename).write_bytes(content)
    return destination


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff\xfe garbage",
        b'{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c d"]',  # truncated
        b'{"model": 5}',
        b"[1, 2, 3]",
        b'{"version": "1.0", "model": {"type": "NoSuchModel"}}',
        b'{"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"], 7]}}',
    ],
)
@pytest.mark.parametrize("source", ["tinyllama", "llama3"])
def test_corrupt_tokenizer_json(tokenizer_dirs, tmp_path, source, content):
    broken = _corrupt_copy(tokenizer_dirs[source], tmp_path / "broken", "tokenizer.json", content)
    with pytest.raises(TokenizerFileError, match="tokenizer.json"):
        Tokenizer.from_dir(broken)


def test_corrupt_tokenizer_model(tokenizer_dirs, tmp_path):
    data = (tokenizer_dirs["spm_llama"] / "tokenizer.model").read_bytes()
    for index, content in enumerate([b"not a protobuf at all \xff\xff", data[: len(data) // 3], b""]):
        broken = _corrupt_copy(tokenizer_dirs["spm_llama"], tmp_path / f"broken{index}", "tokenizer.model", content)
        with pytest.raises(TokenizerFileError, match="tokenizer.model"):
            Tokenizer.from_dir(broken)


def test_corrupt_tokenizer_config(tokenizer_dirs, tmp_path):
    broken = _corrupt_copy(tokenizer_dirs["smollm2"], tmp_path / "broken", "tokenizer_config.json", b"{not json")
    with pytest.raises(TokenizerFileError, match="tokenizer_config.json"):
        Tokenizer.from_dir(broken)
    config = json.loads((tokenizer_dirs["smollm2"] / "tokenizer_config.json").read_text())
    config["bos_token"] = 42
    content = json.dumps(config).encode()
    bad_token = _corrupt_copy(tokenizer_dirs["smollm2"], tmp_path / "bad_token", "tokenizer_config.json", content)
    with pytest.raises(TokenizerFileError, match="bos_token"):
        Tokenizer.from_dir(bad_token)


def test_bad_arguments(loaded):
    _, ours = loaded("smollm2")
    with pytest.raises(InvalidArgumentError):
        ours.encode(b"bytes")
    with pytest.raises(InvalidArgumentError):
        ours.encode(None)
    with pytest.raises(InvalidArgumentError):
        ours.decode("abc")
    with pytest.raises(InvalidArgumentError):
        ours.decode([1, 2.5])
    with pytest.raises(InvalidTokenError):
        ours.decode([-1])
    with pytest.raises(InvalidTokenError):
        ours.decode([2**40])
    import numpy as np

    ids = ours.encode("numpy ids")
    assert ours.decode(np.array(ids, dtype=np.int64)) == ours.decode(ids) == "numpy ids"
