"""The generation loop on a tiny random model and on forced token sequences.

Tokenizers are built here with the `tokenizers` library: a byte-level BPE trained on text with
emoji and CJK (its merges split characters across tokens), and a SentencePiece-style BPE with
byte fallback (<0xNN> tokens) and Llama's decoder, which strips the leading space of a sequence.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import slmcore
from slmcore.errors import ContextLengthError, InvalidArgumentError
from slmcore.generate import Completion, StreamChunk, Usage, generate, stream_tokens
from slmcore.sampling import Sampler, SamplingParams

VOCAB = 300  # the tiny models' vocabulary (tests/tiny_models.py); both tokenizers have exactly this many
PROMPT = [5, 17, 250, 4, 99, 1, 77]

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a small corpus for a tiny tokenizer",
    "emoji 😀 and 🎉 and 👍🏽 appear here 😀😀",
    "中文字符 和 日本語 のテキスト 中文 中文",
    "café naïve résumé ünïcödé",
] * 20


# -- tokenizers --------------------------------------------------------------------------------


def byte_level_bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def sentencepiece_bpe() -> Tokenizer:
    """Llama-style: <unk> <s> </s>, 256 byte tokens <0x00>..<0xFF>, then pieces trained on ASCII
    text, so emoji and CJK fall back to bytes."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    ascii_corpus = [line for line in CORPUS if line.isascii()]
    base.train_from_iterator(ascii_corpus, trainers.BpeTrainer(vocab_size=42, special_tokens=["<unk>"],
                                                               show_progress=False))
    trained = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for piece, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        if piece != "<unk>":
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tokenizer


def gpt2_byte_alphabet() -> dict[int, str]:
    """Byte -> the character byte-level BPE uses for it (printable Latin-1 bytes stand for
    themselves, the others are shifted above U+0100 in byte order)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    mapping, shifted = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(0x100 + shifted)
            shifted += 1
    return mapping


def byte_tokens(tokenizer: Tokenizer, data: bytes) -> list[int]:
    """One token per byte: every multi-byte character is split across tokens."""
    if tokenizer.token_to_id("<0x41>") is not None:  # SentencePiece byte fallback
        return [tokenizer.token_to_id(f"<0x{b:02X}>") for b in data]
    alphabet = gpt2_byte_alphabet()
    return [tokenizer.token_to_id(alphabet[b]) for b in data]


@pytest.fixture(scope="module")
def tokenizers():
    built = {"byte-level": byte_level_bpe(), "sentencepiece": sentencepiece_bpe()}
    for tokenizer in built.values():
        assert tokenizer.get_vocab_size() == VOCAB
    return built


def expected_text(tokenizer: Tokenizer, prompt: list[int], generated: list[int]) -> str:
    """The text of generated tokens in the context of the prompt. For byte-level BPE this is
    decode(generated); Llama's decoder strips a leading space that in context belongs there."""
    return tokenizer.decode(prompt + generated)[len(tokenizer.decode(prompt)):]


# -- sessions ----------------------------------------------------------------------------------


class LLMSession:
    """The session protocol over LLM._prefill/_decode, counting calls. `banned` token ids get a
    very low logit (used to keep a random model from emitting invalid UTF-8 byte runs)."""

    def __init__(self, llm: slmcore.LLM, banned: range | None = None) -> None:
        self.llm = llm
        self.max_seq_len = llm.max_seq_len
        self.prefill_calls = 0
        self.decode_calls = 0
        self.banned = banned

    def prefill(self, token_ids):
        self.prefill_calls += 1
        return self._ban(self.llm._prefill(token_ids))

    def decode(self, token_id):
        self.decode_calls += 1
        return self._ban(self.llm._decode(token_id))

    def _ban(self, logits):
        if self.banned is not None:
            logits = logits.copy()
            logits[self.banned.start : self.banned.stop] = -1e4
        return logits


class ForcedSession:
    """Logits whose maximum is the next token of a fixed sequence (and still a proper
    distribution for sampling: other tokens get logit 0, the forced one 30)."""

    def __init__(self, forced: list[int], vocab_size: int = VOCAB, max_seq_len: int = 512) -> None:
        self.forced = list(forced)
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.prefill_calls = 0
        self.fed: list[int] = []

    def prefill(self, token_ids):
        self.prefill_calls += 1
        self.fed = []
        return self._logits()

    def decode(self, token_id):
        self.fed.append(token_id)
        return self._logits()

    def _logits(self):
        logits = np.zeros(self.vocab_size, dtype=np.float32)
        logits[self.forced[len(self.fed)]] = 30.0
        return logits


@pytest.fixture(scope="module")
def llm(tiny_model):
    with slmcore.LLM(tiny_model("llama"), threads=1) as model:
        yield model


def greedy_reference(llm: slmcore.LLM, prompt: list[int], n: int) -> list[int]:
    """argmax over full-sequence logits, one token at a time."""
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(np.argmax(llm.logits(ids)[-1])))
    return ids[len(prompt):]


def collect(chunks) -> list[StreamChunk]:
    chunks = list(chunks)
    assert all(len(c.token_ids) == 1 for c in chunks)
    assert all(c.finish_reason is None for c in chunks[:-1]) and chunks[-1].finish_reason is not None
    return chunks


def log_softmax64(logits) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


# -- the loop on the tiny model ----------------------------------------------------------------


def test_greedy_matches_reference_loop(llm):
    session = LLMSession(llm)
    out = generate(session, PROMPT, SamplingParams(temperature=0, max_tokens=24, ignore_eos=True))
    assert out.token_ids == greedy_reference(llm, PROMPT, 24)
    assert out.finish_reason == "length"
    assert out.text == "" and out.logprobs is None  # no tokenizer, no logprobs asked for
    assert out.prompt_token_ids == PROMPT
    assert (session.prefill_calls, session.decode_calls) == (1, 23)  # the last token is never fed


def test_sampling_follows_the_sampler_and_seed(llm):
    params = SamplingParams(temperature=0.9, top_p=0.95, top_k=40, repetition_penalty=1.2, presence_penalty=0.3,
                            frequency_penalty=0.2, seed=11, max_tokens=16, ignore_eos=True)
    out = generate(LLMSession(llm), PROMPT, params)
    # the same draws from a loop over full-sequence logits with the same sampler state
    sampler, ids = Sampler(params, PROMPT), list(PROMPT)
    for _ in range(16):
        token = sampler.sample(llm.logits(ids)[-1])
        sampler.append(token)
        ids.append(token)
    assert out.token_ids == ids[len(PROMPT):]
    again = generate(LLMSession(llm), PROMPT, params)
    assert again.token_ids == out.token_ids
    params.seed = 12
    assert generate(LLMSession(llm), PROMPT, params).token_ids != out.token_ids


def test_max_tokens_and_usage(llm):
    out = generate(LLMSession(llm), PROMPT, SamplingParams(max_tokens=7, seed=0, ignore_eos=True))
    assert len(out.token_ids) == 7 and out.finish_reason == "length"
    assert out.usage == Usage(len(PROMPT), 7, len(PROMPT) + 7)
    one = generate(LLMSession(llm), PROMPT, SamplingParams(max_tokens=1, seed=0))
    assert len(one.token_ids) == 1 and one.usage.total_tokens == len(PROMPT) + 1


def test_eos_and_stop_token_ids(llm, tokenizers):
    tokenizer = tokenizers["byte-level"]
    free = greedy_reference(llm, PROMPT, 20)
    # the first token whose first occurrence is at least 3 tokens in
    j = next(i for i, t in enumerate(free) if i >= 3 and t not in free[:i])
    stopper = free[j]
    greedy = SamplingParams(temperature=0, max_tokens=20)

    out = generate(LLMSession(llm), PROMPT, greedy, tokenizer, eos_token_ids=[stopper, 299 if stopper != 299 else 298])
    assert out.token_ids == free[: j + 1]  # the EOS token is in token_ids (vLLM)...
    assert out.finish_reason == "stop"
    assert out.text == tokenizer.decode(free[:j])  # ...but its text is not
    assert out.usage.completion_tokens == j + 1

    ignored = generate(LLMSession(llm), PROMPT, SamplingParams(temperature=0, max_tokens=20, ignore_eos=True),
                       tokenizer, eos_token_ids=[stopper])
    assert ignored.token_ids == free and ignored.finish_reason == "length"
    assert ignored.text == tokenizer.decode(free)

    # stop_token_ids stop even with ignore_eos, and their text is left out too
    by_id = generate(LLMSession(llm), PROMPT,
                     SamplingParams(temperature=0, max_tokens=20, ignore_eos=True, stop_token_ids=[stopper]),
                     tokenizer, eos_token_ids=[free[0]])
    assert by_id.token_ids == free[: j + 1] and by_id.finish_reason == "stop"
    assert by_id.text == tokenizer.decode(free[:j])

    # a stop on the last allowed token is still "stop"
    last = generate(LLMSession(llm), PROMPT, SamplingParams(temperature=0, max_tokens=j + 1), eos_token_ids=[stopper])
    assert last.finish_reason == "stop" and len(last.token_ids) == j + 1


@pytest.mark.parametrize("kind", ["byte-level", "sentencepiece"])
def test_stop_string_spanning_tokens(llm, tokenizers, kind):
    tokenizer = tokenizers[kind]
    params = dict(temperature=1.0, seed=5, ignore_eos=True)
    # A random model emits random byte tokens. Byte-level BPE decodes invalid UTF-8 the same in
    # any window; SentencePiece's ByteFallback turns a whole run of byte tokens into U+FFFD once
    # one byte is invalid, which a stream cannot take back: keep that model to whole pieces.
    session = (lambda: LLMSession(llm, banned=range(3, 259))) if kind == "sentencepiece" else (lambda: LLMSession(llm))
    free = generate(session(), PROMPT, SamplingParams(**params, max_tokens=40), tokenizer)
    ids, text = free.token_ids, free.text
    assert text == expected_text(tokenizer, PROMPT, ids)
    # A boundary b between token i-1 and token i where both sides are whole characters; the stop
    # string takes two characters before b and one after, and occurs first there.
    prefix = [expected_text(tokenizer, PROMPT, ids[:i]) for i in range(len(ids) + 1)]
    case = None
    for i in range(1, len(ids)):
        b = len(prefix[i])
        whole = text.startswith(prefix[i]) and text.startswith(prefix[i + 1]) and len(prefix[i + 1]) > b
        if b >= 3 and whole and "\ufffd" not in text[b - 2 : b + 1] and text.find(text[b - 2 : b + 1]) == b - 2:
            case = i, b
            break
    assert case is not None, f"no usable token boundary in {text!r}"
    i, b = case
    stop = text[b - 2 : b + 1]

    out = generate(session(), PROMPT, SamplingParams(**params, max_tokens=40, stop=["never there", stop]), tokenizer)
    assert out.finish_reason == "stop"
    assert out.text == text[: b - 2]
    assert out.token_ids == ids[: i + 1]  # the tokens that spelled the stop string stay in token_ids

    chunks = collect(stream_tokens(session(), PROMPT, SamplingParams(**params, max_tokens=40, stop=stop), tokenizer))
    assert "".join(c.text for c in chunks) == out.text
    assert [c.token_ids[0] for c in chunks] == out.token_ids
    # after token i-1 the text ends with the stop string's first two characters: held back
    assert len("".join(c.text for c in chunks[:i])) <= b - 2


def test_stream_equals_generate(llm, tokenizers):
    tokenizer = tokenizers["byte-level"]
    params = SamplingParams(temperature=0.8, seed=21, max_tokens=30, ignore_eos=True, logprobs=2)
    whole = generate(LLMSession(llm), PROMPT, params, tokenizer)
    chunks = collect(stream_tokens(LLMSession(llm), PROMPT, params, tokenizer))
    assert "".join(c.text for c in chunks) == whole.text == tokenizer.decode(whole.token_ids)
    assert [t for c in chunks for t in c.token_ids] == whole.token_ids
    assert [lp for c in chunks for lp in c.logprobs] == whole.logprobs
    assert chunks[-1].finish_reason == whole.finish_reason == "length"


def test_stream_is_lazy_and_checks_eagerly(llm):
    session = LLMSession(llm)
    stream = stream_tokens(session, PROMPT, SamplingParams(max_tokens=3, seed=0))
    assert session.prefill_calls == 0
    next(stream)
    assert session.prefill_calls == 1
    with pytest.raises(InvalidArgumentError):
        stream_tokens(session, [], SamplingParams())  # raised by the call, not by iterating


def test_context_length_checked_before_compute(tiny_model):
    with slmcore.LLM(tiny_model("llama"), max_seq_len=16) as small:
        session = LLMSession(small)
        prompt = list(range(10))
        with pytest.raises(ContextLengthError) as info:
            generate(session, prompt, SamplingParams(max_tokens=7))
        message = str(info.value)
        assert "10" in message and "max_tokens=7" in message and "17" in message and "16" in message
        assert "at most 6" in message  # what to do
        with pytest.raises(ContextLengthError, match="shorten the prompt"):
            stream_tokens(session, list(range(16)), SamplingParams(max_tokens=1))
        assert session.prefill_calls == 0
        # exactly full is fine
        out = generate(session, prompt, SamplingParams(max_tokens=6, ignore_eos=True, seed=1))
        assert len(out.token_ids) == 6


def test_timings(llm):
    out = generate(LLMSession(llm), PROMPT, SamplingParams(max_tokens=12, ignore_eos=True, seed=0))
    t = out.timings
    assert t.time_to_first_token_s > 0 and t.prefill_tokens_per_s > 0 and t.decode_tokens_per_s > 0
    assert t.total_s >= t.time_to_first_token_s
    # tokens after the first, over the time after the first
    assert t.decode_tokens_per_s == pytest.approx(11 / (t.total_s - t.time_to_first_token_s))
    one = generate(LLMSession(llm), PROMPT, SamplingParams(max_tokens=1, seed=0))
    assert one.timings.decode_tokens_per_s == 0.0 and one.timings.time_to_first_token_s > 0


@pytest.mark.parametrize("top_n", [0, 4])
def test_logprobs_are_log_softmax_of_raw_logits(llm, tokenizers, top_n):
    tokenizer = tokenizers["byte-level"]
    # penalties and temperature change the sampling, not the reported logprobs
    params = SamplingParams(temperature=0.7, repetition_penalty=1.5, seed=4, max_tokens=8, ignore_eos=True,
                            logprobs=top_n)
    out = generate(LLMSession(llm), PROMPT, params, tokenizer)
    assert len(out.logprobs) == len(out.token_ids) == 8
    for j, step in enumerate(out.logprobs):
        ref = log_softmax64(llm.logits(PROMPT + out.token_ids[:j])[-1])
        assert step.chosen.token_id == out.token_ids[j]
        assert step.chosen.logprob == pytest.approx(ref[out.token_ids[j]], abs=1e-5)
        assert step.chosen.text == tokenizer.decode([out.token_ids[j]], skip_special_tokens=False)
        order = np.argsort(-ref, kind="stable")[:top_n]
        assert [e.token_id for e in step.top] == order.tolist()
        np.testing.assert_allclose([e.logprob for e in step.top], ref[order], atol=1e-5)
        assert all(e.text == tokenizer.decode([e.token_id], skip_special_tokens=False) for e in step.top)
    without_tokenizer = generate(LLMSession(llm), PROMPT, params)
    assert without_tokenizer.logprobs[0].chosen.text is None


def test_bad_arguments(llm):
    session = LLMSession(llm)
    for bad in ([], "hello", [1.5], [True], None, [[1, 2]], np.zeros((2, 2), dtype=np.int64)):
        with pytest.raises(InvalidArgumentError):
            generate(session, bad, SamplingParams())
    with pytest.raises(InvalidArgumentError):
        generate(session, PROMPT, {"temperature": 0})
    with pytest.raises(InvalidArgumentError, match="tokenizer"):
        generate(session, PROMPT, SamplingParams(stop="x"))
    with pytest.raises(InvalidArgumentError):
        generate(session, PROMPT, SamplingParams(), eos_token_ids=["2"])
    params = SamplingParams()
    params.top_p = 0.0  # changed after construction: checked again
    with pytest.raises(InvalidArgumentError, match="top_p"):
        generate(session, PROMPT, params)
    with pytest.raises(slmcore.InvalidTokenError):
        generate(session, [VOCAB], SamplingParams())
    assert session.prefill_calls <= 1  # only the out-of-vocabulary prompt reached the model
    # numpy prompts are fine
    assert len(generate(session, np.array(PROMPT), SamplingParams(max_tokens=2, seed=0)).token_ids) <= 2


# -- text on forced sequences ------------------------------------------------------------------

UTF8_TEXT = "a😀b中文é!👍🏽x"


def run_forced(tokenizer, forced, prompt=(1,), **params):
    session = ForcedSession(forced)
    params.setdefault("max_tokens", len(forced))
    chunks = collect(stream_tokens(session, list(prompt), SamplingParams(temperature=0, **params), tokenizer))
    out = generate(ForcedSession(forced), list(prompt), SamplingParams(temperature=0, **params), tokenizer)
    assert "".join(c.text for c in chunks) == out.text
    return chunks, out


@pytest.mark.parametrize("kind", ["byte-level", "sentencepiece"])
def test_utf8_split_across_tokens(tokenizers, kind):
    tokenizer = tokenizers[kind]
    data = UTF8_TEXT.encode()
    sequences = {"one token per byte": byte_tokens(tokenizer, data)}
    natural = tokenizer.encode(UTF8_TEXT, add_special_tokens=False).ids
    sequences["tokenizer's own split"] = natural
    # mixed: single bytes, then the tokenizer's own tokens, then single bytes again
    sequences["mixed"] = (byte_tokens(tokenizer, "a😀".encode())
                          + tokenizer.encode("b中文é!", add_special_tokens=False).ids
                          + byte_tokens(tokenizer, "👍🏽x".encode()))
    for name, forced in sequences.items():
        chunks, out = run_forced(tokenizer, forced, prompt=[1, 2])
        assert out.token_ids == forced
        held = [c for c in chunks if c.text == ""]
        if name == "one token per byte":
            # every multi-byte character waited for its last byte
            assert len(held) == len(data) - len(UTF8_TEXT)
        for c in chunks:
            assert "\ufffd" not in c.text, (name, c)
        assert out.text == expected_text(tokenizer, [1, 2], forced)
        assert out.text.replace(" ", "") == UTF8_TEXT, name  # SentencePiece adds a space before "b"
    # the tokenizer's own split of this text does cut characters (for byte-level BPE)
    if kind == "byte-level":
        assert any("\ufffd" in tokenizer.decode([t]) for t in natural)


def test_utf8_truncated_by_max_tokens_or_stop_token(tokenizers):
    tokenizer = tokenizers["byte-level"]
    forced = byte_tokens(tokenizer, "ab😀".encode())
    # generation ends two bytes into the emoji: the final text is what decode() shows
    chunks, out = run_forced(tokenizer, forced, max_tokens=4)
    assert out.finish_reason == "length"
    assert out.text == tokenizer.decode(forced[:4]) == "ab\ufffd"
    assert [c.text for c in chunks] == ["a", "b", "", "\ufffd"]
    # a stop token in the middle of a character: the text so far is flushed the same way
    stop_id = tokenizer.token_to_id("<|im_end|>")
    chunks, out = run_forced(tokenizer, forced[:3] + [stop_id], stop_token_ids=[stop_id])
    assert out.finish_reason == "stop" and out.token_ids == forced[:3] + [stop_id]
    assert out.text == "ab\ufffd"


def test_stop_string_inside_multibyte_text(tokenizers):
    tokenizer = tokenizers["byte-level"]
    forced = byte_tokens(tokenizer, UTF8_TEXT.encode())
    _, out = run_forced(tokenizer, forced, stop="文é")
    assert out.text == "a😀b中" and out.finish_reason == "stop"
    assert out.token_ids == forced[: len("a😀b中文é".encode())]


def test_stop_string_holdback_chunk_by_chunk(tokenizers):
    tokenizer = tokenizers["byte-level"]
    forced = byte_tokens(tokenizer, b"Hel") + byte_tokens(tokenizer, b"lo Help!")
    chunks, out = run_forced(tokenizer, forced, stop=["Help!", "xyz"])
    # "H", "He", "Hel" could start "Help!": held until "l" arrives and "Hell" cannot; the second
    # "Help" is held until "!" completes the stop string, which is never shown
    assert [c.text for c in chunks] == ["", "", "", "Hell", "o", " ", "", "", "", "", ""]
    assert out.text == "Hello " and out.finish_reason == "stop"
    assert len(out.token_ids) == len(forced)


def test_stop_strings_earliest_wins_and_edge_cases(tokenizers):
    tokenizer = tokenizers["byte-level"]
    forced = byte_tokens(tokenizer, b"one two three")
    # both are completed by the last token; the earliest start wins, whatever the list order
    _, out = run_forced(tokenizer, forced, stop=["o three", "two three"])
    assert out.text == "one " and out.finish_reason == "stop" and out.token_ids == forced
    # a stop string completed by the first token(s): empty text
    natural = tokenizer.encode("one two", add_special_tokens=False).ids
    k = next(k for k in range(1, len(natural) + 1) if "on" in tokenizer.decode(natural[:k]))
    _, out = run_forced(tokenizer, natural, stop="on")
    assert out.text == "" and out.token_ids == natural[:k]
    # not found: everything, including a held-back prefix, comes out at the end
    _, out = run_forced(tokenizer, forced, stop="three!")
    assert out.text == "one two three" and out.finish_reason == "length"


def test_special_tokens_are_skipped_in_text(tokenizers):
    tokenizer = tokenizers["byte-level"]
    special = tokenizer.token_to_id("<|im_start|>")
    forced = byte_tokens(tokenizer, b"ab") + [special] + byte_tokens(tokenizer, b"cd")
    _, out = run_forced(tokenizer, forced, prompt=[special, 80])
    assert out.text == "abcd" and out.token_ids == forced


def test_sentencepiece_leading_space_kept_in_context(tokenizers):
    """Llama's decoder strips a sequence's leading space; generated text keeps it (vLLM)."""
    tokenizer = tokenizers["sentencepiece"]
    prompt = tokenizer.encode("the", add_special_tokens=False).ids
    forced = tokenizer.encode("the fox", add_special_tokens=False).ids[1:]  # "▁f", "o", "x"
    _, out = run_forced(tokenizer, forced, prompt=prompt)
    assert tokenizer.decode(forced) == "fox"
    assert out.text == " fox" == expected_text(tokenizer, prompt, forced)


def test_completion_type(llm):
    out = generate(LLMSession(llm), PROMPT, SamplingParams(max_tokens=2, seed=0))
    assert isinstance(out, Completion) and not math.isnan(out.timings.total_s)
