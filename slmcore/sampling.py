"""SamplingParams (vLLM's names) and the per-request sampler: penalties, temperature, top-k,
top-p, min-p and the draw, in numpy.

The order of operations is vLLM's: penalties on the raw logits, then (unless greedy) temperature,
top-k, top-p, min-p, and a draw from what is left. Greedy decoding is the argmax of the penalised
logits. Logprobs are the log-softmax of the raw logits, before penalties and temperature (vLLM's
default "raw_logprobs").

Per-step cost matters (a decode step of a small model takes a few milliseconds), so nothing here
sorts the whole vocabulary when a bound lets it look at fewer tokens, and nothing runs a cumulative
sum over the whole vocabulary (numpy's cumsum is not vectorised): sums go through blocks.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from slmcore.errors import InvalidArgumentError, InvalidTokenError, NumericalError

# Temperatures below this are greedy decoding: vLLM's _SAMPLING_EPS. Dividing by a smaller
# temperature only pushes every probability but the largest to zero.
GREEDY_BELOW_TEMPERATURE = 1e-5
MAX_LOGPROBS = 20
PENALTY_RANGE = 2.0  # presence and frequency penalties live in [-2, 2] (OpenAI and vLLM)

_BLOCK = 1024  # block length for two-level cumulative sums


# -- parameters ------------------------------------------------------------------------------


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass
class SamplingParams:
    """How to pick each next token; vLLM's names and defaults (except max_tokens=256).

    temperature=0 is greedy decoding; top_k=-1 (or 0) and top_p=1 switch those filters off.
    `stop` and `stop_token_ids` are normalised to lists, as vLLM does.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    max_tokens: int = 256
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (InvalidArgumentError names the field, the value and the range)."""
        self.temperature = _real_in_range("temperature", self.temperature, 0.0, math.inf, "temperature >= 0")
        self.top_p = _real_in_range("top_p", self.top_p, 0.0, 1.0, "0 < top_p <= 1", low_open=True)
        self.min_p = _real_in_range("min_p", self.min_p, 0.0, 1.0, "0 <= min_p <= 1")
        self.repetition_penalty = _real_in_range(
            "repetition_penalty", self.repetition_penalty, 0.0, math.inf, "repetition_penalty > 0", low_open=True
        )
        for name in ("presence_penalty", "frequency_penalty"):
            value = _real_in_range(name, getattr(self, name), -PENALTY_RANGE, PENALTY_RANGE, f"-2 <= {name} <= 2")
            setattr(self, name, value)

        if not _is_int(self.top_k) or self.top_k < -1:
            raise InvalidArgumentError(
                f"SamplingParams.top_k={self.top_k!r} is invalid: use -1 (or 0) for no top-k, or an integer >= 1"
            )
        self.top_k = int(self.top_k)
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise InvalidArgumentError(
                f"SamplingParams.max_tokens={self.max_tokens!r} is invalid: must be an integer >= 1"
            )
        self.max_tokens = int(self.max_tokens)
        if self.seed is not None:
            if not _is_int(self.seed) or self.seed < 0:
                raise InvalidArgumentError(
                    f"SamplingParams.seed={self.seed!r} is invalid: must be None or an integer >= 0"
                )
            self.seed = int(self.seed)
        if self.logprobs is not None:
            if not _is_int(self.logprobs) or not 0 <= self.logprobs <= MAX_LOGPROBS:
                raise InvalidArgumentError(
                    f"SamplingParams.logprobs={self.logprobs!r} is invalid: must be None or an integer "
                    f"in [0, {MAX_LOGPROBS}] (how many top tokens to return per step)"
                )
            self.logprobs = int(self.logprobs)
        if not isinstance(self.ignore_eos, (bool, np.bool_)):
            raise InvalidArgumentError(
                f"SamplingParams.ignore_eos={self.ignore_eos!r} is invalid: must be True or False"
            )
        self.ignore_eos = bool(self.ignore_eos)
        self.stop = _stop_strings(self.stop)
        self.stop_token_ids = _stop_token_ids(self.stop_token_ids)

    @property
    def greedy(self) -> bool:
        """True when the temperature makes sampling an argmax."""
        return self.temperature < GREEDY_BELOW_TEMPERATURE


def _real_in_range(name: str, value: Any, low: float, high: float, allowed: str, low_open: bool = False) -> float:
    if not _is_real(value):
        raise InvalidArgumentError(f"SamplingParams.{name}={value!r} is invalid: must be a number ({allowed})")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        raise InvalidArgumentError(f"SamplingParams.{name}={value!r} is out of range: {allowed}")
    return value


def _stop_strings(stop: Any) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)):
        raise InvalidArgumentError(
            f"SamplingParams.stop={stop!r} is invalid: must be None, a string or a list of strings"
        )
    for s in items:
        if not isinstance(s, str) or not s:
            raise InvalidArgumentError(f"SamplingParams.stop contains {s!r}: every stop string must be a non-empty str")
    return list(items)


def _stop_token_ids(ids: Any) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, np.ndarray)):
        raise InvalidArgumentError(
            f"SamplingParams.stop_token_ids={ids!r} is invalid: must be None or a list of token ids"
        )
    for t in ids:
        if not _is_int(t) or t < 0:
            raise InvalidArgumentError(f"SamplingParams.stop_token_ids contains {t!r}: token ids are integers >= 0")
    return [int(t) for t in ids]


# -- the sampler -------------------------------------------------------------------------------


class _TokenCounts:
    """Distinct token ids and how often each occurred, as arrays that grow by doubling."""

    def __init__(self) -> None:
        self._slot: dict[int, int] = {}
        self._ids = np.empty(64, dtype=np.int64)
        self._counts = np.empty(64, dtype=np.float32)

    def add(self, token_id: int) -> None:
        slot = self._slot.get(token_id)
        if slot is not None:
            self._counts[slot] += 1
            return
        slot = len(self._slot)
        if slot == self._ids.size:
            self._ids = np.concatenate([self._ids, np.empty_like(self._ids)])
            self._counts = np.concatenate([self._counts, np.empty_like(self._counts)])
        self._slot[token_id] = slot
        self._ids[slot] = token_id
        self._counts[slot] = 1

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: len(self._slot)]

    @property
    def counts(self) -> np.ndarray:
        return self._counts[: len(self._slot)]


class Sampler:
    """Picks the next token of one request from one step's logits.

    Holds the request's random generator (`np.random.default_rng(seed)`) and the tokens seen so
    far for the penalties. `sample` draws without recording; `append` records the token that was
    actually appended to the sequence.
    """

    def __init__(self, params: SamplingParams, prompt_token_ids: Iterable[int] = ()) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)
        self._top_k = params.top_k if params.top_k > 0 else 0
        self._inverse_temperature = 0.0 if params.greedy else 1.0 / params.temperature
        self._repetition = params.repetition_penalty != 1.0
        self._additive = params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        self._seen = _TokenCounts()  # prompt and generated tokens (repetition penalty)
        self._generated = _TokenCounts()  # generated tokens only (presence and frequency)
        for t in prompt_token_ids:
            self._seen.add(int(t))
        self._vocab_size: int | None = None
        self._buffer = np.empty(0, dtype=np.float32)

    def append(self, token_id: int) -> None:
        """Record a token appended to the sequence (for the penalties)."""
        token_id = int(token_id)
        if self._vocab_size is not None and not 0 <= token_id < self._vocab_size:
            raise InvalidTokenError(f"token id {token_id} is outside the vocabulary of {self._vocab_size}")
        self._seen.add(token_id)
        self._generated.add(token_id)

    # -- the pipeline -------------------------------------------------------------------------

    def penalised(self, logits: np.ndarray) -> np.ndarray:
        """The logits after repetition, presence and frequency penalties (vLLM's definitions)."""
        x = self._as_logits(logits)
        if not (self._repetition or self._additive):
            return x
        x = x.copy()
        # Penalised values are computed in float64 and clipped to float32's finite range, so that
        # a penalty never turns a finite logit into an infinite one.
        if self._repetition:
            # Over prompt and generated tokens: positive logits divided, the others multiplied.
            ids = self._seen.ids
            seen = x[ids].astype(np.float64)
            penalty = self.params.repetition_penalty
            x[ids] = _to_float32(np.where(seen > 0, seen / penalty, seen * penalty))
        if self._additive:
            # Over generated tokens only: logit -= presence * (count > 0) + frequency * count.
            ids = self._generated.ids
            counts = self._generated.counts.astype(np.float64)
            shift = self.params.presence_penalty + self.params.frequency_penalty * counts
            x[ids] = _to_float32(x[ids] - shift)
        return x

    def sample(self, logits: np.ndarray) -> int:
        """The next token for these logits (raw model output [vocab]); uses the request's RNG."""
        x = self.penalised(logits)
        if self.params.greedy:
            return _argmax(x)
        ids, weights = self._filtered_weights(x)
        i = _draw(weights, self._rng.random())
        return int(ids[i]) if ids is not None else i

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The distribution `sample` draws from, as float64 [vocab] (one-hot when greedy)."""
        x = self.penalised(logits)
        p = np.zeros(x.size, dtype=np.float64)
        if self.params.greedy:
            p[_argmax(x)] = 1.0
            return p
        ids, weights = self._filtered_weights(x)
        w = weights.astype(np.float64)
        if ids is None:
            p[:] = w
        else:
            p[ids] = w
        return p / w.sum()

    def _filtered_weights(self, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Unnormalised probabilities after temperature, top-k, top-p and min-p.

        Returns (token ids, weights) over the top-k candidates, or (None, weights[vocab]) when
        there is no top-k. The largest weight is exactly 1 (exp(0)); dropped tokens weigh 0.
        """
        top = x.max()
        if not np.isfinite(top):
            raise NumericalError("the logits contain NaN or Inf, or no finite value")
        ids = None
        values = x
        if 0 < self._top_k < x.size:
            # Every token tied with the k-th largest logit stays in (vLLM compares values).
            ids = np.flatnonzero(x >= _kth_largest(x, self._top_k))
            values = x[ids]
        weights = self._scratch(values.size)
        # softmax(x / T) up to its normaliser: exp((x - max) / T), in this order so that
        # extreme logits cannot overflow.
        with np.errstate(over="ignore"):  # -3e38 - 3e38 -> -inf -> weight 0, as intended
            np.subtract(values, top, out=weights)
            if self._inverse_temperature != 1.0:
                weights *= self._inverse_temperature
        np.exp(weights, out=weights)
        # Masks multiply: np.putmask and np.where are ~20x slower on scattered masks.
        if self.params.top_p < 1.0:
            np.multiply(weights, weights >= _nucleus_floor(weights, self.params.top_p), out=weights)
        if self.params.min_p > 0.0:
            # p >= min_p * p_max  <=>  weight >= min_p, since the largest weight is 1. Renormalising
            # after top-k/top-p keeps the ratio to p_max, so the order does not matter here.
            np.multiply(weights, weights >= self.params.min_p, out=weights)
        return ids, weights

    def _as_logits(self, logits: np.ndarray) -> np.ndarray:
        x = np.asarray(logits)
        if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
            raise InvalidArgumentError(f"logits must be a non-empty 1-D float array, got shape {x.shape} {x.dtype}")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if self._vocab_size is None:
            self._vocab_size = x.size
            seen = self._seen.ids
            if seen.size and (seen.min() < 0 or seen.max() >= x.size):
                bad = int(seen.min() if seen.min() < 0 else seen.max())
                raise InvalidTokenError(f"token id {bad} is outside the vocabulary of {x.size}")
        elif x.size != self._vocab_size:
            raise InvalidArgumentError(f"logits changed size from {self._vocab_size} to {x.size} within one request")
        return x

    def _scratch(self, n: int) -> np.ndarray:
        # One buffer per request: allocating a fresh megabyte each step costs page faults.
        if self._buffer.size < n:
            self._buffer = np.empty(n, dtype=np.float32)
        return self._buffer[:n]


# -- helpers -----------------------------------------------------------------------------------


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _to_float32(values: np.ndarray) -> np.ndarray:
    return np.clip(values, -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)


def _argmax(x: np.ndarray) -> int:
    i = int(np.argmax(x))  # the first of tied maxima, and the first NaN if there is one
    if not np.isfinite(x[i]):
        raise NumericalError("the logits contain NaN or Inf, or no finite value")
    return i


def _kth_largest(x: np.ndarray, k: int) -> Any:
    """The k-th largest value of x (1 <= k <= x.size) without partitioning all of x.

    The k-th largest value of any subset is a lower bound for the k-th largest of x, so a strided
    sample gives a bound that leaves about stride * k candidates to partition.
    """
    n = x.size
    stride = n // max(16 * k, 4096)
    candidates = x
    if stride > 1:
        sample = x[::stride]
        bound = np.partition(sample, sample.size - k)[sample.size - k]
        candidates = x[x >= bound]
    return np.partition(candidates, candidates.size - k)[candidates.size - k]


def _nucleus_floor(weights: np.ndarray, top_p: float) -> Any:
    """The smallest weight in the nucleus: the fewest largest weights whose share of the total
    reaches top_p (at least one). Weights tied with it are kept too, so the result does not
    depend on how a sort orders ties."""
    n = weights.size
    total = _total(weights)
    target = top_p * total
    # All weights below (1 - top_p) * total / n together are less than (1 - top_p) * total, so the
    # weights above that bound already reach the target: the nucleus lies among them. For the
    # peaked distributions of language models that leaves a few thousand weights to sort.
    candidates = weights >= (1.0 - top_p) * total / n
    if np.count_nonzero(candidates) < n // 8:
        window = np.sort(weights[np.flatnonzero(candidates)])[::-1]
    else:  # a flat distribution: sorting everything is as cheap as extracting most of it
        window = np.sort(weights)[::-1]
    return window[_first_index_reaching(window, target)]


def _total(values: np.ndarray) -> float:
    """Sum as a Python float: float32 pairwise sums of blocks, added in float64."""
    return float(_block_sums(values)[1].sum())


def _block_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start index, sum) of consecutive blocks of _BLOCK values (the last may be short)."""
    n_full = values.size // _BLOCK
    # float32 pairwise sums within a block (relative error ~1e-7), float64 across blocks: twice
    # as fast as converting every value to float64.
    sums = values[: n_full * _BLOCK].reshape(n_full, _BLOCK).sum(axis=1).astype(np.float64)
    starts = np.arange(0, values.size, _BLOCK)
    if values.size > n_full * _BLOCK:
        sums = np.append(sums, np.float64(values[n_full * _BLOCK :].sum()))
    return starts, sums


def _first_index_reaching(values: np.ndarray, target: float) -> int:
    """The first i with values[0] + ... + values[i] >= target (the last index if none)."""
    n = values.size
    if n <= 4 * _BLOCK:
        i = int(np.searchsorted(np.cumsum(values, dtype=np.float64), target, side="left"))
        return min(i, n - 1)
    starts, sums = _block_sums(values)
    cumulative = np.cumsum(sums)
    b = min(int(np.searchsorted(cumulative, target, side="left")), sums.size - 1)
    before = cumulative[b - 1] if b else 0.0
    block = values[starts[b] : starts[b] + _BLOCK]
    i = int(np.searchsorted(before + np.cumsum(block, dtype=np.float64), target, side="left"))
    return min(starts[b] + i, n - 1)


def _draw(weights: np.ndarray, u: float) -> int:
    """Inverse-CDF draw of an index with probability weights[i] / sum(weights), u in [0, 1)."""
    if weights.size <= 4 * _BLOCK:
        return _draw_in(weights, u * float(np.cumsum(weights, dtype=np.float64)[-1]), 0)
    starts, sums = _block_sums(weights)
    cumulative = np.cumsum(sums)
    target = u * cumulative[-1]
    b = int(np.searchsorted(cumulative, target, side="right"))
    if b >= sums.size:  # rounding put the target at the end: the last block with weight
        b = int(np.flatnonzero(sums > 0)[-1])
    before = cumulative[b - 1] if b else 0.0
    return _draw_in(weights[starts[b] : starts[b] + _BLOCK], target - before, int(starts[b]))


def _draw_in(weights: np.ndarray, target: float, offset: int) -> int:
    # searchsorted(..., "right") lands on an index whose weight is positive, unless rounding puts
    # the target at or past the end: then take the last positive weight.
    i = int(np.searchsorted(np.cumsum(weights, dtype=np.float64), target, side="right"))
    if i >= weights.size or weights[i] <= 0:
        i = int(np.flatnonzero(weights > 0)[-1])
    return offset + i


def token_logprobs(logits: np.ndarray, token_id: int, top_n: int) -> tuple[float, list[tuple[int, float]]]:
    """Log-softmax of raw logits: (logprob of token_id, [(id, logprob)] of the top_n tokens,
    largest first, ties by smaller id)."""
    x = np.asarray(logits, dtype=np.float32)
    top = x.max()
    if not np.isfinite(top):
        raise NumericalError("the logits contain NaN or Inf, or no finite value")
    with np.errstate(over="ignore"):
        shifted = x - top
    np.exp(shifted, out=shifted)
    log_normaliser = float(top) + math.log(_total(shifted))
    chosen = float(x[token_id]) - log_normaliser
    if top_n <= 0:
        return chosen, []
    top_n = min(top_n, x.size)
    ids = np.flatnonzero(x >= _kth_largest(x, top_n))
    ids = ids[np.lexsort((ids, -x[ids]))][:top_n]
    return chosen, [(int(i), float(x[i]) - log_normaliser) for i in ids]


__all__ = ["SamplingParams", "Sampler", "token_logprobs", "GREEDY_BELOW_TEMPERATURE", "MAX_LOGPROBS"]
