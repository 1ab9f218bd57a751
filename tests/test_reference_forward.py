"""reference.forward against transformers' float32 logits on tiny random llama-family models."""

from __future__ import annotations

import numpy as np
import pytest

from slmcore.config import ModelConfig, RopeConfig
from slmcore.errors import InvalidArgumentError, InvalidTokenError
from slmcore.loader import Checkpoint
from slmcore.models import family_for
from slmcore.reference import forward as reference
from tiny_models import hf_logits

# transformers computes in float32, the reference in float64 from the same stored values.
TOLERANCE = 1e-4

N_TOKENS = 23
LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}  # fmt: skip

CASES = {
    "llama": dict(arch="llama"),
    "llama-tied": dict(arch="llama", tie_word_embeddings=True),
    "llama-mqa": dict(arch="llama", num_key_value_heads=1),
    "llama-mha-head_dim-32": dict(arch="llama", num_key_value_heads=4, head_dim=32),
    "llama-rope-llama3": dict(arch="llama", rope_parameters=LLAMA3),
    "llama-rope-linear": dict(arch="llama", rope_parameters={"rope_type": "linear", "factor": 4.0}),
    "llama-attention_bias": dict(arch="llama", attention_bias=True),
    "llama-mlp_bias": dict(arch="llama", mlp_bias=True),
    "llama-bf16": dict(arch="llama", dtype="bfloat16"),
    "llama-f16-tied": dict(arch="llama", dtype="float16", tie_word_embeddings=True),
    "llama-sharded": dict(arch="llama", sharded=True),
    "mistral-window-5": dict(arch="mistral", sliding_window=5),
    "mistral-no-window": dict(arch="mistral", sliding_window=None),
    "qwen2-window-layer-1": dict(arch="qwen2", use_sliding_window=True, sliding_window=5, max_window_layers=1),
    "qwen2-window-disabled": dict(arch="qwen2", use_sliding_window=False, sliding_window=5, max_window_layers=1),
    "qwen2-bf16-sharded-tied": dict(arch="qwen2", dtype="bfloat16", sharded=True, tie_word_embeddings=True),
}


def token_ids(seed: int = 1) -> list[int]:
    return np.random.default_rng(seed).integers(0, 300, N_TOKENS).tolist()


def reference_logits(model_dir, ids) -> np.ndarray:
    config = ModelConfig.from_file(model_dir)
    with Checkpoint.open(model_dir) as checkpoint:
        weights = family_for(config).engine_weights(config, checkpoint)
        return reference.forward(config, weights, ids)


@pytest.mark.parametrize("case", list(CASES))
def test_reference_matches_transformers(tiny_model, case: str) -> None:
    model_dir = tiny_model(**CASES[case])
    ids = token_ids()
    expected = hf_logits(model_dir, ids)
    ours = reference_logits(model_dir, ids)
    assert ours.dtype == np.float64 and ours.shape == (N_TOKENS, 300)
    assert np.abs(expected).max() > 1.0  # the N(0, 0.08) init gives logits far from uniform
    assert np.abs(ours - expected).max() <= TOLERANCE


def test_window_settings_reach_the_reference(tiny_model) -> None:
    windows = {case: ModelConfig.from_file(tiny_model(**CASES[case])).layer_windows for case in CASES}
    assert windows["mistral-window-5"] == (5, 5)
    assert windows["qwen2-window-layer-1"] == (0, 5)
    assert windows["qwen2-window-disabled"] == (0, 0)


def test_bad_token_ids(tiny_model) -> None:
    with pytest.raises(InvalidTokenError, match="300"):
        reference_logits(tiny_model("llama"), [1, 300])
    with pytest.raises(InvalidTokenError):
        reference_logits(tiny_model("llama"), [-1])
    with pytest.raises(InvalidArgumentError, match="empty"):
        reference_logits(tiny_model("llama"), [])


def test_causal_window_mask() -> None:
    full = reference.causal_window_mask(5, 0)
    np.testing.assert_array_equal(full, np.tril(np.ones((5, 5), dtype=bool)))
    window = reference.causal_window_mask(5, 2)  # i - 2 < j <= i
    assert window[4].tolist() == [False, False, False, True, True]
    assert window[0].tolist() == [True, False, False, False, False]


# --- the tiny models are sensitive to the bugs these tests exist to catch ---------------------------


def _no_rotation(rope, rotary_dim, n_positions):
    return np.ones((n_positions, rotary_dim // 2), np.float32), np.zeros((n_positions, rotary_dim // 2), np.float32)


def _unscaled(rope: RopeConfig) -> RopeConfig:
    return RopeConfig(theta=rope.theta, rope_type="default")


_mask = reference.causal_window_mask
_rope_tables = reference.rope_tables

BUGS = {
    "no rope": ("llama", {"rope_tables": _no_rotation}),
    "rope pairs adjacent dims": ("llama", {"rotary_style": "interleaved"}),
    # (a uniform position shift would not show: attention scores depend only on relative positions)
    "llama3 scaling dropped": ("llama-rope-llama3", {"rope_tables": lambda r, d, n: _rope_tables(_unscaled(r), d, n)}),
    "linear scaling dropped": ("llama-rope-linear", {"rope_tables": lambda r, d, n: _rope_tables(_unscaled(r), d, n)}),
    "no causal mask": ("llama", {"causal_window_mask": lambda n, w: np.ones((n, n), dtype=bool)}),
    "window ignored": ("mistral-window-5", {"causal_window_mask": lambda n, w: _mask(n, 0)}),
    "window off by one": ("mistral-window-5", {"causal_window_mask": lambda n, w: _mask(n, w + 1 if w else 0)}),
    "window on every qwen2 layer": ("qwen2-window-layer-1", {"causal_window_mask": lambda n, w: _mask(n, 5)}),
}  # fmt: skip


@pytest.mark.parametrize("bug", list(BUGS))
def test_broken_reference_fails_the_tolerance(tiny_model, monkeypatch: pytest.MonkeyPatch, bug: str) -> None:
    case, patches = BUGS[bug]
    model_dir = tiny_model(**CASES[case])
    ids = token_ids()
    expected = hf_logits(model_dir, ids)
    assert np.abs(reference_logits(model_dir, ids) - expected).max() <= TOLERANCE
    for name, value in patches.items():
        monkeypatch.setattr(reference, name, value)
    error = np.abs(reference_logits(model_dir, ids) - expected).max()
    assert error > 100 * TOLERANCE, f"{bug}: error {error:.2e} is within reach of the tolerance"
