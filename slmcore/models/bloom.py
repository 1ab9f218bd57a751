"""BLOOM / BLOOMZ (bloom): Falcon's tensor names (Falcon grew out of BLOOM's code) with the fused
query_key_value interleaved per head ([n_head, 3, head_dim] rows), so falcon.engine_weights reads
them; BLOOM adds the LayerNorm of the embeddings (word_embeddings_layernorm). Hub checkpoints name
tensors with or without the `transformer.` prefix; both load. ALiBi, the plain MLP and the
LayerNorms are switches that config.py sets.
"""

from __future__ import annotations

import numpy as np

from slmcore.config import ModelConfig
from slmcore.loader import Checkpoint
from slmcore.models import common, falcon

GRAPH = "llama"
MODEL_TYPES = ("bloom",)


def engine_weights(config: ModelConfig, checkpoint: Checkpoint, dtype: str = "auto") -> dict[str, tuple[np.ndarray, str]]:
    """Canonical name -> (array, dtype): Falcon's mapping plus embed_norm (+ .bias)."""
    weights = falcon.engine_weights(config, checkpoint, dtype)
    if not config.embed_norm:
        return weights
    for part, canonical in (("weight", "embed_norm"), ("bias", "embed_norm.bias")):
        name = f"word_embeddings_layernorm.{part}"
        loaded = common.load(checkpoint, (f"transformer.{name}", name), (config.hidden_size,))
        weights[canonical] = common.vector(loaded)
    return weights
