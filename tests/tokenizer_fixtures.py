"""Tokenizer directories built by the tests themselves (no downloads, no committed binaries).

Each builder trains a small tokenizer on CORPUS with the `tokenizers` (or `sentencepiece`)
library, shaped like a real model family's files, and saves it with transformers. The builders
return the directory; tests compare slmcore.tokenizer against transformers' AutoTokenizer on it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# Llama 3's split regex (GPT-4 style: numbers in groups of up to three).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2's split regex (single digits).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

DROP = object()  # a config override that removes the key

_WORDS = (
    "the quick brown fox jumps over lazy dog hello world tokenizer model language small fast "
    "inference engine python token merge byte level sentence piece chat template assistant user "
    "system message content role answer question what where when why how is are was were be been "
    "don't can't it's we're they've I'm you'll she'd"
).split()
_CODE = [
    "def forward(self, x):\n    return self.proj(x) + 1\n",
    "for i in range(10):\n\tprint(i, i * 2)\n",
    "if (a && b) { return c[0]; } else { x->y = 0x1F; }\n",
    "    indented_line = {'key': [1, 2, 3]}  # comment\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }\n",
]
_OTHER = [
    "Café naïve résumé façade Ærøskøbing über straße",
    "日本語のテキストと中文文本，还有한국어 문장。",
    "مرحبا بالعالم، هذه جملة عربية.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
    "Numbers 3.14159 1,000,000 2024-05-17 12:30 -42 +7e10",
    "Ελληνικά κείμενα και русский текст здесь.",
    "   leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\nand   runs     of spaces",
]


def corpus(n_lines: int = 600, seed: int = 0) -> list[str]:
    """A deterministic mixed corpus: English-ish words, code, numbers, emoji, CJK, Arabic, accents."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        kind = i % 4
        if kind == 0:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
            lines.append(words + rng.choice([".", "?", "!", ""]))
        elif kind == 1:
            lines.append(rng.choice(_CODE))
        elif kind == 2:
            lines.append(rng.choice(_OTHER))
        else:
            lines.append(f"{rng.randint(0, 99999)} {rng.choice(_WORDS).capitalize()} {rng.random():.4f}")
    return lines


def _byte_level_bpe(pre_tokenizer, normalizer=None, special_tokens=(), vocab_size: int = 700) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return tokenizer


def _save(tokenizer: Tokenizer, path: Path, config_overrides: dict, model_type: str | None, **special) -> Path:
    """Save through transformers, then rewrite tokenizer_config.json fields as a hub repository has them."""
    from transformers import PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    hf.save_pretrained(path)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key, value in config_overrides.items():
        if value is DROP:
            config.pop(key, None)
        else:
            config[key] = value
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    if model_type is not None:
        (path / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    return path


def smollm2_like(path: Path, **extra_config) -> Path:
    """Byte-level BPE as SmolLM2 ships it: Digits + ByteLevel, GPT2Tokenizer class, ChatML tokens, no BOS added."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"]
    tokenizer = _byte_level_bpe(
        pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        ),
        special_tokens=specials,
    )
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return _save(
        tokenizer,
        path,
        {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "model_max_length": 8192, **extra_config},
        "llama",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        additional_special_tokens=specials,
    )


def llama3_like(path: Path, **extra_config) -> Path:
    """Byte-level BPE as Llama 3 ships it: split regex + ByteLevel(use_regex=False), BOS by TemplateProcessing."""
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tokenizer = _byte_level_bpe(
        pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        ),
        special_tokens=specials,
    )
    bos_id = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    # A non-special added token and one with lstrip/rstrip, both matched in raw text.
    tokenizer.add_tokens([AddedToken("<|python_tag|>", special=False, normalized=False)])
    tokenizer.add_tokens([AddedToken("<|strip|>", special=False, lstrip=True, rstrip=True, normalized=False)])
    return _save(
        tokenizer,
        path,
        {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": True, **extra_config},
        "llama",
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
    )


def qwen2_like(path: Path, **extra_config) -> Path:
    """Byte-level BPE as Qwen2.5 ships it: NFC, split regex, ByteLevel, Qwen2Tokenizer class, no BOS token."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = _byte_level_bpe(
        pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        ),
        normalizer=normalizers.NFC(),
        special_tokens=specials,
    )
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    tokenizer.add_tokens([AddedToken("</think>", special=False, normalized=False)])
    tokenizer.add_tokens([AddedToken("<tool_call>", special=False, normalized=True)])
    # Qwen2Tokenizer re-adds its special tokens as plain special tokens, dropping these flags.
    tokenizer.add_special_tokens([AddedToken("<|im_end|>", special=True, lstrip=True, rstrip=True, normalized=False)])
    return _save(
        tokenizer,
        path,
        {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "errors": "replace", **extra_config},
        "qwen2",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )


def gpt_neox_like(path: Path) -> Path:
    """Byte-level BPE with GPTNeoXTokenizer (Pythia, RWKV): its class re-derives the post-processor (no BOS)."""
    tokenizer = _byte_level_bpe(
        pre_tokenizers.ByteLevel(add_prefix_space=False), special_tokens=["<|endoftext|>", "<|padding|>"]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A $B", special_tokens=[("<|endoftext|>", 0)]
    )
    return _save(
        tokenizer,
        path,
        {"tokenizer_class": "GPTNeoXTokenizer", "add_bos_token": True},
        "gpt_neox",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|padding|>",
    )


def _metaspace_bpe_vocab(first_tokens: list[str], vocab_size: int, pieces_pre_tokenizer) -> tuple[dict, list]:
    """Train a BPE on '▁'-escaped text; return (vocab, merges) with first_tokens and the 256 <0xNN> tokens first."""
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pieces_pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False)
    trained.train_from_iterator(corpus(), trainer=trainer)
    trained_json = json.loads(trained.to_str())
    vocab: dict[str, int] = {}
    for token in first_tokens + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[token] = len(vocab)
    for token, _ in sorted(trained_json["model"]["vocab"].items(), key=lambda item: item[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained_json["model"]["merges"]]
    return vocab, merges


def llama2_like(path: Path, legacy=False, model_type: str | None = "llama", add_prefix_space=DROP) -> Path:
    """SentencePiece-style BPE as TinyLlama/Llama 2/Mistral ship it: ▁ prepend, byte fallback, BOS added."""
    vocab, merges = _metaspace_bpe_vocab(
        ["<unk>", "<s>", "</s>"], 800, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    )
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.pre_tokenizer = None
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]]
    )
    overrides = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": legacy,
        "add_prefix_space": add_prefix_space,
        "clean_up_tokenization_spaces": False,
    }
    return _save(tokenizer, path, overrides, model_type, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def gemma_like(path: Path) -> Path:
    """Gemma-style BPE: spaces replaced by ▁ (no prefix), byte fallback, BOS added, turn markers as added tokens."""
    first = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    vocab, merges = _metaspace_bpe_vocab(
        first, 800, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    )
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", 2)]
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in first[:5]])
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in first[5:]])
    # Gemma's vocabulary carries whitespace-run tokens as added (non-special) tokens.
    tokenizer.add_tokens([AddedToken("\n\n", special=False, normalized=False), AddedToken("▁▁", special=False)])
    # Gemma 3 names its image tokens in tokenizer_config.json (boi_token, image_token, ...).
    image_tokens = ("<start_of_image>", "<image_soft_token>")
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in image_tokens])
    return _save(
        tokenizer,
        path,
        {
            "tokenizer_class": "GemmaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "boi_token": "<start_of_image>",
            "image_token": "<image_soft_token>",
        },
        "gemma3_text",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )


def _spm_sentences() -> Iterator[str]:
    yield from corpus()


def sentencepiece_model(path: Path, model_type: str = "bpe", vocab_size: int = 500) -> Path:
    """Train a Llama-style SentencePiece model (byte fallback, split digits, no normalization) as tokenizer.model."""
    import io

    import sentencepiece as spm

    path.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_spm_sentences(),
        model_writer=buffer,
        model_type=model_type,
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    (path / "tokenizer.model").write_bytes(buffer.getvalue())
    return path


def sentencepiece_only(
    path: Path,
    tokenizer_class: str | None = "LlamaTokenizer",
    add_bos_token=True,
    legacy=DROP,
    model_type: str | None = None,
    spm_model_type: str = "bpe",
    clean_up_tokenization_spaces: bool = False,
) -> Path:
    """A directory with tokenizer.model + tokenizer_config.json only (no tokenizer.json), Llama style by default."""
    sentencepiece_model(path, model_type=spm_model_type)
    config = {
        "tokenizer_class": tokenizer_class,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": add_bos_token,
        "legacy": legacy,
        "clean_up_tokenization_spaces": clean_up_tokenization_spaces,
    }
    if tokenizer_class is None:
        del config["tokenizer_class"]
    config = {key: value for key, value in config.items() if value is not DROP}
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if model_type is not None:
        (path / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    return path


def with_special_tokens_map(path: Path, source: Path) -> Path:
    """Copy source's files in the older layout: special_tokens_map.json and no added_tokens_decoder."""
    import shutil

    shutil.copytree(source, path)
    config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("added_tokens_decoder", None)
    special = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if isinstance(config.get(key), str):
            flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
            special[key] = {"content": config.pop(key), **flags}
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (path / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return path
