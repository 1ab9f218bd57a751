"""LLM's text API (generate / stream / chat / tokenizer) on a tiny random model that carries a
tokenizer built by the test; transformers is the oracle for tokens and templates."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import slmcore
from tiny_models import make_tiny_model
from tokenizer_fixtures import smollm2_like

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GREEDY = slmcore.SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("text")
    tok_dir = smollm2_like(root / "tok", chat_template=CHATML)
    vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    model = make_tiny_model(root / "model", arch="llama", vocab_size=vocab)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tok_dir / name).exists():
            shutil.copy(tok_dir / name, model / name)
    im_end = AutoTokenizer.from_pretrained(model).convert_tokens_to_ids("<|im_end|>")
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": [im_end, 0]}))
    return model


@pytest.fixture(scope="module")
def llm(model_dir):
    with slmcore.LLM(model_dir) as llm:
        yield llm


def test_tokenizer_and_eos(llm, model_dir):
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(model_dir)
    for text in ["Hello world", "  spaces\tand\nlines 123", "<|im_start|>user\nhi<|im_end|>", "émoji 🙂 漢字"]:
        assert llm.tokenizer.encode(text) == ref.encode(text)
    assert llm.eos_token_ids == {ref.convert_tokens_to_ids("<|im_end|>"), 0}


def test_text_and_token_prompts_agree(llm):
    ids = llm.tokenizer.encode("The quick brown fox")
    by_text = llm.generate("The quick brown fox", GREEDY)
    by_ids = llm.generate(ids, GREEDY)
    assert len(by_text) == len(by_ids) == 1
    assert by_text[0].token_ids == by_ids[0].token_ids
    assert by_text[0].prompt_token_ids == ids
    # the reference: argmax of the full-sequence logits, step by step
    seq = list(ids)
    for _ in range(GREEDY.max_tokens):
        seq.append(int(np.argmax(llm.logits(seq)[-1])))
    assert by_text[0].token_ids == seq[len(ids):]
    assert by_text[0].finish_reason == "length"
    assert by_text[0].usage.prompt_tokens == len(ids) and by_text[0].usage.completion_tokens == 12


def test_batch_of_prompts_keeps_order(llm):
    prompts = ["one two", "three", "four five six"]
    outs = llm.generate(prompts, GREEDY)
    assert [o.token_ids for o in outs] == [llm.generate(p, GREEDY)[0].token_ids for p in prompts]
    mixed = llm.generate([llm.tokenizer.encode("three"), [5, 6, 7]], GREEDY)
    assert mixed[0].token_ids == outs[1].token_ids and len(mixed) == 2


def test_stream_concatenates_to_generate(llm):
    params = slmcore.SamplingParams(temperature=0.8, seed=3, max_tokens=20)
    chunks = list(llm.stream("Once upon a time", params))
    full = llm.generate("Once upon a time", params)[0]
    assert "".join(c.text for c in chunks) == full.text
    assert sum((c.token_ids for c in chunks), []) == full.token_ids
    assert chunks[-1].finish_reason == full.finish_reason


def test_chat_uses_the_template_without_a_second_bos(llm, model_dir):
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    ref_ids = AutoTokenizer.from_pretrained(model_dir).apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    out = llm.chat(messages, GREEDY)
    assert out.prompt_token_ids == list(ref_ids)
    assert out.token_ids == llm.generate([list(ref_ids)], GREEDY)[0].token_ids
    streamed = "".join(c.text for c in llm.stream_chat(messages, GREEDY))
    assert streamed == out.text


def test_bad_arguments(llm):
    with pytest.raises(slmcore.InvalidArgumentError):
        llm.generate("hi", {"temperature": 0})
    with pytest.raises(slmcore.InvalidArgumentError):
        llm.generate([], GREEDY)
    with pytest.raises(slmcore.InvalidArgumentError):
        list(llm.stream(["a", "b"], GREEDY))
    with pytest.raises(slmcore.InvalidTokenError):
        llm.generate([[1, 2, 10**6]], GREEDY)
    with pytest.raises(slmcore.ContextLengthError):
        llm.generate("hi", slmcore.SamplingParams(max_tokens=10**6))


def test_model_without_tokenizer_takes_ids_only(tmp_path):
    path = make_tiny_model(tmp_path / "bare", arch="llama")
    with slmcore.LLM(path) as llm:
        assert len(llm.generate([[1, 2, 3]], GREEDY)[0].token_ids) == 12
        with pytest.raises(slmcore.TokenizerFileError):
            llm.generate("text", GREEDY)
        with pytest.raises(slmcore.TokenizerFileError):
            llm.tokenizer


def test_closed(model_dir):
    llm = slmcore.LLM(model_dir)
    llm.close()
    with pytest.raises(slmcore.ClosedError):
        llm.generate("hi", GREEDY)
    with pytest.raises(slmcore.ClosedError):
        llm.tokenizer
