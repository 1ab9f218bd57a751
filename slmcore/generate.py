"""The generation loop: prefill, sample, decode; stop handling; UTF-8-safe streaming.

Works on any *session* (an object with `prefill(ids) -> logits[vocab]`, `decode(id) ->
logits[vocab]` and `max_seq_len`) and any *tokenizer* with `decode(ids, skip_special_tokens=...)`.

What ends up where (vLLM's conventions):
- `token_ids` holds every sampled token, including the EOS or stop token that ended generation
  and the tokens that spelled a stop string.
- `text` never contains that EOS/stop token's text nor the stop string: it is cut right before
  the stop string's first character. Text is decoded with skip_special_tokens=True.
- finish_reason is "stop" for EOS (unless ignore_eos), stop_token_ids and stop strings, and
  "length" when max_tokens tokens were generated without any of those (a stop on the last
  allowed token is still "stop").
- logprobs (when params.logprobs is not None) are one StepLogprobs per token in token_ids: the
  log-softmax of the raw logits (before penalties and temperature) for the chosen token and the
  params.logprobs most likely ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from slmcore.errors import ContextLengthError, InvalidArgumentError
from slmcore.sampling import Sampler, SamplingParams, token_logprobs

# Prompt tokens decoded in front of the generated ones, so that the first generated token is
# rendered in context (a SentencePiece decoder strips the leading space of a sequence's first
# word; inside a sentence it must stay). vLLM uses 5 as well.
PROMPT_CONTEXT_TOKENS = 5
REPLACEMENT_CHARACTER = "\ufffd"  # what decode() shows for an incomplete UTF-8 sequence


class Session(Protocol):
    """One sequence on a model: the generation loop's view of the engine."""

    max_seq_len: int

    def prefill(self, token_ids: list[int]) -> np.ndarray:
        """Start a fresh sequence with token_ids; return the last position's logits [vocab]."""

    def decode(self, token_id: int) -> np.ndarray:
        """Append one token; return its logits [vocab]."""


class Tokenizer(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str:
        """Text of token ids."""


# -- results -----------------------------------------------------------------------------------


@dataclass
class TokenLogprob:
    """A token and its log-probability under the raw model distribution."""

    token_id: int
    logprob: float
    text: str | None  # the token decoded alone (special tokens shown); None without a tokenizer


@dataclass
class StepLogprobs:
    """Log-probabilities of one generation step: the chosen token and the most likely ones."""

    chosen: TokenLogprob
    top: list[TokenLogprob]  # params.logprobs entries, most likely first (ties: smaller id first)


@dataclass
class Usage:
    """Token counts, as in OpenAI's responses."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class Timings:
    """Where the time went. Time spent by the consumer of a stream between chunks is not counted."""

    time_to_first_token_s: float  # prefill plus sampling the first token
    prefill_tokens_per_s: float  # prompt tokens / prefill time
    decode_tokens_per_s: float  # tokens after the first / time after the first (0.0 for one token)
    total_s: float


@dataclass
class Completion:
    """The result of generating from one prompt."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    logprobs: list[StepLogprobs] | None
    usage: Usage
    timings: Timings
    prompt_token_ids: list[int]


@dataclass
class StreamChunk:
    """One generated token: its text delta (possibly empty while text is held back), the token,
    its logprobs, and on the last chunk the finish reason."""

    text: str
    token_ids: list[int]
    logprobs: list[StepLogprobs] | None
    finish_reason: str | None


# -- public functions --------------------------------------------------------------------------


def stream_tokens(
    session: Session,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    tokenizer: Tokenizer | None = None,
    eos_token_ids: Iterable[int] = (),
) -> Iterator[StreamChunk]:
    """Generate from prompt_ids, one StreamChunk per token; arguments are checked before this
    returns, and nothing runs on the model until the first chunk is asked for."""
    return _Generation(session, prompt_ids, params, tokenizer, eos_token_ids).chunks()


def generate(
    session: Session,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    tokenizer: Tokenizer | None = None,
    eos_token_ids: Iterable[int] = (),
) -> Completion:
    """Generate from prompt_ids until a stop condition; returns the whole Completion."""
    run = _Generation(session, prompt_ids, params, tokenizer, eos_token_ids)
    text: list[str] = []
    token_ids: list[int] = []
    logprobs: list[StepLogprobs] | None = None if params.logprobs is None else []
    finish_reason = "length"
    for chunk in run.chunks():
        text.append(chunk.text)
        token_ids.extend(chunk.token_ids)
        if logprobs is not None and chunk.logprobs is not None:
            logprobs.extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            finish_reason = chunk.finish_reason
    n_prompt = len(run.prompt_ids)
    return Completion(
        text="".join(text),
        token_ids=token_ids,
        finish_reason=finish_reason,
        logprobs=logprobs,
        usage=Usage(n_prompt, len(token_ids), n_prompt + len(token_ids)),
        timings=run.timings,
        prompt_token_ids=list(run.prompt_ids),
    )


# -- the loop ----------------------------------------------------------------------------------


class _Generation:
    """One request: checked arguments, then `chunks()` runs it; `timings` is set at the end."""

    def __init__(
        self,
        session: Session,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        tokenizer: Tokenizer | None,
        eos_token_ids: Iterable[int],
    ) -> None:
        if not isinstance(params, SamplingParams):
            raise InvalidArgumentError(f"params must be a SamplingParams, got {type(params).__name__}")
        params.validate()  # fields may have been changed since construction
        self.prompt_ids = _token_list("prompt_ids", prompt_ids)
        if not self.prompt_ids:
            raise InvalidArgumentError("the prompt is empty: give at least one token")
        eos = [] if params.ignore_eos else _token_list("eos_token_ids", list(eos_token_ids))
        self.stop_token_ids = frozenset(eos) | frozenset(params.stop_token_ids)
        if params.stop and tokenizer is None:
            raise InvalidArgumentError(
                f"stop strings {params.stop!r} need a tokenizer to see text; pass one, or stop on token ids "
                "with stop_token_ids"
            )
        n, limit = len(self.prompt_ids), int(session.max_seq_len)
        if n + params.max_tokens > limit:
            fix = (
                f"lower max_tokens to at most {limit - n}" if n < limit else f"shorten the prompt below {limit} tokens"
            )
            raise ContextLengthError(
                f"the prompt has {n} tokens and max_tokens={params.max_tokens}: {n + params.max_tokens} tokens "
                f"do not fit in max_seq_len={limit}; {fix}, or load the model with a larger max_seq_len"
            )
        self.session = session
        self.params = params
        self.tokenizer = tokenizer
        self.timings = Timings(0.0, 0.0, 0.0, 0.0)

    def chunks(self) -> Iterator[StreamChunk]:
        params, session, tokenizer = self.params, self.session, self.tokenizer
        sampler = Sampler(params, self.prompt_ids)
        detokenizer = IncrementalDetokenizer(tokenizer, self.prompt_ids) if tokenizer is not None else None
        stops = _StopStrings(params.stop)
        text = ""  # generated text so far (complete characters), before any stop-string cut
        emitted = 0  # how much of it the chunks carried
        busy = 0.0  # time spent in here, not in the consumer
        resumed = time.perf_counter()
        logits = session.prefill(self.prompt_ids)
        prefill_s = time.perf_counter() - resumed
        first_token_s = 0.0

        for step in range(params.max_tokens):
            token = sampler.sample(logits)
            sampler.append(token)
            if step == 0:
                first_token_s = time.perf_counter() - resumed
            step_logprobs = None if params.logprobs is None else [self._logprobs(logits, token)]

            finish = "stop" if token in self.stop_token_ids else None
            if detokenizer is not None:
                before = len(text)
                if finish is None:  # the EOS or stop token's own text is never shown
                    text += detokenizer.add(token)
                if finish is None and step == params.max_tokens - 1:
                    finish = "length"
                if finish is not None:
                    text += detokenizer.flush()  # a trailing incomplete character, as decode() shows it
                cut = stops.find(text, before)
                if cut is not None:
                    text, finish = text[:cut], "stop"
            elif finish is None and step == params.max_tokens - 1:
                finish = "length"

            # Hold back a suffix that may be the start of a stop string, until it is decided.
            ready = len(text) if finish is not None else len(text) - stops.held_back(text)
            delta, emitted = text[emitted:ready], max(emitted, ready)
            chunk = StreamChunk(delta, [token], step_logprobs, finish)
            if finish is not None:
                busy += time.perf_counter() - resumed
                self._set_timings(prefill_s, first_token_s, busy, step + 1)
                yield chunk
                return
            busy += time.perf_counter() - resumed
            yield chunk
            resumed = time.perf_counter()
            logits = session.decode(token)

    def _logprobs(self, logits: np.ndarray, token: int) -> StepLogprobs:
        chosen, top = token_logprobs(logits, token, self.params.logprobs or 0)
        return StepLogprobs(
            chosen=TokenLogprob(token, chosen, self._token_text(token)),
            top=[TokenLogprob(i, lp, self._token_text(i)) for i, lp in top],
        )

    def _token_text(self, token: int) -> str | None:
        if self.tokenizer is None:
            return None
        return self.tokenizer.decode([token], skip_special_tokens=False)

    def _set_timings(self, prefill_s: float, first_token_s: float, total_s: float, n_tokens: int) -> None:
        decode_s = total_s - first_token_s
        self.timings = Timings(
            time_to_first_token_s=first_token_s,
            prefill_tokens_per_s=len(self.prompt_ids) / prefill_s if prefill_s > 0 else 0.0,
            decode_tokens_per_s=(n_tokens - 1) / decode_s if n_tokens > 1 and decode_s > 0 else 0.0,
            total_s=total_s,
        )


def _token_list(name: str, ids: Any) -> list[int]:
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise InvalidArgumentError(f"{name} must be a 1-D sequence of integers")
        return [int(t) for t in ids]
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise InvalidArgumentError(f"{name} must be a list of token ids (integers), got {type(ids).__name__}")
    for i, t in enumerate(ids):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise InvalidArgumentError(f"{name}[{i}] must be an integer token id, got {t!r}")
    return [int(t) for t in ids]


# -- text --------------------------------------------------------------------------------------


class IncrementalDetokenizer:
    """Text of generated tokens, released in complete characters only.

    Decoding tokens one at a time breaks characters that byte-level BPE or SentencePiece byte
    fallback split across tokens, and loses the spaces some decoders add between tokens. So each
    step decodes a short window: the tokens already shown (from `prefix_offset`) plus the new ones
    (from `read_offset`), and releases what the new ones add, unless the window's text still ends
    in U+FFFD (an incomplete character: wait for the next token). vLLM does the same.

    The released text adds up to the decoded text whenever the generated bytes are valid UTF-8.
    When they are not, a SentencePiece ByteFallback decoder turns a whole run of byte tokens into
    one U+FFFD per byte as soon as one byte in the run is invalid, and characters released
    earlier in that run cannot be taken back (byte-level BPE decoders do not have this problem).
    """

    def __init__(self, tokenizer: Tokenizer, prompt_ids: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids[-PROMPT_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._prefix_text = self._decode(self._ids)

    def add(self, token_id: int) -> str:
        """Append one token; return the new complete text (possibly "")."""
        self._ids.append(token_id)
        text = self._decode(self._ids[self._prefix_offset :])
        if len(text) <= len(self._prefix_text) or text.endswith(REPLACEMENT_CHARACTER):
            return ""
        delta = text[len(self._prefix_text) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        self._prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        return delta

    def flush(self) -> str:
        """The text still held back (an incomplete character shows as U+FFFD, as in decode())."""
        if self._read_offset == len(self._ids):
            return ""
        text = self._decode(self._ids[self._prefix_offset :])
        self._read_offset = len(self._ids)
        return text[len(self._prefix_text) :]

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True) if ids else ""


class _StopStrings:
    """Finds stop strings in the generated text and says how much text to hold back."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = list(stops)
        self._longest = max((len(s) for s in stops), default=0)

    def find(self, text: str, new_from: int) -> int | None:
        """Where the earliest stop string starts, searching only where text from new_from on
        could complete one; None if there is none."""
        if not self._stops:
            return None
        start = max(0, new_from - self._longest + 1)
        found = [i for i in (text.find(s, start) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def held_back(self, text: str) -> int:
        """Length of the longest end of text that is the start of some stop string."""
        for length in range(min(self._longest - 1, len(text)), 0, -1):
            tail = text[-length:]
            if any(s.startswith(tail) for s in self._stops):
                return length
        return 0


__all__ = [
    "Completion",
    "StepLogprobs",
    "StreamChunk",
    "Timings",
    "TokenLogprob",
    "Usage",
    "generate",
    "stream_tokens",
    "IncrementalDetokenizer",
]
