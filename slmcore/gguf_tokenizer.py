"""Tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json)
rebuilt from a GGUF file's `tokenizer.*` metadata.

The reference is transformers 5.24 loading the same file (`AutoTokenizer.from_pretrained(dir,
gguf_file=name)`): the tokenizer.json written here gives the same pipeline, vocabulary, merges
and added tokens, so `AutoTokenizer.from_pretrained(out_dir)` and the `tokenizers` library alone
both tokenize exactly as that reference does. One exception: qwen2 files also NFC-normalize (see
tokenizer_files). llama.cpp's conventions (its tokenizer code and convert_hf_to_gguf.py) decide
what the metadata means:

- `tokenizer.ggml.model == "gpt2"`: byte-level BPE. Tokens are spelled in GPT-2's byte alphabet
  (each byte as a printable character); `tokenizer.ggml.merges` are "left right" strings;
  `tokenizer.ggml.pre` names the regex that splits text before BPE.
- `tokenizer.ggml.model == "llama"`: a SentencePiece vocabulary with scores, written as BPE with
  byte fallback whose merges are recovered from the vocabulary: every way of cutting a token into
  two tokens is a merge, ranked by the token's score. Gemma files are ranked by file order instead
  (their scores do not follow the merge order), and store whitespace-only pieces with literal
  spaces where SentencePiece writes U+2581 ("▁"); those are respelled.
- `tokenizer.ggml.token_type` uses SentencePiece's piece types: 1 normal, 2 unknown, 3 control,
  4 user-defined, 5 unused, 6 byte. Control tokens become special added tokens (matched whole,
  skipped when decoding with skip_special_tokens); user-defined ones plain added tokens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from slmcore.errors import TokenizerFileError

logger = logging.getLogger("slmcore")

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

SENTENCEPIECE_SPACE = "\u2581"  # "▁"

# Architectures whose SentencePiece vocabulary follows Gemma's conventions (see the module docstring).
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")

# Split regexes for `tokenizer.ggml.pre`, as llama.cpp's llama-vocab.cpp applies them (and
# transformers' GGUF loader repeats). Names not listed get GPT-2's regex, which ByteLevel applies
# by itself: "default", "gpt2", "smollm" and the other GPT-2-style vocabularies. (llama.cpp, and
# SmolLM2's own tokenizer.json, split every digit off first for "smollm"; transformers' GGUF
# loader does not, and it is the reference here: they differ on digits after a space and on
# numerals such as "½".)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZER_SPLITS: dict[str, str] = {
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3", "pixtral", "dbrx"), _LLAMA3_SPLIT),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez"), _QWEN2_SPLIT),
    **dict.fromkeys(("gpt-4o", "llama4"), _GPT4O_SPLIT),
    "tekken": _TEKKEN_SPLIT,
}
GPT2_STYLE_PRE = ("default", "gpt2", "gpt-2", "smollm")

# Longest token for which merges are derived from the vocabulary (SentencePiece pieces are at most
# 16 characters by default; Gemma 3's longest is 31).
MAX_DERIVED_TOKEN_CHARS = 256

TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # loads tokenizer.json as it is, in transformers 4 and 5


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map: printable Latin-1 bytes stand for themselves, the
    other 68 bytes take the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in alphabet:
            alphabet[b] = chr(256 + extra)
            extra += 1
    return alphabet


def tokenizer_files(metadata: dict[str, Any], architecture: str, source: str) -> dict[str, bytes]:
    """The tokenizer files the GGUF metadata describes, {file name: content}; {} if it describes none.

    Everything is built and checked here, before anything is written; a malformed vocabulary
    raises TokenizerFileError.
    """
    tokenizer_model = metadata.get("tokenizer.ggml.model")
    if tokenizer_model is None:
        logger.warning("%s: no tokenizer in the file (tokenizer.ggml.model is absent); none written", source)
        return {}
    if tokenizer_model not in ("gpt2", "llama"):
        logger.warning(
            "%s: tokenizer.ggml.model %r is not supported (supported: gpt2, llama); no tokenizer written",
            source, tokenizer_model,
        )  # fmt: skip
        return {}
    vocab = _Vocabulary.from_metadata(metadata, source)
    files: dict[str, bytes] = {}
    try:
        if tokenizer_model == "gpt2":
            tokenizer = _byte_level_bpe(vocab, metadata.get("tokenizer.ggml.pre"), source)
            add_bos_default = False
            if architecture == "qwen2":
                # transformers loads a qwen2 directory's tokenizer.json with its Qwen2Tokenizer pipeline,
                # which NFC-normalizes (as Qwen2's own tokenizer.json does); say so in the file too, so
                # that every reader of the directory tokenizes alike. transformers' GGUF loader does not
                # normalize: it differs from this on text that is not in NFC form.
                tokenizer.normalizer = normalizers.NFC()
        else:
            tokenizer = _sentencepiece_bpe(vocab, architecture in GEMMA_ARCHITECTURES, source)
            add_bos_default = True  # llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise
            files["tokenizer.model"] = _sentencepiece_model(vocab, metadata, source)
        special = _special_tokens(vocab, metadata, architecture)
        add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", add_bos_default)) and "bos_token" in special
        add_eos = bool(metadata.get("tokenizer.ggml.add_eos_token", False)) and "eos_token" in special
        _add_tokens(tokenizer, vocab, special, byte_level=tokenizer_model == "gpt2")
        tokenizer.post_processor = _post_processor(tokenizer, special, add_bos, add_eos)
        files["tokenizer.json"] = tokenizer.to_str(pretty=True).encode("utf-8")
    except TokenizerFileError:
        raise
    except Exception as e:  # the tokenizers library raises plain Exceptions for inconsistent vocabularies
        raise TokenizerFileError(f"{source}: cannot build a tokenizer from the file's vocabulary: {e}") from e

    config: dict[str, Any] = {
        "tokenizer_class": TOKENIZER_CLASS,
        **special,
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": False,
    }
    if isinstance(metadata.get("tokenizer.chat_template"), str):
        config["chat_template"] = metadata["tokenizer.chat_template"]
    files["tokenizer_config.json"] = _json_bytes(config)
    files["special_tokens_map.json"] = _json_bytes(special)
    return files


def write_tokenizer_files(metadata: dict[str, Any], architecture: str, out_dir: Path, source: str) -> bool:
    """Write the tokenizer files the GGUF metadata describes into out_dir; False if it describes none."""
    files = tokenizer_files(metadata, architecture, source)
    for name, content in files.items():
        (out_dir / name).write_bytes(content)
    return bool(files)


class _Vocabulary:
    """tokenizer.ggml.tokens / scores / token_type, checked for consistent lengths and types."""

    def __init__(
        self, tokens: list[str], scores: list[float] | None, types: list[int] | None, merges: list[str] | None
    ) -> None:
        self.tokens = tokens
        self.scores = scores
        self.types = types if types is not None else [NORMAL] * len(tokens)
        self.merges = merges

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], source: str) -> "_Vocabulary":
        def array(key: str, kind: type | tuple[type, ...], required: bool = False) -> list | None:
            value = metadata.get(key)
            if value is None:
                if required:
                    raise TokenizerFileError(f"{source}: the file has no {key}; cannot build its tokenizer")
                return None
            if isinstance(value, np.ndarray) and value.dtype != bool:
                value = value.tolist()  # numbers arrive as a numpy array
            if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
                raise TokenizerFileError(f"{source}: {key} must be an array of {getattr(kind, '__name__', kind)}")
            return value

        tokens = array("tokenizer.ggml.tokens", str, required=True)
        scores = array("tokenizer.ggml.scores", (int, float))
        types = array("tokenizer.ggml.token_type", int)
        merges = array("tokenizer.ggml.merges", str)
        for key, values in (("tokenizer.ggml.scores", scores), ("tokenizer.ggml.token_type", types)):
            if values is not None and len(values) != len(tokens):
                raise TokenizerFileError(
                    f"{source}: {key} has {len(values)} entries but tokenizer.ggml.tokens has {len(tokens)}"
                )
        return cls(tokens, scores, types, merges)

    def token(self, metadata: dict[str, Any], key: str) -> str | None:
        """The token named by an id key such as tokenizer.ggml.bos_token_id, or None if absent or out of range."""
        token_id = metadata.get(key)
        if isinstance(token_id, int) and not isinstance(token_id, bool) and 0 <= token_id < len(self.tokens):
            return self.tokens[token_id]
        return None


# --- the two vocabulary kinds -----------------------------------------------------------------------


def _byte_level_bpe(vocab: _Vocabulary, pre: str | None, source: str) -> Tokenizer:
    alphabet = byte_alphabet()
    letters = set(alphabet.values())
    # A token written in plain UTF-8 instead of the byte alphabet is respelled byte by byte.
    spelled = [t if set(t) <= letters else "".join(alphabet[b] for b in t.encode("utf-8")) for t in vocab.tokens]
    ids = {token: index for index, token in enumerate(spelled)}
    if vocab.merges is not None:
        merges = [_split_merge(m, source) for m in vocab.merges]
    else:
        merges = _merges_from_vocabulary(spelled, ids, _ranking_scores(vocab, source), source)
    tokenizer = Tokenizer(
        models.BPE(
            vocab=ids, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
            fuse_unk=False,
        )
    )  # fmt: skip
    split = PRE_TOKENIZER_SPLITS.get(pre or "default")
    if split is None:
        if pre not in GPT2_STYLE_PRE and pre is not None:
            logger.warning("%s: pre-tokenizer %r is not known; splitting text with GPT-2's regex", source, pre)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _sentencepiece_bpe(vocab: _Vocabulary, gemma: bool, source: str) -> Tokenizer:
    if gemma:
        tokens = [_respell_whitespace(t) for t in vocab.tokens]
        scores = [-float(index) for index in range(len(tokens))]  # file order is merge order
    else:
        tokens = vocab.tokens
        scores = _ranking_scores(vocab, source)
    ids = {token: index for index, token in enumerate(tokens)}
    merges = _merges_from_vocabulary(tokens, ids, scores, source)
    if gemma:
        tokenizer = Tokenizer(
            models.BPE(vocab=ids, merges=merges, fuse_unk=True, unk_token="<unk>", dropout=None, byte_fallback=True)
        )
        tokenizer.normalizer = normalizers.Replace(" ", SENTENCEPIECE_SPACE)
        tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
        tokenizer.decoder = decoders.Sequence(
            [decoders.Replace(SENTENCEPIECE_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        )
    else:
        tokenizer = Tokenizer(models.BPE(vocab=ids, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=SENTENCEPIECE_SPACE, prepend_scheme="first", split=False
        )
        tokenizer.decoder = decoders.Sequence(
            [
                decoders.Replace(SENTENCEPIECE_SPACE, " "),
                decoders.ByteFallback(),
                decoders.Fuse(),
                decoders.Strip(content=" ", left=1, right=0),
            ]
        )
    return tokenizer


def _respell_whitespace(token: str) -> str:
    """Gemma's GGUF writes the pieces made of spaces ("  ") with literal spaces; SentencePiece with "▁"."""
    return SENTENCEPIECE_SPACE * len(token) if " " in token and not token.strip() else token


def _ranking_scores(vocab: _Vocabulary, source: str) -> list[float]:
    if vocab.scores is None:
        raise TokenizerFileError(
            f"{source}: the file has neither tokenizer.ggml.merges nor tokenizer.ggml.scores; cannot rank BPE merges"
        )
    return [float(s) for s in vocab.scores]


def _split_merge(merge: str, source: str) -> tuple[str, str]:
    parts = merge.split(" ")
    if len(parts) != 2 or not all(parts):
        raise TokenizerFileError(
            f"{source}: tokenizer.ggml.merges entry {merge!r} is not two tokens separated by a space"
        )
    return parts[0], parts[1]


def _merges_from_vocabulary(
    tokens: list[str], ids: dict[str, int], scores: list[float], source: str
) -> list[tuple[str, str]]:
    """Every cut of a token into two vocabulary tokens, best-ranked token first.

    Ranking: the token's score, higher first; for equal scores the longer left piece, then the
    longer right piece, first; remaining ties keep vocabulary order. A token that appears twice
    counts once, with its last score (the order transformers' generate_merges produces).
    Trying every cut costs the square of a token's length, so absurdly long tokens are refused.
    """
    score_of: dict[str, float] = {}
    for index, (token, score) in enumerate(zip(tokens, scores)):
        if len(token) > MAX_DERIVED_TOKEN_CHARS:
            raise TokenizerFileError(
                f"{source}: token {index} is {len(token)} characters long; merges are derived only for "
                f"vocabularies whose tokens have at most {MAX_DERIVED_TOKEN_CHARS}"
            )
        score_of[token] = score
    candidates: list[tuple[str, str, float]] = []
    for token, score in score_of.items():
        cuts = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ids and token[i:] in ids]
        cuts.sort(key=lambda cut: (ids[cut[0]], ids[cut[1]]))
        candidates.extend((left, right, score) for left, right in cuts)
    candidates.sort(key=lambda c: (c[2], len(c[0]), len(c[1])), reverse=True)  # stable: ties keep their order
    return [(left, right) for left, right, _ in candidates]


# --- added tokens, special tokens, post-processing ----------------------------------------------------


def _special_tokens(vocab: _Vocabulary, metadata: dict[str, Any], architecture: str) -> dict[str, str]:
    """bos/eos/unk/pad token strings named by the file's ids (absent ones left out)."""
    special = {}
    for name, key in (("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding")):
        token = vocab.token(metadata, f"tokenizer.ggml.{key}_token_id")
        if token is not None:
            special[name] = token
    if architecture in GEMMA_ARCHITECTURES and "<mask>" in vocab.tokens:
        special["mask_token"] = "<mask>"  # Gemma's tokenizer names it; transformers' GemmaTokenizer does too
    return special


def _add_tokens(tokenizer: Tokenizer, vocab: _Vocabulary, special: dict[str, str], byte_level: bool) -> None:
    """Control tokens as special added tokens, user-defined ones as plain added tokens, then the
    named special tokens (bos/eos/unk/pad) as special, in the order transformers adds them."""
    letters = set(byte_alphabet().values()) if byte_level else None
    control = [
        AddedToken(token, normalized=False, special=True)
        for token, token_type in zip(vocab.tokens, vocab.types)
        # In a byte-level vocabulary every real token is spelled in the byte alphabet; a "control"
        # token spelled otherwise is a mislabelled piece, not a special token.
        if token_type == CONTROL and (letters is None or set(token) <= letters)
    ]
    tokenizer.add_special_tokens(control)
    known = tokenizer.get_vocab(with_added_tokens=True)
    user_defined = [
        AddedToken(token, normalized=False, special=False)
        for token, token_type in zip(vocab.tokens, vocab.types)
        if token_type == USER_DEFINED and token in known  # a respelled piece is matched by the model instead
    ]
    tokenizer.add_tokens(user_defined)
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in special.values()])


def _post_processor(tokenizer: Tokenizer, special: dict[str, str], add_bos: bool, add_eos: bool) -> Any:
    """BOS before and EOS after each sequence where the file asks for them (transformers' template)."""
    bos, eos = special.get("bos_token"), special.get("eos_token")
    single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
    pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
    tokens = [(t, tokenizer.token_to_id(t)) for t, wanted in ((bos, add_bos), (eos, add_eos)) if wanted]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=tokens)


# --- tokenizer.model --------------------------------------------------------------------------------


def _sentencepiece_model(vocab: _Vocabulary, metadata: dict[str, Any], source: str) -> bytes:
    """A SentencePiece model proto with the file's pieces, scores and types (spaces spelled "▁")."""
    from sentencepiece import sentencepiece_model_pb2 as spm  # protobuf: imported only when needed

    model = spm.ModelProto()
    unk_id = metadata.get("tokenizer.ggml.unknown_token_id")
    valid_types = {NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE}
    scores = vocab.scores if vocab.scores is not None else [0.0] * len(vocab.tokens)
    for index, (token, score, token_type) in enumerate(zip(vocab.tokens, scores, vocab.types)):
        piece = model.pieces.add()
        piece.piece = token.replace(" ", SENTENCEPIECE_SPACE)
        piece.score = float(score)
        if index == unk_id:
            token_type = UNKNOWN  # SentencePiece needs exactly one; some files mark it control
        elif token_type == UNKNOWN or token_type not in valid_types:
            token_type = NORMAL
        piece.type = token_type
    trainer = model.trainer_spec
    trainer.model_type = spm.TrainerSpec.BPE
    trainer.vocab_size = len(vocab.tokens)
    trainer.byte_fallback = BYTE in vocab.types
    for field_name, key in (("unk_id", "unknown"), ("bos_id", "bos"), ("eos_id", "eos"), ("pad_id", "padding")):
        token_id = metadata.get(f"tokenizer.ggml.{key}_token_id")
        valid = isinstance(token_id, int) and 0 <= token_id < len(vocab.tokens)
        setattr(trainer, field_name, token_id if valid else -1)
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    try:
        return model.SerializeToString()
    except Exception as e:  # protobuf raises its own EncodeError for invalid strings
        raise TokenizerFileError(f"{source}: cannot build tokenizer.model: {e}") from e


def _json_bytes(content: Any) -> bytes:
    return (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

