"""Phi-1/1.5/2 (phi): parallel attention and MLP fed by one LayerNorm, partial rotary, a plain
gelu MLP, biases everywhere including the lm_head (config.py sets the switches).

The engine's MLP norm (post_attention_layernorm) is Phi's single input_layernorm, shared.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import llama

GRAPH = "llama"
MODEL_TYPES = ("phi",)

LAYER_NAMES = {
    "self_attn.o_proj": "self_attn.dense",
    "self_attn.o_proj.bias": "self_attn.dense.bias",
    "mlp.up_proj": "mlp.fc1",
    "mlp.up_proj.bias": "mlp.fc1.bias",
    "mlp.down_proj": "mlp.fc2",
    "mlp.down_proj.bias": "mlp.fc2.bias",
    "post_attention_layernorm": "input_layernorm",
    "post_attention_layernorm.bias": "input_layernorm.bias",
    "norm": "final_layernorm",
    "norm.bias": "final_layernorm.bias",
}


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype), as llama.engine_weights with Phi's names."""
    return llama.engine_weights(config, checkpoint, dtype, layer_names=LAYER_NAMES)
