"""StableLM 2 / StableLM-3B-4E1T (stablelm): Llama's weight names with LayerNorms (weight and bias).

Two switches of StableLM 2 12B change the weights: `use_parallel_residual` drops
post_attention_layernorm (the MLP reads input_layernorm's output, as in Phi-2), and `qk_layernorm`
adds a bias-free LayerNorm per head, stored as one [head_dim] weight per head
(self_attn.q_layernorm.norms.{h}.weight); these are stacked into the engine's per-head
q_norm [n_heads * head_dim] and k_norm [n_kv_heads * head_dim].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import common, llama

GRAPH = "llama"
MODEL_TYPES = ("stablelm",)

# With use_parallel_residual the MLP's norm (canonical post_attention_layernorm) is input_layernorm.
PARALLEL_LAYER_NAMES = {
    "post_attention_layernorm": "input_layernorm",
    "post_attention_layernorm.bias": "input_layernorm.bias",
}


def _layer_names(config: ModelConfig) -> dict[str, str]:
    return PARALLEL_LAYER_NAMES if config.parallel_residual else {}


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): llama.engine_weights plus the stacked per-head q/k LayerNorms."""
    weights = llama.engine_weights(replace(config, qk_norm=False), checkpoint, dtype, layer_names=_layer_names(config))
    if not config.qk_norm:
        return weights
    hd = config.head_dim
    for i in range(config.num_hidden_layers):
        for part, heads in (("q", config.num_attention_heads), ("k", config.num_key_value_heads)):
            per_head = []
            for h in range(heads):
                name = f"layers.{i}.self_attn.{part}_layernorm.norms.{h}.weight"
                per_head.append(common.vector(common.load(checkpoint, (f"model.{name}", name), (hd,)))[0])
            weights[f"layers.{i}.self_attn.{part}_norm"] = (np.concatenate(per_head), "float32")
    return weights

