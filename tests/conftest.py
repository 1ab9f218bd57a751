"""Shared fixtures: tiny transformers models built once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from tiny_models import make_tiny_model

# The test machine shares its 2 cores with compiles; tiny models do not need more than one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """tiny_model(arch="llama", dtype="float32", sharded=False, seed=0, **config_overrides) -> model dir, cached."""
    built: dict[tuple, Path] = {}

    def get(arch: str = "llama", dtype: str = "float32", sharded: bool = False, seed: int = 0, **overrides) -> Path:
        key = (arch, dtype, sharded, seed, repr(sorted(overrides.items())))
        if key not in built:
            path = tmp_path_factory.mktemp(f"tiny_{arch}_{dtype}")
            built[key] = make_tiny_model(path, arch=arch, dtype=dtype, sharded=sharded, seed=seed, **overrides)
        return built[key]

    return get
