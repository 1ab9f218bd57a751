"""Tokenizers that encode and decode exactly as transformers 5's AutoTokenizer does on the same files.

tokenizer.json is used whenever the model has one (through the `tokenizers` library); tokenizer.model
(SentencePiece) only when there is none. Identity with transformers needs more than loading
tokenizer.json: AutoTokenizer picks a tokenizer class from tokenizer_config.json and config.json,
and several classes (Llama, Gemma, GPT-2, Qwen2, GPT-NeoX) rebuild the normalizer, pre-tokenizer and
decoder themselves, keeping only the vocabulary, merges and post-processor of the file. The
special tokens, added tokens, BOS/EOS post-processor and decode clean-up follow
tokenization_utils_base.py / tokenization_utils_tokenizers.py. This module reproduces those steps
with the `tokenizers` library; it never imports transformers and never unpickles anything.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from tokenizers.models import BPE, Unigram

from slmcore.chat import render_chat_template
from slmcore.errors import ChatTemplateError, InvalidArgumentError, InvalidTokenError, TokenizerFileError

logger = logging.getLogger("slmcore")

TOKENIZER_JSON = "tokenizer.json"
SENTENCEPIECE_MODEL = "tokenizer.model"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
ADDED_TOKENS = "added_tokens.json"
CHAT_TEMPLATE_JINJA = "chat_template.jinja"
CHAT_TEMPLATE_JSON = "chat_template.json"  # processors' file; used only when nothing else has a template
CHAT_TEMPLATE_DIR = "additional_chat_templates"

# transformers' named special tokens, in its order (the order decides ids of tokens it has to add).
NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# Classes that use tokenizer.json as saved.
_AS_SAVED_CLASSES = {
    "TokenizersBackend",
    "PreTrainedTokenizerFast",
    "PreTrainedTokenizer",
    "PythonBackend",
    "BloomTokenizer",
}
# Classes whose __init__ rebuilds the pipeline around the file's vocabulary (see _REBUILDERS).
_REBUILT_CLASSES = {"LlamaTokenizer", "GemmaTokenizer", "GPT2Tokenizer", "Qwen2Tokenizer", "GPTNeoXTokenizer"}

# transformers' TOKENIZER_MAPPING_NAMES for the model types slmcore runs (without mistral-common installed).
# tests/test_tokenizer.py checks this table against transformers.
MODEL_TYPE_TOKENIZER_CLASS = {
    "mistral": "TokenizersBackend",
    "mixtral": "TokenizersBackend",
    "ministral": "TokenizersBackend",
    "gemma": "GemmaTokenizer",
    "gemma2": "GemmaTokenizer",
    "gemma3": "GemmaTokenizer",
    "gemma3_text": "GemmaTokenizer",
    "phi": "GPT2Tokenizer",
    "phi3": "TokenizersBackend",
    "phimoe": "TokenizersBackend",
    "gpt2": "GPT2Tokenizer",
    "rwkv": "GPTNeoXTokenizer",
    "gpt_neox": "GPTNeoXTokenizer",
    "qwen2": "Qwen2Tokenizer",
    "qwen2_moe": "Qwen2Tokenizer",
    "qwen3": "Qwen2Tokenizer",
    "qwen3_moe": "Qwen2Tokenizer",
    "starcoder2": "GPT2Tokenizer",
    "olmo": "GPTNeoXTokenizer",
    "olmo2": "TokenizersBackend",
    "granite": "TokenizersBackend",
    "stablelm": "TokenizersBackend",
    "gptj": "GPT2Tokenizer",
    "codegen": "GPT2Tokenizer",
}
# transformers' MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS restricted to the table above: for these the
# registered class wins over the tokenizer_class written in tokenizer_config.json.
MODEL_TYPES_WITH_WRONG_HUB_CLASS = {"phi3", "phimoe", "qwen2"}

# Qwen2Tokenizer's split regex (models/qwen2/tokenization_qwen2.py).
_QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# SentencePiece piece types (sentencepiece_model.proto).
_SPM_CONTROL, _SPM_USER_DEFINED = 3, 4
_SPM_UNIGRAM = 1


def has_tokenizer_files(model_dir: str | os.PathLike) -> bool:
    """True if model_dir has a tokenizer.json or a tokenizer.model."""
    directory = Path(model_dir)
    return (directory / TOKENIZER_JSON).is_file() or (directory / SENTENCEPIECE_MODEL).is_file()


# --- reading files ---------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise TokenizerFileError(
            f"{path} cannot be read as JSON ({error}); restore it from the model's original files"
        ) from None


def _read_json_object(path: Path) -> dict:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{path} must hold a JSON object; restore it from the model's original files")
    return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenizerFileError(
            f"{path} cannot be read ({error}); restore it from the model's original files"
        ) from None


def _as_added_token(value: Any, where: str, **overrides: Any) -> AddedToken:
    """An AddedToken from tokenizer_config's serialised form ({"content": ..., "lstrip": ..., ...})."""
    if isinstance(value, AddedToken):
        return value
    known = ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
    fields = {k: v for k, v in value.items() if k in known}
    fields.update(overrides)
    if not isinstance(fields.get("content"), str):
        raise TokenizerFileError(f"{where} has a token without a string 'content': {value!r}")
    try:
        return AddedToken(**fields)
    except (TypeError, ValueError) as error:
        raise TokenizerFileError(f"{where} has an invalid token {value!r}: {error}") from None


def _token_value(value: Any, where: str, named: bool = True) -> Any:
    """A special-token setting: a str, None, or a serialised AddedToken.

    transformers converts dicts marked "__type": "AddedToken"; for the named special tokens (bos_token, ...)
    a plain {"content": ...} dict is accepted too (transformers would fail on it).
    """
    if isinstance(value, dict) and (value.get("__type") == "AddedToken" or (named and "content" in value)):
        return _as_added_token(value, where)
    if not named or value is None or isinstance(value, (str, AddedToken)):
        return value
    raise TokenizerFileError(f"{where} must be a string or a token dict with 'content', got {value!r}")


# --- which tokenizer class transformers would use -----------------------------------------------------------


def _strip_fast(name: str) -> str:
    return name[: -len("Fast")] if name.endswith("Fast") else name


def _resolve_class(directory: Path, tokenizer_config: dict, model_config: dict) -> str:
    """The tokenizer class AutoTokenizer.from_pretrained picks (models/auto/tokenization_auto.py)."""
    model_type = model_config.get("model_type") if isinstance(model_config.get("model_type"), str) else None
    config_class = tokenizer_config.get("tokenizer_class")
    config_class = config_class if isinstance(config_class, str) else None
    model_config_class = model_config.get("tokenizer_class")
    model_config_class = model_config_class if isinstance(model_config_class, str) else None
    hub_class = config_class or model_config_class
    registered = MODEL_TYPE_TOKENIZER_CLASS.get(model_type) if model_type else None

    # Repos that declare LlamaTokenizer but ship a byte-level tokenizer.json (Llama 3 style).
    if (
        hub_class is not None
        and _strip_fast(hub_class) == "LlamaTokenizer"
        and model_type not in MODEL_TYPES_WITH_WRONG_HUB_CLASS
        and (directory / TOKENIZER_JSON).is_file()
        and '"ByteLevel"' in _read_text(directory / TOKENIZER_JSON)
    ):
        return "TokenizersBackend"

    if hub_class is not None and registered is not None and _strip_fast(registered) != _strip_fast(hub_class):
        if registered not in _AS_SAVED_CLASSES:
            chosen = registered if model_type in MODEL_TYPES_WITH_WRONG_HUB_CLASS else _strip_fast(hub_class)
            if chosen not in _AS_SAVED_CLASSES:
                return chosen
        return "TokenizersBackend"

    if config_class is not None:
        return _strip_fast(config_class)
    if model_config_class is not None:
        return _strip_fast(model_config_class)
    return registered or "TokenizersBackend"


# --- keyword arguments, as transformers' _from_pretrained assembles them ---------------------------------


def _init_kwargs(directory: Path, tokenizer_config: dict, tokenizer_json: dict | None) -> dict:
    kwargs = {k: v for k, v in tokenizer_config.items() if k not in ("tokenizer_class", "init_inputs", "chat_template")}
    if tokenizer_json is not None:
        # With a tokenizer.json its post-processor decides BOS/EOS; tokenizer_config's flags are dropped.
        kwargs.pop("add_bos_token", None)
        kwargs.pop("add_eos_token", None)
    if "additional_special_tokens" in kwargs and not kwargs.get("extra_special_tokens"):
        kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")

    # Tokens with names of their own (Gemma 3's image_token, ...) become named special tokens.
    model_specific = {
        key: kwargs.pop(key)
        for key in list(kwargs)
        if key not in NAMED_SPECIAL_TOKENS and key.endswith("_token") and isinstance(kwargs[key], str)
    }
    if isinstance(kwargs.get("extra_special_tokens"), dict):
        model_specific.update(kwargs.pop("extra_special_tokens"))
    if model_specific:
        kwargs["model_specific_special_tokens"] = model_specific

    added_tokens_decoder: dict[int, AddedToken] = {}
    added_by_content: dict[str, AddedToken] = {}
    if "added_tokens_decoder" in kwargs:
        table = kwargs["added_tokens_decoder"]
        if not isinstance(table, dict):
            raise TokenizerFileError(f"{directory / TOKENIZER_CONFIG}: added_tokens_decoder must be an object")
        for index, token in table.items():
            if not isinstance(token, dict):
                raise TokenizerFileError(
                    f"{directory / TOKENIZER_CONFIG}: added_tokens_decoder[{index}] must be an object"
                )
            try:
                token_id = int(index)
            except ValueError:
                raise TokenizerFileError(
                    f"{directory / TOKENIZER_CONFIG}: added_tokens_decoder key {index!r} is not an id"
                ) from None
            added = _as_added_token(token, f"{directory / TOKENIZER_CONFIG} added_tokens_decoder")
            added_tokens_decoder[token_id] = added
            added_by_content[added.content] = added
    else:
        # Older layouts: special_tokens_map.json, added_tokens.json and tokenizer.json's added tokens.
        special_map_path = directory / SPECIAL_TOKENS_MAP
        if special_map_path.is_file():
            for key, value in _read_json_object(special_map_path).items():
                if isinstance(value, dict) and key != "extra_special_tokens":
                    value = _as_added_token(value, str(special_map_path), special=True)
                elif key == "extra_special_tokens" and isinstance(value, list):
                    merged = list(kwargs.get("extra_special_tokens") or [])
                    for token in value:
                        if isinstance(token, dict):
                            token = _as_added_token(token, str(special_map_path), special=True)
                        if token not in merged:
                            merged.append(token)
                    value = merged
                kwargs[key] = value
            if isinstance(kwargs.get("extra_special_tokens"), dict):
                kwargs.setdefault("model_specific_special_tokens", {}).update(kwargs.pop("extra_special_tokens"))
        added_tokens_path = directory / ADDED_TOKENS
        if added_tokens_path.is_file():
            named = {str(_token_value(kwargs.get(k), k)) for k in NAMED_SPECIAL_TOKENS if kwargs.get(k)}
            named.update(str(t) for t in (kwargs.get("extra_special_tokens") or []))
            for content, token_id in _read_json_object(added_tokens_path).items():
                if not isinstance(token_id, int):
                    raise TokenizerFileError(f"{added_tokens_path}: the id of {content!r} is not an integer")
                special = content in named
                added = AddedToken(content, rstrip=False, lstrip=False, normalized=not special, special=special)
                added_tokens_decoder[token_id] = added
                added_by_content[content] = added
        if tokenizer_json is not None:
            saved = tokenizer_json.get("added_tokens") or []
            if not isinstance(saved, list):
                raise TokenizerFileError(f"{directory / TOKENIZER_JSON}: added_tokens must be a list")
            for token in saved:
                if not isinstance(token, dict) or not isinstance(token.get("id"), int):
                    raise TokenizerFileError(
                        f"{directory / TOKENIZER_JSON}: malformed entry in added_tokens: {token!r}"
                    )
                added = _as_added_token(token, str(directory / TOKENIZER_JSON))
                added_tokens_decoder[token["id"]] = added
                added_by_content[added.content] = added
    kwargs["added_tokens_decoder"] = added_tokens_decoder

    where = str(directory / TOKENIZER_CONFIG)
    for key in list(kwargs):
        if key.endswith("_token"):
            kwargs[key] = _token_value(kwargs[key], f"{where}: {key}", named=key in NAMED_SPECIAL_TOKENS)
    for key in ("extra_special_tokens", "additional_special_tokens"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = [_token_value(token, f"{where}: {key}") for token in kwargs[key]]
    for key in NAMED_SPECIAL_TOKENS:
        if kwargs.get(key) is not None and added_by_content:
            kwargs[key] = added_by_content.get(str(kwargs[key]), kwargs[key])
    return kwargs


# --- SentencePiece models ----------------------------------------------------------------------------


def _load_sentencepiece_proto(path: Path) -> Any:
    """Parse tokenizer.model with sentencepiece (validated by loading it in SentencePieceProcessor first)."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    data = path.read_bytes()
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(data)
    except (RuntimeError, OSError, TypeError) as error:
        raise TokenizerFileError(
            f"{path} is not a valid SentencePiece model ({error}); restore it from the model's original files"
        ) from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(data)
    return proto


def _merges_in_vocab_order(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges implied by a vocabulary: every split of a piece into two pieces, ranked by the piece's id.

    Same ranking as transformers' generate_merges without scores (ties: shorter left part, then shorter right).
    """
    merges = []
    for piece, piece_id in vocab.items():
        local = []
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                local.append((left, right, piece_id))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])))
    return [(left, right) for left, right, _ in merges]


def _sentencepiece_added_tokens(proto: Any) -> list[AddedToken]:
    # Control pieces are special; user-defined pieces are added tokens too, but not special.
    return [
        AddedToken(piece.piece, normalized=False, special=piece.type == _SPM_CONTROL)
        for piece in proto.pieces
        if piece.type in (_SPM_CONTROL, _SPM_USER_DEFINED)
    ]


def _backend_from_sentencepiece(proto: Any, vocab: Any, legacy: Any) -> Backend:
    """A tokenizer following the SentencePiece model's own settings (transformers' build_tokenizer_from_spm_proto)."""
    import re

    byte_fallback = proto.trainer_spec.byte_fallback
    spec = proto.normalizer_spec
    if isinstance(vocab, dict):
        id_to_token = {token_id: token for token, token_id in vocab.items()}
    else:
        id_to_token = {token_id: item[0] for token_id, item in enumerate(vocab)}
    user_defined = [
        id_to_token[i] for i, piece in enumerate(proto.pieces) if piece.type == _SPM_USER_DEFINED and i in id_to_token
    ]

    if isinstance(vocab, dict):
        # SentencePiece BPE merges the pair whose result has the highest score; only normal pieces merge.
        normal = {id_to_token[i]: (p.score, i) for i, p in enumerate(proto.pieces) if p.type == 1 and i in id_to_token}
        ranked = []
        for token, (score, index) in normal.items():
            for cut in range(1, len(token)):
                left, right = token[:cut], token[cut:]
                if left in normal and right in normal:
                    ranked.append((-score, index, left, right))
        merges = [(left, right) for _, _, left, right in sorted(ranked)]
        backend = Backend(
            BPE(
                vocab=vocab,
                merges=merges,
                unk_token=proto.trainer_spec.unk_piece,
                fuse_unk=True,
                byte_fallback=byte_fallback,
                dropout=None,
                ignore_merges=bool(user_defined),
            )
        )
    else:
        backend = Backend(Unigram(vocab=vocab, unk_id=proto.trainer_spec.unk_id, byte_fallback=byte_fallback))

    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    if spec.add_dummy_prefix and legacy:
        # Metaspace skips its prefix when the text already starts with ▁; SentencePiece does not.
        steps.append(normalizers.Replace(Regex(r"\A▁"), "▁▁"))
    backend.normalizer = normalizers.Sequence(steps)

    pre = []
    if spec.add_dummy_prefix:
        scheme = "always" if legacy else "first"
        pre.append(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False))
    if user_defined:
        pattern = "|".join(re.escape(piece) for piece in sorted(user_defined, key=len, reverse=True))
        pre.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
    if pre:
        backend.pre_tokenizer = pre_tokenizers.Sequence(pre)

    steps = [decoders.Replace("▁", " ")]
    if byte_fallback:
        steps.append(decoders.ByteFallback())
    if spec.add_dummy_prefix:
        steps += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    elif byte_fallback:
        steps.append(decoders.Fuse())
    backend.decoder = decoders.Sequence(steps)
    return backend


# --- the classes that rebuild their pipeline ------------------------------------------------------------


def _prepend_scheme(add_prefix_space: Any, legacy: Any) -> str:
    if add_prefix_space:
        return "first" if not legacy else "always"
    return "never"


def _rebuild_llama(vocab: Any, merges: list, kwargs: dict) -> Backend:
    # models/llama/tokenization_llama.py: Metaspace pre-tokenizer, no normalizer, byte fallback.
    add_prefix_space = kwargs.get("add_prefix_space")
    add_prefix_space = True if add_prefix_space is None else add_prefix_space
    legacy = kwargs.get("legacy", False)
    kwargs.setdefault("unk_token", "<unk>")
    kwargs.setdefault("bos_token", "<s>")
    kwargs.setdefault("eos_token", "</s>")
    if vocab is None:
        vocab = {str(kwargs["unk_token"]): 0, str(kwargs["bos_token"]): 1, str(kwargs["eos_token"]): 2}
    backend = Backend(BPE(vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme=_prepend_scheme(add_prefix_space, legacy), split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    backend.decoder = decoders.Sequence(steps)
    return backend


def _rebuild_gemma(vocab: Any, merges: list, kwargs: dict) -> Backend:
    # models/gemma/tokenization_gemma.py: spaces become ▁ (no prefix), byte fallback.
    defaults = {
        "pad_token": "<pad>",
        "eos_token": "<eos>",
        "bos_token": "<bos>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    for key, default in defaults.items():
        kwargs.setdefault(key, default)
    if vocab is None:
        vocab = {str(kwargs[key]): i for i, key in enumerate(defaults)}
    unk = str(kwargs["unk_token"])
    backend = Backend(BPE(vocab=vocab, merges=merges, fuse_unk=True, unk_token=unk, dropout=None, byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.normalizer = normalizers.Replace(" ", "▁")
    return backend


def _rebuild_gpt2(vocab: Any, merges: list, kwargs: dict) -> Backend:
    # models/gpt2/tokenization_gpt2.py: plain byte-level BPE (GPT-2's regex inside ByteLevel).
    for key in ("unk_token", "bos_token", "eos_token"):
        kwargs.setdefault(key, "<|endoftext|>")
    backend = Backend(
        BPE(
            vocab=vocab or {},
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(kwargs.get("add_prefix_space", False)))
    backend.decoder = decoders.ByteLevel()
    return backend


def _rebuild_qwen2(vocab: Any, merges: list, kwargs: dict) -> Backend:
    # models/qwen2/tokenization_qwen2.py: NFC, Qwen2's split regex, byte-level BPE.
    for key in ("unk_token", "eos_token", "pad_token"):
        kwargs.setdefault(key, "<|endoftext|>")
    add_prefix_space = kwargs.get("add_prefix_space")
    add_prefix_space = False if add_prefix_space is None else add_prefix_space
    backend = Backend(
        BPE(
            vocab=vocab if vocab is not None else {"<|endoftext|>": 0},
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    backend.decoder = decoders.ByteLevel()
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=False),
        ]
    )
    return backend


def _rebuild_gpt_neox(vocab: Any, merges: list, kwargs: dict) -> Backend:
    # models/gpt_neox/tokenization_gpt_neox.py: NFC, byte-level BPE.
    for key in ("unk_token", "bos_token", "eos_token"):
        kwargs.setdefault(key, "<|endoftext|>")
    kwargs.setdefault("pad_token", "<|padding|>")
    if vocab is None:
        vocab = {str(kwargs["unk_token"]): 0, str(kwargs["pad_token"]): 1}
    backend = Backend(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=bool(kwargs.get("add_prefix_space", False)),
        trim_offsets=bool(kwargs.get("trim_offsets", True)),
    )
    backend.decoder = decoders.ByteLevel()
    return backend


_REBUILDERS = {
    "LlamaTokenizer": _rebuild_llama,
    "GemmaTokenizer": _rebuild_gemma,
    "GPT2Tokenizer": _rebuild_gpt2,
    "Qwen2Tokenizer": _rebuild_qwen2,
    "GPTNeoXTokenizer": _rebuild_gpt_neox,
}


def _vocab_and_merges_from_json(tokenizer_json: dict) -> tuple[Any, list | None]:
    """The vocabulary and merges of tokenizer.json's model, as a BPE class reads them."""
    model = tokenizer_json.get("model")
    if not isinstance(model, dict):
        raise TokenizerFileError("tokenizer.json has no 'model' object")
    try:
        vocab = model.get("vocab")
        if isinstance(vocab, list):
            vocab = {entry[0] if isinstance(entry, list) else entry: i for i, entry in enumerate(vocab)}
        merges = model.get("merges")
        if merges is not None:
            merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    except (TypeError, IndexError, AttributeError) as error:
        raise TokenizerFileError(f"tokenizer.json has a malformed vocabulary or merges list ({error})") from None
    return vocab, merges


def _backend_from_json(path: Path, tokenizer_json: dict) -> Backend:
    try:
        return Backend.from_str(json.dumps(tokenizer_json))
    except Exception as error:  # the tokenizers library raises a bare Exception for malformed files
        raise TokenizerFileError(
            f"{path} is not a valid tokenizer.json ({error}); restore it from the model's original files"
        ) from None


def _post_processor_from_json(path: Path, tokenizer_json: dict) -> Any:
    """The file's post-processor, read from a copy without the (large) vocabulary where the model allows it."""
    model = tokenizer_json.get("model") or {}
    if model.get("type") in (None, "Unigram"):  # Unigram needs a non-empty vocabulary
        return _backend_from_json(path, tokenizer_json).post_processor
    minimal_model = {**model, "vocab": {}}
    if model.get("type") == "BPE":
        minimal_model["merges"] = []
    return _backend_from_json(path, {**tokenizer_json, "model": minimal_model, "added_tokens": []}).post_processor


# --- assembling the tokenizer (TokenizersBackend.__init__ and PreTrainedTokenizerBase.__init__) -----------


class _SpecialTokens:
    """Named special tokens (ordered as transformers orders them) and the extra special tokens."""

    def __init__(self, kwargs: dict):
        self.named: dict[str, Any] = dict.fromkeys(NAMED_SPECIAL_TOKENS)
        self.extra: list[Any] = []
        if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        explicit = kwargs.pop("model_specific_special_tokens", None) or {}
        auto = {}
        for key in list(kwargs):
            if key in NAMED_SPECIAL_TOKENS:
                value = kwargs.pop(key)
                if value is not None:
                    self.named[key] = value
            elif key == "extra_special_tokens":
                value = kwargs.pop(key)
                if isinstance(value, dict):
                    self._add_model_specific(value)
                elif isinstance(value, (list, tuple)):
                    for token in value:
                        if not isinstance(token, (str, AddedToken)):
                            raise TokenizerFileError(f"extra special tokens must be strings, got {token!r}")
                    self.extra = list(value)
                elif value is not None:
                    raise TokenizerFileError("extra_special_tokens must be a list or an object of named tokens")
            elif key.endswith("_token") and isinstance(kwargs[key], (str, AddedToken)):
                auto[key] = kwargs.pop(key)
        model_specific = {**auto, **explicit}
        if model_specific:
            self._add_model_specific(model_specific)

    def _add_model_specific(self, tokens: dict) -> None:
        for key, value in tokens.items():
            if not isinstance(value, (str, AddedToken)):
                raise TokenizerFileError(f"special token {key} must be a string, got {value!r}")
            self.named[key] = value

    def strings(self) -> dict[str, str]:
        """transformers' special_tokens_map: name -> token text, for the tokens that are set."""
        return {name: str(value) for name, value in self.named.items() if value is not None}

    def all_strings(self) -> list[str]:
        seen: list[str] = []
        for value in [*self.named.values(), *self.extra]:
            if value is not None and str(value) not in seen:
                seen.append(str(value))
        return seen


def _token_id(backend: Backend, token: str | None, specials: _SpecialTokens) -> int | None:
    """convert_tokens_to_ids: the token's id, else the unknown token's id (else None)."""
    if token is None:
        return None
    index = backend.token_to_id(token)
    if index is not None:
        return index
    unk = specials.named.get("unk_token")
    return backend.token_to_id(str(unk)) if unk is not None else None


def _set_post_processor(backend: Backend, specials: _SpecialTokens, add_bos: bool, add_eos: bool) -> None:
    """TokenizersBackend.update_post_processor: BOS/EOS around each sequence as configured."""
    bos = specials.strings().get("bos_token")
    eos = specials.strings().get("eos_token")
    add_bos = bool(add_bos) and bos is not None
    add_eos = bool(add_eos) and eos is not None
    single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
    pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
    special = []
    if add_bos:
        special.append((bos, _token_id(backend, bos, specials)))
    if add_eos:
        special.append((eos, _token_id(backend, eos, specials)))
    if any(token_id is None for _, token_id in special):
        raise TokenizerFileError(
            f"the BOS/EOS token to add ({special}) is not in the vocabulary; check tokenizer_config.json"
        )
    try:
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
    except Exception as error:  # tokenizers raises a bare Exception for an unusable template
        raise TokenizerFileError(f"cannot add BOS/EOS tokens {special}: {error}; check tokenizer_config.json") from None


class _Loaded:
    """Everything a Tokenizer needs, built the way transformers builds it."""

    def __init__(self, backend: Backend, specials: _SpecialTokens, kwargs: dict, class_name: str):
        self.backend = backend
        self.specials = specials
        self.clean_up_tokenization_spaces = bool(kwargs.get("clean_up_tokenization_spaces", False))
        force_key = "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"
        self.force_clean_up = bool(kwargs.get(force_key, False))
        self.class_name = class_name


def _load(directory: Path, tokenizer_config: dict) -> _Loaded:
    tokenizer_json_path = directory / TOKENIZER_JSON
    spm_path = directory / SENTENCEPIECE_MODEL
    if not tokenizer_json_path.is_file() and not spm_path.is_file():
        raise TokenizerFileError(
            f"{directory} has no tokenizer.json or tokenizer.model; copy the tokenizer files from the model's "
            "original repository into it (or convert a .gguf file, which carries its tokenizer)"
        )
    tokenizer_json = _read_json_object(tokenizer_json_path) if tokenizer_json_path.is_file() else None
    model_config = {}
    if (directory / "config.json").is_file():
        try:
            loaded = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            model_config = loaded if isinstance(loaded, dict) else {}
        except (OSError, UnicodeDecodeError, ValueError):
            model_config = {}  # config.json problems are reported by slmcore.config, not here

    class_name = _resolve_class(directory, tokenizer_config, model_config)
    if class_name in _AS_SAVED_CLASSES:
        class_name = "TokenizersBackend"
    elif class_name not in _REBUILT_CLASSES:
        logger.warning(
            "tokenizer class %s is not reproduced by slmcore; using %s as saved, which may tokenize "
            "differently from transformers",
            class_name,
            TOKENIZER_JSON if tokenizer_json is not None else SENTENCEPIECE_MODEL,
        )
        class_name = "TokenizersBackend"
    kwargs = _init_kwargs(directory, tokenizer_config, tokenizer_json)
    post_processor = None

    # transformers' convert_to_native_format: where the vocabulary and the pipeline come from.
    if tokenizer_json is not None:
        if class_name in _REBUILDERS:
            vocab, merges = _vocab_and_merges_from_json(tokenizer_json)
            post_processor = _post_processor_from_json(tokenizer_json_path, tokenizer_json)
            try:
                backend = _REBUILDERS[class_name](vocab, list(merges or []), kwargs)
            except Exception as error:  # tokenizers rejects an inconsistent vocabulary or merges
                raise TokenizerFileError(
                    f"{tokenizer_json_path} has an unusable vocabulary or merges ({error}); "
                    "restore it from the model's original files"
                ) from None
        else:
            backend = _backend_from_json(tokenizer_json_path, tokenizer_json)
    else:
        proto = _load_sentencepiece_proto(spm_path)
        if class_name in _REBUILDERS:
            vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
            kwargs["additional_special_tokens"] = _sentencepiece_added_tokens(proto)
            backend = _REBUILDERS[class_name](vocab, _merges_in_vocab_order(vocab), kwargs)
        else:
            backend = _generic_sentencepiece_backend(proto, kwargs)

    backend.no_truncation()
    backend.no_padding()
    explicit_bos_eos = "add_bos_token" in kwargs or "add_eos_token" in kwargs
    add_bos = kwargs.get("add_bos_token", False)
    add_eos = kwargs.get("add_eos_token", False)
    if post_processor is not None:
        backend.post_processor = post_processor
    update_post_processor = explicit_bos_eos or backend.post_processor is None

    added_tokens_decoder: dict[int, AddedToken] = kwargs.get("added_tokens_decoder") or {}
    specials = _SpecialTokens(kwargs)
    split_special_tokens = bool(kwargs.get("split_special_tokens", False))
    backend.encode_special_tokens = split_special_tokens

    # Added tokens from the config, then any special token the vocabulary does not have as an added token yet.
    to_add: list[Any] = [token for _, token in sorted(added_tokens_decoder.items(), key=lambda item: item[0])]
    known = [token.content for token in backend.get_added_tokens_decoder().values()] + [str(t) for t in to_add]
    for value in [*specials.named.values(), *specials.extra]:
        if value is not None and str(value) not in known and value not in to_add:
            to_add.append(value)
    if to_add:
        named = [str(v) for v in specials.named.values() if v]
        tokens = []
        for token in to_add:
            if isinstance(token, str):
                token = AddedToken(token, special=True)
            elif not token.special and str(token) in named:
                token.special = True
            tokens.append(token)
        backend.add_tokens(tokens)

    if update_post_processor or backend.post_processor is None:
        _set_post_processor(backend, specials, add_bos, add_eos)
    if class_name == "Qwen2Tokenizer":
        backend.add_tokens([AddedToken(token, special=True) for token in specials.all_strings()])
    elif class_name == "GPTNeoXTokenizer":
        _set_post_processor(backend, specials, add_bos, add_eos)
    return _Loaded(backend, specials, kwargs, class_name)


def _generic_sentencepiece_backend(proto: Any, kwargs: dict) -> Backend:
    """TokenizersBackend on a tokenizer.model: the model's own settings (transformers' _convert_from_sentencepiece)."""
    if proto.trainer_spec.model_type == _SPM_UNIGRAM:
        vocab: Any = [(piece.piece, piece.score) for piece in proto.pieces]
    else:
        vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    kwargs["additional_special_tokens"] = _sentencepiece_added_tokens(proto)
    added_tokens_decoder = kwargs.get("added_tokens_decoder") or {}
    if isinstance(vocab, dict) and added_tokens_decoder:
        # Rename pieces as added_tokens_decoder says, unless the new name is a piece that keeps its own id.
        names = {int(i): str(token) for i, token in added_tokens_decoder.items()}
        kept = {token for token, i in vocab.items() if i not in names}
        vocab = {(names[i] if i in names and names[i] not in kept else token): i for token, i in vocab.items()}
    user_defined = {piece.piece for piece in proto.pieces if piece.type == _SPM_USER_DEFINED}
    if user_defined and kwargs.get("additional_special_tokens"):
        kwargs["additional_special_tokens"] = [
            token for token in kwargs["additional_special_tokens"] if str(token) not in user_defined
        ]
    if proto.normalizer_spec.add_dummy_prefix and added_tokens_decoder:
        # Added tokens are matched on the raw text, so each chunk between them gets its own dummy prefix.
        kwargs["added_tokens_decoder"] = {
            i: AddedToken(**{**t.__getstate__(), "normalized": False}) for i, t in added_tokens_decoder.items()
        }
    backend = _backend_from_sentencepiece(proto, vocab, kwargs.get("legacy", True))
    spec = proto.trainer_spec
    if spec.bos_id >= 0:
        kwargs.setdefault("bos_token", spec.bos_piece or "<s>")
    if spec.eos_id >= 0:
        kwargs.setdefault("eos_token", spec.eos_piece or "</s>")
    if spec.unk_id >= 0:
        kwargs.setdefault("unk_token", spec.unk_piece or "<unk>")
    return backend


# --- chat templates ----------------------------------------------------------------------------------


def _load_chat_templates(directory: Path, tokenizer_config: dict) -> dict[str, str]:
    """Named chat templates as transformers 5 reads them; "default" is the one used when none is named."""
    templates: dict[str, str] = {}
    jinja_path = directory / CHAT_TEMPLATE_JINJA
    if jinja_path.is_file():
        templates["default"] = _read_text(jinja_path)
    template_dir = directory / CHAT_TEMPLATE_DIR
    if template_dir.is_dir():
        for path in sorted(template_dir.glob("*.jinja")):
            templates[path.name[: -len(".jinja")]] = _read_text(path)
    if templates:
        # Template files take priority over templates in tokenizer_config.json.
        return templates

    configured = tokenizer_config.get("chat_template")
    where = directory / TOKENIZER_CONFIG
    if isinstance(configured, str):
        return {"default": configured}
    if isinstance(configured, list):
        for entry in configured:
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("name", "template")):
                raise TokenizerFileError(f"{where}: each chat_template entry must be {{'name': str, 'template': str}}")
            templates[entry["name"]] = entry["template"]
        return templates
    if configured is not None:
        raise TokenizerFileError(f"{where}: chat_template must be a string or a list of named templates")

    json_path = directory / CHAT_TEMPLATE_JSON
    if json_path.is_file():
        template = _read_json_object(json_path).get("chat_template")
        if isinstance(template, str):
            return {"default": template}
    return {}


# --- the public class --------------------------------------------------------------------------------


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidArgumentError(f"text must be a str, got {type(text).__name__}")
    return text


def _check_ids(ids: Any) -> list[int]:
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidArgumentError("token ids must be a 1-D sequence of integers")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise InvalidArgumentError(f"token ids must be a list of integers, got {type(ids).__name__}")
    checked = []
    for position, token_id in enumerate(ids):
        if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)):
            raise InvalidArgumentError(f"token ids[{position}] must be an integer, got {token_id!r}")
        if not 0 <= token_id < 2**32:
            raise InvalidTokenError(f"token id {int(token_id)} is outside the vocabulary")
        checked.append(int(token_id))
    return checked


class Tokenizer:
    """A model's tokenizer and chat templates; encode/decode equal transformers' AutoTokenizer on the same files.

    >>> tok = Tokenizer.from_dir("path/to/SmolLM2-135M-Instruct")
    >>> tok.decode(tok.encode("Hello"))
    'Hello'
    """

    def __init__(self, loaded: _Loaded, chat_templates: dict[str, str]):
        self._backend = loaded.backend
        self._specials = loaded.specials
        self._clean_up = loaded.clean_up_tokenization_spaces and (
            type(self._backend.model).__name__ != "BPE" or loaded.force_clean_up
        )
        self.tokenizer_class = loaded.class_name
        names = self._specials.strings()
        self.special_tokens_map: dict[str, str] = names
        self.bos_token: str | None = names.get("bos_token")
        self.eos_token: str | None = names.get("eos_token")
        self.pad_token: str | None = names.get("pad_token")
        self.unk_token: str | None = names.get("unk_token")
        self.bos_token_id: int | None = _token_id(self._backend, self.bos_token, self._specials)
        self.eos_token_id: int | None = _token_id(self._backend, self.eos_token, self._specials)
        self.pad_token_id: int | None = _token_id(self._backend, self.pad_token, self._specials)
        ids = (_token_id(self._backend, token, self._specials) for token in self._specials.all_strings())
        self.all_special_ids: frozenset[int] = frozenset(i for i in ids if i is not None)
        self.vocab_size: int = self._backend.get_vocab_size(with_added_tokens=True)
        self.chat_templates: dict[str, str] = dict(chat_templates)
        self.chat_template: str | None = chat_templates.get("default")

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike) -> "Tokenizer":
        """Load tokenizer.json (or, without one, tokenizer.model) plus tokenizer_config.json from model_dir."""
        directory = Path(model_dir)
        if not directory.is_dir():
            raise TokenizerFileError(f"{directory} is not a directory; pass the model's directory")
        config_path = directory / TOKENIZER_CONFIG
        tokenizer_config = _read_json_object(config_path) if config_path.is_file() else {}
        return cls(_load(directory, tokenizer_config), _load_chat_templates(directory, tokenizer_config))

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer({self.tokenizer_class}, vocab_size={self.vocab_size}, "
            f"bos={self.bos_token!r}, eos={self.eos_token!r})"
        )

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of text; with add_special_tokens, BOS/EOS exactly where the model's HF tokenizer adds them."""
        return self._backend.encode(_check_text(text), add_special_tokens=bool(add_special_tokens)).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of token ids (ids beyond the vocabulary decode to nothing, as in transformers)."""
        text = self._backend.decode(_check_ids(ids), skip_special_tokens=bool(skip_special_tokens))
        if self._clean_up:
            text = _clean_up_tokenization(text)
        return text

    def token_to_id(self, token: str) -> int | None:
        """The id of a token string (vocabulary or added token), or None."""
        return self._backend.token_to_id(_check_text(token))

    def id_to_token(self, token_id: int) -> str | None:
        """The token string of an id, or None."""
        return self._backend.id_to_token(_check_ids([token_id])[0])

    def _select_template(self, template: str | None, tools: Any) -> str:
        if template is not None:
            if not isinstance(template, str):
                raise InvalidArgumentError(
                    f"template must be a template name or a Jinja template string, got {type(template).__name__}"
                )
            if template in self.chat_templates:
                return self.chat_templates[template]
            if "{" not in template and "\n" not in template:
                raise ChatTemplateError(
                    f"this model has no chat template named {template!r}; "
                    f"its templates are: {sorted(self.chat_templates) or 'none'}"
                )
            return template  # a template given in full
        if tools is not None and "tool_use" in self.chat_templates:
            return self.chat_templates["tool_use"]
        if self.chat_template is not None:
            return self.chat_template
        if self.chat_templates:
            raise ChatTemplateError(
                f"this model has several chat templates and none is the default; name one with template=..., "
                f"from: {sorted(self.chat_templates)}"
            )
        raise ChatTemplateError(
            "this model has no chat template; pass one as template='{% for message in messages %}...' "
            "(a Jinja template string), or add chat_template.jinja to the model directory"
        )

    def apply_chat_template(
        self,
        messages: list[dict],
        add_generation_prompt: bool = True,
        template: str | None = None,
        *,
        chat_template: str | None = None,
        tools: list[dict] | None = None,
        documents: list[dict] | None = None,
        **kwargs: Any,
    ) -> str:
        """Render messages through the chat template (text only), as transformers' apply_chat_template(tokenize=False).

        template (or chat_template=) is a template name from chat_templates or a full Jinja template;
        extra keyword arguments are visible to the template, after bos_token, eos_token and the other special tokens.
        """
        if template is not None and chat_template is not None:
            raise InvalidArgumentError("give either template= or chat_template=, not both")
        source = self._select_template(template if template is not None else chat_template, tools)
        variables = {**self.special_tokens_map, **kwargs}
        return render_chat_template(
            source, messages, add_generation_prompt=add_generation_prompt, tools=tools, documents=documents, **variables
        )

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True, **kwargs: Any) -> list[int]:
        """Token ids of the rendered chat; the template writes BOS itself, so none is added on top."""
        text = self.apply_chat_template(messages, add_generation_prompt, **kwargs)
        return self.encode(text, add_special_tokens=False)


def _clean_up_tokenization(text: str) -> str:
    # PreTrainedTokenizerBase.clean_up_tokenization (only reached for non-BPE models).
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


__all__ = ["Tokenizer", "has_tokenizer_files"]
