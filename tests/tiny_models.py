"""Tiny random-weight llama-family checkpoints made by transformers, and transformers' own logits.

transformers' default init (std 0.02) makes attention nearly uniform and hides rope, mask and
window bugs, so every parameter is re-drawn from N(0, 0.08) (norm weights from 1 + N(0, 0.08)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import transformers

CONFIG_CLASSES = {
    "llama": transformers.LlamaConfig,
    "mistral": transformers.MistralConfig,
    "qwen2": transformers.Qwen2Config,
    "qwen3": transformers.Qwen3Config,
    "gemma3_text": transformers.Gemma3TextConfig,
    "phi3": transformers.Phi3Config,
    "gpt2": transformers.GPT2Config,
    "stablelm": transformers.StableLmConfig,
    "phi": transformers.PhiConfig,
    "gemma": transformers.GemmaConfig,
    "gemma2": transformers.Gemma2Config,
    "falcon": transformers.FalconConfig,
    "rwkv": transformers.RwkvConfig,
    "bloom": transformers.BloomConfig,
}

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

TINY_DEFAULTS = dict(
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=300,  # not a power of two
    max_position_embeddings=512,
)

# GPT2Config spells the same sizes its own way.
GPT2_TINY_DEFAULTS = dict(n_embd=64, n_inner=160, n_layer=2, n_head=4, vocab_size=300, n_positions=512)

# RwkvConfig's names; odd sizes, attention_hidden_size != hidden_size.
RWKV_TINY_DEFAULTS = dict(hidden_size=40, attention_hidden_size=24, intermediate_size=75, num_hidden_layers=3,
                          vocab_size=300, context_length=512)

INIT_STD = 0.08


def _rwkv_time_parameter(name: str, shape: torch.Size) -> torch.Tensor | None:
    """RWKV's time parameters drawn where trained models have them, or None for other parameters:
    time_mix_* in [0, 1] (an interpolation with the previous token), time_decay w in [-2, 2]
    (per-token decay exp(-exp(w)) from 0.87 to 0.0006), time_first (the current token's bonus) N(0, 1)."""
    if ".time_mix_" in name:
        return torch.rand(shape)
    if name.endswith(".time_decay"):
        return torch.rand(shape) * 4 - 2
    if name.endswith(".time_first"):
        return torch.randn(shape)
    return None


def make_tiny_model(
    path: str | Path,
    arch: str = "llama",
    dtype: str = "float32",
    sharded: bool = False,
    seed: int = 0,
    **config_overrides,
) -> Path:
    """Save a tiny random model of family `arch` to path (config.json + safetensors); returns path."""
    path = Path(path)
    defaults = {"gpt2": GPT2_TINY_DEFAULTS, "rwkv": RWKV_TINY_DEFAULTS}.get(arch, TINY_DEFAULTS)
    config = CONFIG_CLASSES[arch](**{**defaults, **config_overrides})
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, dtype=torch.float32) * INIT_STD
            is_norm = name.endswith(("norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight", "ln_attn.weight",
                                     "ln_mlp.weight", "ln1.weight", "ln2.weight", "pre_ln.weight", "ln_out.weight")) or ".norms." in name  # StableLM's per-head q/k LayerNorms
            time_parameter = _rwkv_time_parameter(name, param.shape) if arch == "rwkv" else None
            if time_parameter is not None:
                param.copy_(time_parameter)
            else:
                param.copy_(1.0 + noise if is_norm else noise)
    model = model.to(TORCH_DTYPES[dtype])
    # ~0.5 MB of float32 weights: 100 KB shards give several files.
    model.save_pretrained(path, max_shard_size="100KB" if sharded else "10GB")
    return path


def make_tiny_gemma3_multimodal(path: str | Path, seed: int = 0, **text_overrides) -> Path:
    """A tiny Gemma3ForConditionalGeneration (text model + a one-layer SigLIP vision tower), weights
    re-drawn as in make_tiny_model, saved by transformers; returns path."""
    path = Path(path)
    text = transformers.Gemma3TextConfig(**{**TINY_DEFAULTS, **text_overrides})
    vision = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=28, patch_size=14)
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    torch.manual_seed(seed)
    model = transformers.Gemma3ForConditionalGeneration(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, dtype=torch.float32) * INIT_STD
            param.copy_(1.0 + noise if name.endswith("norm.weight") else noise)
    model.save_pretrained(path)
    return path


def hf_logits(path: str | Path, token_ids: Sequence[int], attn_implementation: str = "eager") -> np.ndarray:
    """transformers' float32 logits [T, vocab] for one sequence (eager attention unless asked)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation=attn_implementation
    )
    model.eval()
    with torch.no_grad():
        # use_cache=False: one pass needs no cache, and RWKV's cached state is sized hidden_size,
        # which breaks models whose attention_hidden_size differs (a transformers 5.24 bug).
        logits = model(torch.tensor([list(token_ids)], dtype=torch.long), use_cache=False).logits
    return logits[0].numpy()
