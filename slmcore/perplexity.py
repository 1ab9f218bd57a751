"""Perplexity of a model over a long text, scored in fixed windows.

Convention (stated because perplexities are only comparable under the same one):
- The text is tokenized once, with llm.tokenizer.encode (so BOS only at the very start, exactly
  where the model's HF tokenizer puts one); token ids may be given instead.
- stride = window (the default): the ids are cut into consecutive, non-overlapping windows of
  `window` tokens (the last may be shorter). Each window is a fresh sequence (llm.logits), and
  every token of it but the first is scored given the tokens before it in that window; the first
  token of each window is never scored (it has no context there).
- stride < window (sliding windows, as in transformers' "Perplexity of fixed-length models"):
  window k covers [k*stride, k*stride + window) and scores the tokens from max(the previous
  window's end, k*stride + 1) to its end, until a window reaches the last token. Every token from
  position 1 on is scored exactly once, and every one outside the first window with at least
  window - stride tokens of context.
- NLL is -log softmax(logits)[next token], computed in float64 from the float32 logits;
  ppl = exp(nll_sum / n_tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from slmcore.errors import InvalidArgumentError


@dataclass(frozen=True)
class PerplexityResult:
    """exp(nll_sum / n_tokens) over n_tokens scored tokens in n_windows windows."""

    ppl: float
    nll_sum: float
    n_tokens: int
    n_windows: int


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _token_ids(llm: Any, text_or_ids: Any) -> list[int]:
    if isinstance(text_or_ids, str):
        if not text_or_ids:
            raise InvalidArgumentError("the text is empty")
        return list(llm.tokenizer.encode(text_or_ids))
    if isinstance(text_or_ids, np.ndarray):
        if text_or_ids.ndim != 1 or not np.issubdtype(text_or_ids.dtype, np.integer):
            raise InvalidArgumentError("token ids must be a 1-D sequence of integers")
        return [int(t) for t in text_or_ids]
    if isinstance(text_or_ids, (bytes, bytearray)) or not isinstance(text_or_ids, Sequence):
        raise InvalidArgumentError(f"expected a text (str) or a list of token ids, got {type(text_or_ids).__name__}")
    for i, t in enumerate(text_or_ids):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise InvalidArgumentError(f"token_ids[{i}] must be an integer, got {t!r}")
    return [int(t) for t in text_or_ids]


def windows(n_ids: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over n_ids tokens; see the module docstring."""
    spans = []
    scored_to = 1  # positions below this are scored already (position 0 never is)
    begin = 0
    while True:
        end = min(begin + window, n_ids)
        first = max(scored_to, begin + 1)
        if first < end:
            spans.append((begin, end, first))
            scored_to = end
        if end == n_ids:
            return spans
        begin += stride


def window_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum of -log softmax(logits[i])[targets[i]] over the rows, in float64."""
    x = logits.astype(np.float64)
    top = x.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(x - top).sum(axis=1))
    return float((log_norm - x[np.arange(len(targets)), targets]).sum())


def perplexity(llm: Any, text_or_ids: str | Sequence[int], window: int = 512, stride: int | None = None) -> PerplexityResult:
    """Perplexity of `llm` on a text (or token ids) in windows of `window` tokens (module docstring)."""
    window = _positive_int("window", window)
    if window < 2:
        raise InvalidArgumentError("window must be at least 2 tokens (the first token of a window is not scored)")
    max_seq_len = getattr(llm, "max_seq_len", None)
    if max_seq_len is not None and window > max_seq_len:
        raise InvalidArgumentError(f"window={window} exceeds the model's max_seq_len={max_seq_len}")
    stride = window if stride is None else _positive_int("stride", stride)
    if stride > window:
        raise InvalidArgumentError(f"stride={stride} is larger than window={window}: tokens would be skipped")
    ids = _token_ids(llm, text_or_ids)
    if len(ids) < 2:
        raise InvalidArgumentError(f"perplexity needs at least 2 tokens, got {len(ids)}")

    nll_sum, n_tokens = 0.0, 0
    spans = windows(len(ids), window, stride)
    for begin, end, first in spans:
        logits = llm.logits(ids[begin:end])
        # logits[i] predicts token begin + i + 1: positions first..end-1 use rows first-begin-1..end-begin-2.
        rows = logits[first - begin - 1 : end - begin - 1]
        nll_sum += window_nll(rows, np.asarray(ids[first:end]))
        n_tokens += end - first
    return PerplexityResult(ppl=math.exp(nll_sum / n_tokens), nll_sum=nll_sum, n_tokens=n_tokens, n_windows=len(spans))
