"""Real-model tier (`pytest -m slow`): SmolLM2-135M-Instruct and Gemma-3-270M from their
PyPI-carried GGUF files, converted by slmcore, against transformers loading the same GGUF in
float32 (DESIGN.md section 6)."""

from __future__ import annotations

import numpy as np
import pytest

import slmcore
from real_models import gemma3_gguf, smollm2_gguf

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


def _load_pair(gguf, tmp_path_factory, name):
    """(our LLM on the f32 conversion, transformers model, transformers tokenizer) for one GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmcore.convert import convert_gguf

    out = convert_gguf(gguf, tmp_path_factory.mktemp(name) / "model", dtype="float32", progress=False)
    torch.set_num_threads(2)
    ref_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return slmcore.LLM(out, threads=2), ref_model, ref_tok


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    llm, ref_model, ref_tok = _load_pair(smollm2_gguf(), tmp_path_factory, "smollm2")
    with llm:
        yield llm, ref_model, ref_tok


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    llm, ref_model, ref_tok = _load_pair(gemma3_gguf(), tmp_path_factory, "gemma3")
    with llm:
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



# Gemma-3-270M: a base model with a 512-token sliding window on 5 of every 6 layers.
LONG_PROMPT = " ".join(f"Item {i}: the {['red', 'green', 'blue', 'small', 'large'][i % 5]} box holds {i * 7 % 13} stones."
                       for i in range(60))


def test_gemma3_logits_match_transformers(gemma3):
    llm, ref_model, ref_tok = gemma3
    for text in PROMPTS + [LONG_PROMPT]:
        ids = ref_tok.encode(text)
        assert llm.tokenizer.encode(text) == ids
        ours, ref = llm.logits(ids), _ref_logits(ref_model, ids)
        rel = np.abs(ours - ref).max(axis=1) / np.abs(ref).max(axis=1)
        assert rel.max() <= 1e-3, (text[:40], rel.max())
    assert len(ref_tok.encode(LONG_PROMPT)) > 600  # longer than the sliding window


@pytest.mark.parametrize("prompt", PROMPTS[:2] + [LONG_PROMPT], ids=["capital", "code", "long"])
def test_gemma3_greedy_generation(gemma3, prompt):
    llm, ref_model, ref_tok = gemma3
    ids = ref_tok.encode(prompt)
    ref, margins = _greedy_reference(ref_model, ids, GREEDY_TOKENS)
    out = llm.generate([ids], slmcore.SamplingParams(temperature=0, max_tokens=GREEDY_TOKENS, ignore_eos=True))[0]
    _assert_greedy_identical(out.token_ids, ref, margins)


def test_gemma3_chat_templated_greedy(gemma3):
    """The standard Gemma 3 template, supplied by the test (the GGUF carries none)."""
    from test_chat import GEMMA3_TEMPLATE

    llm, ref_model, ref_tok = gemma3
    messages = [{"role": "user", "content": "Write one sentence about the moon."}]
    ids = ref_tok.apply_chat_template(messages, chat_template=GEMMA3_TEMPLATE, add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
    assert llm.tokenizer.encode_chat(messages, template=GEMMA3_TEMPLATE) == list(ids)
    ref, margins = _greedy_reference(ref_model, list(ids), GREEDY_TOKENS)
    out = llm.generate([list(ids)], slmcore.SamplingParams(temperature=0, max_tokens=GREEDY_TOKENS, ignore_eos=True))[0]
    _assert_greedy_identical(out.token_ids, ref, margins)
