"""Gemma 2 and Gemma 3 text models (gemma2, gemma3_text, and the text part of the multimodal gemma3):
the llama graph with GeGLU, q/k head norms, norms of the attention and MLP outputs, (1 + w) RMSNorm weights, an embedding scaled by sqrt(hidden_size), and
sliding-window layers with their own rope base (Gemma 3), attention and final logit soft-capping
(Gemma 2); config.py resolves all of these switches. Gemma 2 has no q/k head norms.

Only the per-layer norm names differ from the canonical (Llama) ones: Gemma's
post_attention_layernorm normalises the attention output, and pre_feedforward_layernorm is the
norm before the MLP (the canonical post_attention_layernorm).
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import llama

GRAPH = "llama"
MODEL_TYPES = ("gemma3_text", "gemma2", "gemma3")

# The multimodal wrapper (gemma3) keeps the text decoder under language_model.model. (as
# transformers 4 named it, and as transformers 5 still saves it) or model.language_model. (transformers
# 5's module names), and the lm_head as language_model.lm_head or lm_head. Vision tensors are ignored.
MULTIMODAL_PREFIXES = ("language_model.model.", "model.language_model.")
MULTIMODAL_LM_HEAD_PREFIXES = ("language_model.", "")

LAYER_NAMES = {
    "post_attention_layernorm": "pre_feedforward_layernorm",
    "attn_output_norm": "post_attention_layernorm",
    "mlp_output_norm": "post_feedforward_layernorm",
}


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype), as llama.engine_weights with Gemma's layer names."""
    if config.model_type == "gemma3":
        return llama.engine_weights(config, checkpoint, dtype, layer_names=LAYER_NAMES, prefixes=MULTIMODAL_PREFIXES,
                                    lm_head_prefixes=MULTIMODAL_LM_HEAD_PREFIXES)
    return llama.engine_weights(config, checkpoint, dtype, layer_names=LAYER_NAMES)
