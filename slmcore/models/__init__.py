"""Architecture families: one module per family, found by model_type (mlx-lm style registry).

Each family module provides GRAPH (the C++ graph builder that runs it), MODEL_TYPES,
engine_weights(config, checkpoint, dtype) -> {canonical name: (array, dtype)}. The module that
names a graph's canonical weights in quantized checkpoints (llama, rwkv) also provides
weight_shapes(config) -> {canonical name: shape} and checkpoint_names(canonical) -> the checkpoint
names tried for it. A family whose graph has no attention (rwkv) also provides
engine_config(config, max_seq_len, threads) -> the C++ graph's config dict.

Canonical names belong to a graph: every family of the "llama" graph hands the engine llama's
canonical weights, so quantized checkpoints of those families are named by the llama module
(canonical_naming).
"""

from __future__ import annotations

import types

from slmcore.config import ModelConfig
from slmcore.errors import ConfigError
from slmcore.models import bloom, falcon, gemma3, gpt2, llama, phi, phi3, rwkv, stablelm

_FAMILIES: tuple[types.ModuleType, ...] = (llama, gemma3, phi3, phi, gpt2, falcon, bloom, stablelm, rwkv)

_BY_MODEL_TYPE: dict[str, types.ModuleType] = {
    model_type: family for family in _FAMILIES for model_type in family.MODEL_TYPES
}


# The module whose weight_shapes / checkpoint_names name each graph's canonical weights.
_NAMING_BY_GRAPH: dict[str, types.ModuleType] = {"llama": llama, "rwkv": rwkv}


def canonical_naming(config: ModelConfig) -> types.ModuleType:
    """The module with weight_shapes(config) and checkpoint_names(canonical) for config's graph:
    the names and shapes an slmcore-quantized checkpoint of this model stores."""
    return _NAMING_BY_GRAPH[family_for(config).GRAPH]


def family_for(config: ModelConfig) -> types.ModuleType:
    """The family module that runs config.model_type."""
    family = _BY_MODEL_TYPE.get(config.model_type)
    if family is None:
        raise ConfigError(
            f"model_type {config.model_type!r} has no architecture family; "
            f"supported: {', '.join(sorted(_BY_MODEL_TYPE))}"
        )
    return family
