"""Real-model tier (`pytest -m slow`): SmolLM2-135M-Instruct from its PyPI-carried GGUF, converted
by slmcore, against transformers loading the same GGUF in float32 (DESIGN.md section 6)."""

from __future__ import annotations

import numpy as np
import pytest

import slmcore
from real_models import smollm2_gguf

pytestmark = pytest.mark.slow

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "List three colours:\n1.",
]
CHATS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Say hello to my friend."}],
]
GREEDY_TOKENS = 32


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """(our LLM on the f32 conversion, transformers model, transformers tokenizer)."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmcore.convert import convert_gguf

    gguf = smollm2_gguf()
    out = convert_gguf(gguf, tmp_path_factory.mktemp("smollm2") / "model", dtype="float32", progress=False)
    torch.set_num_threads(2)
    ref_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with slmcore.LLM(out, threads=2) as llm:
        yield llm, ref_model, ref_tok


def _ref_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def test_logits_match_transformers(smollm2):
    llm, ref_model, ref_tok = smollm2
    for text in PROMPTS:
        ids = ref_tok.encode(text)
        assert llm.tokenizer.encode(text) == ids
        ours, ref = llm.logits(ids), _ref_logits(ref_model, ids)
        rel = np.abs(ours - ref).max(axis=1) / np.abs(ref).max(axis=1)
        assert rel.max() <= 1e-3, (text, rel.max())


def _greedy_reference(model, ids, n):
    """transformers' greedy continuation and, per step, the top-1/top-2 margin relative to max|logit|."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
    tokens = out.sequences[0, len(ids):].tolist()
    margins = []
    for step in out.logits:
        s = np.sort(step[0].float().numpy())
        margins.append((s[-1] - s[-2]) / np.abs(s).max())
    return tokens, margins


def _assert_greedy_identical(ours, ref, margins):
    """Identical up to the first near tie (margin < 0.01 of max|logit|), per DESIGN.md section 6."""
    limit = next((i for i, m in enumerate(margins) if m < 0.01), len(ref))
    assert ours[:limit] == ref[:limit], (limit, ours, ref)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_plain(smollm2, prompt):
    llm, ref_model, ref_tok = smollm2
    ids = ref_tok.encode(prompt)
    ref, margins = _greedy_reference(ref_model, ids, GREEDY_TOKENS)
    out = llm.generate([ids], slmcore.SamplingParams(temperature=0, max_tokens=GREEDY_TOKENS, ignore_eos=True))[0]
    _assert_greedy_identical(out.token_ids, ref, margins)


@pytest.mark.parametrize("messages", CHATS, ids=["user", "system-user"])
def test_greedy_generation_chat(smollm2, messages):
    llm, ref_model, ref_tok = smollm2
    ids = ref_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert llm.tokenizer.encode_chat(messages) == list(ids)
    ref, margins = _greedy_reference(ref_model, list(ids), GREEDY_TOKENS)
    out = llm.chat(messages, slmcore.SamplingParams(temperature=0, max_tokens=GREEDY_TOKENS, ignore_eos=True))
    _assert_greedy_identical(out.token_ids, ref, margins)
    assert out.text == ref_tok.decode(out.token_ids, skip_special_tokens=True)
