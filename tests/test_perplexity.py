"""slmcore.perplexity against the same windows scored with transformers' logits on tiny models."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import transformers

import slmcore
from slmcore.errors import InvalidArgumentError
from slmcore.perplexity import perplexity, windows
from tiny_models import make_tiny_model
from tokenizer_fixtures import llama3_like


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("ppl") / "model", arch="llama", seed=1)


@pytest.fixture(scope="module")
def llm(model_dir):
    with slmcore.LLM(model_dir, threads=1) as llm:
        yield llm


@pytest.fixture(scope="module")
def hf_model(model_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def hf_perplexity(model, ids: list[int], window: int, stride: int) -> tuple[float, int]:
    """(nll_sum, n_tokens) as transformers' perplexity guide computes it: labels masked with -100
    before the previous window's end, loss summed over the shifted labels, in float64."""
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        chunk = torch.tensor([ids[begin:end]])
        labels = chunk.clone()
        labels[:, : max(prev_end - begin, 0)] = -100
        with torch.no_grad():
            logits = model(chunk).logits.double()
        loss = torch.nn.functional.cross_entropy(
            logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum"
        )
        nll_sum += loss.item()
        n_tokens += int((labels[0, 1:] != -100).sum())
        prev_end = end
        if end == len(ids):
            break
    return nll_sum, n_tokens


def token_ids(n: int, vocab: int = 300, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, vocab, n).tolist()


@pytest.mark.parametrize("n, window, stride", [(100, 32, None), (100, 32, 20), (64, 64, None), (70, 16, 5), (40, 512, None)])
def test_matches_transformers(llm, hf_model, n, window, stride) -> None:
    ids = token_ids(n, seed=n + window)
    result = perplexity(llm, ids, window=window, stride=stride)
    if stride is None:
        # Non-overlapping windows: each scored on all but its first token.
        nll_sum, n_tokens = 0.0, 0
        for begin in range(0, n, window):
            chunk = ids[begin : begin + window]
            if len(chunk) >= 2:
                with torch.no_grad():
                    logits = hf_model(torch.tensor([chunk])).logits[0].double()
                nll_sum += -torch.log_softmax(logits[:-1], dim=-1)[torch.arange(len(chunk) - 1), chunk[1:]].sum().item()
                n_tokens += len(chunk) - 1
        assert result.n_windows == math.ceil(n / window) - (n % window == 1)
    else:
        nll_sum, n_tokens = hf_perplexity(hf_model, ids, window, stride)
        assert n_tokens == n - 1  # sliding windows score every token after the first once
    assert result.n_tokens == n_tokens
    assert math.isclose(result.nll_sum, nll_sum, rel_tol=1e-6)
    assert math.isclose(result.ppl, math.exp(nll_sum / n_tokens), rel_tol=1e-6)


def test_window_spans() -> None:
    assert windows(10, 4, 4) == [(0, 4, 1), (4, 8, 5), (8, 10, 9)]
    assert windows(9, 4, 4) == [(0, 4, 1), (4, 8, 5)]  # a last window of one token scores nothing
    assert windows(10, 4, 2) == [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    assert windows(5, 8, 8) == [(0, 5, 1)]
    scored = [p for _, end, first in windows(1000, 64, 17) for p in range(first, end)]
    assert scored == list(range(1, 1000))


def test_text_is_tokenized_with_the_models_tokenizer(tmp_path) -> None:
    tok_dir = llama3_like(tmp_path / "tok")  # adds BOS, as Llama 3's tokenizer does
    tokenizer = transformers.AutoTokenizer.from_pretrained(tok_dir)
    model = make_tiny_model(tmp_path / "model", arch="llama", vocab_size=len(tokenizer), seed=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tok_dir / name).exists():
            shutil.copy(tok_dir / name, model / name)
    text = "the quick brown fox jumps over the lazy dog. " * 12 + "hello world, small fast inference engine."
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    with slmcore.LLM(model, threads=1) as llm:
        from_text = perplexity(llm, text, window=16)
        from_ids = perplexity(llm, np.array(ids), window=16)
    assert from_text == from_ids and from_text.n_tokens == len(ids) - math.ceil(len(ids) / 16) + (len(ids) % 16 == 1)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"window": 1}, "at least 2"),
        ({"window": 0}, "positive"),
        ({"window": True}, "positive"),
        ({"window": 513}, "max_seq_len"),
        ({"window": 8, "stride": 0}, "positive"),
        ({"window": 8, "stride": 9}, "larger than window"),
        ({"window": 8.0}, "positive"),
        ({"text_or_ids": [5]}, "at least 2"),
        ({"text_or_ids": []}, "at least 2"),
        ({"text_or_ids": [1, 2.0]}, "integer"),
        ({"text_or_ids": b"abc"}, "token ids"),
        ({"text_or_ids": np.zeros((2, 2), np.int64)}, "1-D"),
        ({"text_or_ids": ""}, "empty"),
    ],
)
def test_bad_arguments(llm, kwargs, words) -> None:
    kwargs = {"text_or_ids": [1, 2, 3], **kwargs}
    with pytest.raises(InvalidArgumentError, match=words):
        perplexity(llm, **kwargs)
