"""GPT-2 and DistilGPT2 (gpt2): learned positions, LayerNorm, a plain gelu MLP, biases.

GPT-2 checkpoints store their projections as Conv1D weights [in, out], the transpose of a Linear's
[out, in]: they are transposed once at load (a copy). q, k and v come fused as c_attn [hidden,
3 * hidden]. Hub checkpoints may lack the `transformer.` prefix and carry the attention-mask
buffers `attn.bias` / `attn.masked_bias`, which are ignored.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import common

GRAPH = "llama"
MODEL_TYPES = ("gpt2",)


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): Conv1D weights transposed to [out, in], c_attn split into q/k/v."""
    common.check_dtype(dtype)
    H, inner = config.hidden_size, config.intermediate_size

    def load(name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
        return common.load(checkpoint, (f"transformer.{name}", name), shape)

    def matrix(array: np.ndarray, stored: str, transpose: bool = False) -> tuple[np.ndarray, str]:
        return common.matrix((array, stored), dtype, transpose)

    vector = common.vector

    weights = {
        "embed_tokens": matrix(*load("wte.weight", (config.vocab_size, H))),
        "position_embeddings": matrix(*load("wpe.weight", (config.max_position_embeddings, H))),
        "norm": vector(load("ln_f.weight", (H,))),
        "norm.bias": vector(load("ln_f.bias", (H,))),
    }
    weights["lm_head"] = weights["embed_tokens"]
    for i in range(config.num_hidden_layers):
        src, dst = f"h.{i}", f"layers.{i}"
        weights[f"{dst}.input_layernorm"] = vector(load(f"{src}.ln_1.weight", (H,)))
        weights[f"{dst}.input_layernorm.bias"] = vector(load(f"{src}.ln_1.bias", (H,)))
        weights[f"{dst}.post_attention_layernorm"] = vector(load(f"{src}.ln_2.weight", (H,)))
        weights[f"{dst}.post_attention_layernorm.bias"] = vector(load(f"{src}.ln_2.bias", (H,)))
        qkv, qkv_dtype = matrix(*load(f"{src}.attn.c_attn.weight", (H, 3 * H)), transpose=True)
        qkv_bias, _ = vector(load(f"{src}.attn.c_attn.bias", (3 * H,)))
        for j, part in enumerate(("q_proj", "k_proj", "v_proj")):
            weights[f"{dst}.self_attn.{part}"] = (qkv[j * H : (j + 1) * H], qkv_dtype)
            weights[f"{dst}.self_attn.{part}.bias"] = (qkv_bias[j * H : (j + 1) * H], "float32")
        weights[f"{dst}.self_attn.o_proj"] = matrix(*load(f"{src}.attn.c_proj.weight", (H, H)), transpose=True)
        weights[f"{dst}.self_attn.o_proj.bias"] = vector(load(f"{src}.attn.c_proj.bias", (H,)))
        weights[f"{dst}.mlp.up_proj"] = matrix(*load(f"{src}.mlp.c_fc.weight", (H, inner)), transpose=True)
        weights[f"{dst}.mlp.up_proj.bias"] = vector(load(f"{src}.mlp.c_fc.bias", (inner,)))
        weights[f"{dst}.mlp.down_proj"] = matrix(*load(f"{src}.mlp.c_proj.weight", (inner, H)), transpose=True)
        weights[f"{dst}.mlp.down_proj.bias"] = vector(load(f"{src}.mlp.c_proj.bias", (H,)))
    return weights
