"""GGUF files built in the tests from tiny random transformers models, written as llama.cpp's
convert_hf_to_gguf.py writes them (independently of slmcore.convert):

- tensor names from the gguf package's own HF -> GGUF name map;
- llama: Q and K rows permuted for llama.cpp's rope (K with the KV head count);
- gemma3: every RMSNorm weight stored as 1 + w;
- 1-D tensors (norms, biases) always F32, matrices in the requested type;
- tokenizers trained here: a byte-level BPE (gpt2-style) and a SentencePiece BPE vocabulary.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gguf
import numpy as np
import torch
import transformers
from gguf import GGMLQuantizationType as Q
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from text_samples import FIXED

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
INIT_STD = 0.08

CORPUS = FIXED + [
    "The cat sat on the mat. The dog sat on the log. They were the best of friends.",
    "In the beginning there was the word, and the word was with the tokenizer.",
    "import numpy as np\nimport torch\n\ndef main():\n    x = np.zeros((3, 4))\n    print(x.shape)\n",
    "Numbers like 42, 1999, 2024 and 3.14 appear in text; so do dates like 2023-05-17.",
    "She said: \"I'll be there at 10:30, don't be late!\" and then she left the room.",
    "class Model(nn.Module):\n    def forward(self, input_ids):\n        return self.lm_head(self.norm(h))\n",
] * 4

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class Vocab:
    """What a GGUF's tokenizer.* metadata holds."""

    model: str  # tokenizer.ggml.model
    tokens: list[str]
    types: list[int]
    merges: list[str] | None = None
    scores: list[float] | None = None
    pre: str | None = None
    ids: dict[str, int] = field(default_factory=dict)  # bos/eos/unknown/padding -> id
    add_space_prefix: bool | None = None

    def special_tokens(self) -> list[str]:
        return [t for t, kind in zip(self.tokens, self.types) if kind in (CONTROL, USER_DEFINED)]


def byte_level_vocab(vocab_size: int = 300) -> Vocab:
    """A byte-level BPE trained on CORPUS: 3 control tokens, one user-defined token, vocab_size tokens."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    user_defined = ["<think>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials + user_defined,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    tokenizer.train_from_iterator(CORPUS, trainer)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    assert len(tokens) == vocab_size and [vocab[t] for t in tokens] == list(range(vocab_size))
    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    types = [CONTROL if t in specials else USER_DEFINED if t in user_defined else NORMAL for t in tokens]
    return Vocab(
        model="gpt2", tokens=tokens, types=types, merges=merges,
        ids={"bos": tokens.index("<|im_start|>"), "eos": tokens.index("<|im_end|>"),
             "unknown": tokens.index("<|endoftext|>"), "padding": tokens.index("<|im_end|>")},
    )  # fmt: skip


def sentencepiece_vocab(gemma: bool, vocab_size: int = 400) -> tuple[Vocab, bytes]:
    """A SentencePiece BPE with byte fallback trained on CORPUS, as llama.cpp writes it into a GGUF,
    and the original model proto. Gemma-style: <pad> <eos> <bos> <unk> first, chat-turn tokens
    user-defined, and whitespace-only user-defined pieces ("▁▁") written with literal spaces."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    user_defined = ["<start_of_turn>", "<end_of_turn>"]
    extra: dict[str, Any] = {}
    if gemma:  # Gemma: <pad> <eos> <bos> <unk> <mask> first; whitespace runs are user-defined pieces
        ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3)
        extra = dict(eos_piece="<eos>", bos_piece="<bos>", control_symbols=["<mask>"],
                     user_defined_symbols=user_defined + ["\u2581" * n for n in (2, 3, 4)],
                     allow_whitespace_only_pieces=False)  # fmt: skip
    else:
        ids = dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
        extra = dict(user_defined_symbols=user_defined, allow_whitespace_only_pieces=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([s for s in CORPUS if s.isascii() and "\x00" not in s]), model_writer=model,
        model_type="bpe", vocab_size=vocab_size, byte_fallback=True, character_coverage=1.0,
        add_dummy_prefix=not gemma, remove_extra_whitespaces=False, normalization_rule_name="identity",
        split_digits=True, minloglevel=2, **ids, **extra,
    )  # fmt: skip
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    tokens, scores, types = [], [], []
    for piece in proto.pieces:
        text = piece.piece
        if gemma and piece.type == USER_DEFINED:
            text = text.replace("\u2581", " ")  # llama.cpp writes user-defined pieces as raw text
        tokens.append(text)
        scores.append(piece.score)
        types.append(CONTROL if gemma and piece.type == UNKNOWN else piece.type)  # Gemma's file marks <unk> control
    names = {"padding": "pad_id", "eos": "eos_id", "bos": "bos_id", "unknown": "unk_id"}
    vocab = Vocab(
        model="llama", tokens=tokens, types=types, scores=scores, pre="default",
        ids={name: ids[key] for name, key in names.items() if ids[key] >= 0}, add_space_prefix=not gemma,
    )  # fmt: skip
    return vocab, proto.SerializeToString()


# --- models ----------------------------------------------------------------------------------------


def tiny_model(arch: str, vocab_size: int, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """A tiny random model with weights N(0, 0.08) (norms 1 + N(0, 0.08); Gemma's around 0)."""
    defaults = dict(
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=vocab_size, max_position_embeddings=512, rms_norm_eps=1e-5,
    )  # fmt: skip
    if arch == "gemma3":
        # 6 layers: the last attends globally. query_pre_attn_scalar = head_dim, as in Gemma 3 below 27B
        # (llama.cpp does not store it and scales by 1/sqrt(head_dim)).
        defaults |= dict(head_dim=32, sliding_window=4, rope_theta=10000.0, num_hidden_layers=6,
                         query_pre_attn_scalar=32)
        config = transformers.Gemma3TextConfig(**{**defaults, **overrides})
    else:
        config = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[arch](
            **{**defaults, **overrides}
        )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape) * INIT_STD
            gemma_norm = arch == "gemma3"  # Gemma multiplies by (1 + w): keep w near 0
            param.copy_(noise if gemma_norm or not name.endswith("norm.weight") else 1.0 + noise)
    return model.eval()


def llama_permute(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's permutation of Q/K rows (convert_hf_to_gguf.py, LlamaModel.permute)."""
    return weights.reshape(n_heads, 2, weights.shape[0] // n_heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape
    )


def quantize_matrix(values: np.ndarray, qtype: Q, rng: np.random.Generator) -> np.ndarray:
    """Raw GGUF bytes for a matrix: gguf's quantizer where it has one; for Q4_K and Q6_K (which it
    cannot quantize) random blocks whose f16 scales are finite."""
    if qtype in (Q.F32, Q.F16):
        return values.astype(np.float32 if qtype == Q.F32 else np.float16)
    if qtype not in (Q.Q4_K, Q.Q6_K):
        return gguf.quants.quantize(values.astype(np.float32), qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = values.shape
    blocks = rng.integers(0, 256, (rows * cols // block_size, type_size), dtype=np.uint8)
    scales = rng.uniform(0.001, 0.02, (blocks.shape[0], 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q4_K:
        blocks[:, 0:4] = scales  # d, dmin
    else:
        blocks[:, 208:210] = scales[:, 0:2]  # d is the last field of a Q6_K block
    return blocks.reshape(rows, cols // block_size * type_size)


def write_gguf(
    path: Path,
    model: transformers.PreTrainedModel,
    vocab: Vocab | None,
    tensor_type: Q = Q.F32,
    *,
    add_bos: bool | None = None,
    chat_template: str | None = None,
    extra_metadata: Callable[[gguf.GGUFWriter], None] | None = None,
    extra_tensors: dict[str, np.ndarray] | None = None,
    drop_tensors: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[Path, dict[str, np.ndarray]]:
    """Write model (and vocab) as a GGUF; returns the path and each tensor's raw stored data."""
    config = model.config
    arch = {"llama": "llama", "qwen2": "qwen2", "gemma3_text": "gemma3"}[config.model_type]
    rng = np.random.default_rng(seed)
    name_map = gguf.get_tensor_name_map(
        {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "gemma3": gguf.MODEL_ARCH.GEMMA3}[arch],
        config.num_hidden_layers,
    )
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"tiny {arch}")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"] if arch != "gemma3" else
                              config.rope_parameters["full_attention"]["rope_theta"])  # fmt: skip
    writer.add_vocab_size(config.vocab_size)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if arch == "llama":
        writer.add_rope_dimension_count(head_dim)
    if arch == "gemma3":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(config.sliding_window)
    if vocab is not None:
        writer.add_tokenizer_model(vocab.model)
        if vocab.pre is not None:
            writer.add_tokenizer_pre(vocab.pre)
        writer.add_token_list(vocab.tokens)
        writer.add_token_types(vocab.types)
        if vocab.scores is not None:
            writer.add_token_scores(vocab.scores)
        if vocab.merges is not None:
            writer.add_token_merges(vocab.merges)
        for name, token_id in vocab.ids.items():
            writer.add_uint32(f"tokenizer.ggml.{name}_token_id", token_id)
        if vocab.add_space_prefix is not None:
            writer.add_add_space_prefix(vocab.add_space_prefix)
        if add_bos is not None:
            writer.add_add_bos_token(add_bos)
        if chat_template is not None:
            writer.add_chat_template(chat_template)
    if extra_metadata is not None:
        extra_metadata(writer)

    stored: dict[str, np.ndarray] = {}
    for hf_name, param in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        stem, suffix = hf_name.rsplit(".", 1)
        name = f"{name_map.get_name(stem)}.{suffix}"
        if name in drop_tensors:
            continue
        values = param.detach().float().numpy().copy()
        if arch == "llama" and ".attn_q." in name:
            values = llama_permute(values, config.num_attention_heads)
        elif arch == "llama" and ".attn_k." in name:
            values = llama_permute(values, config.num_key_value_heads)
        if arch == "gemma3" and name.endswith("norm.weight"):
            values = values + 1.0
        if values.ndim == 1:
            raw, qtype = values.astype(np.float32), Q.F32
        else:
            raw, qtype = quantize_matrix(values, tensor_type, rng), tensor_type
        stored[name] = raw
        writer.add_tensor(name, raw, raw_dtype=qtype if qtype not in (Q.F32, Q.F16) else None)
    for name, raw in (extra_tensors or {}).items():
        stored[name] = raw
        writer.add_tensor(name, raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, stored


def hf_logits(model: transformers.PreTrainedModel, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()
