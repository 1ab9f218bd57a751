"""Real GGUF files converted and compared with transformers loading the same files (DESIGN.md
section 6, tier 3): SmolLM2-135M-Instruct (Q4_1 + Q8_0) and Gemma-3-270M (Q4_K_M: Q5_0, Q8_0,
Q4_K, Q6_K). Run with `python -m pytest -m slow tests/test_real_models_convert.py`; the files are
fetched by tests/real_models.py, and a failed fetch fails these tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file
from tokenizers import Tokenizer

import slmcore
from slmcore.config import ModelConfig
from slmcore.convert import convert_gguf
from slmcore.tokenizer import Tokenizer as SlmTokenizer
from real_models import gemma3_gguf, smollm2_gguf
from text_samples import varied_strings

pytestmark = pytest.mark.slow

# DESIGN.md: relative logit error is max|ours - reference| / max|reference| per position.
REL_TOL_F32 = 1e-5


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> tuple[Path, Path]:
    gguf_path = smollm2_gguf()
    return gguf_path, convert_gguf(gguf_path, tmp_path_factory.mktemp("smollm2") / "model", progress=False)


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory) -> tuple[Path, Path]:
    gguf_path = gemma3_gguf()
    return gguf_path, convert_gguf(gguf_path, tmp_path_factory.mktemp("gemma3") / "model", progress=False)


def transformers_gguf_model(gguf_path: Path) -> transformers.PreTrainedModel:
    return transformers.AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


def assert_tensors_equal_transformers(gguf_path: Path, out_dir: Path) -> transformers.PreTrainedModel:
    reference = transformers_gguf_model(gguf_path)
    theirs = reference.state_dict()
    ours = load_file(out_dir / "model.safetensors")
    assert set(theirs) - set(ours) == {"lm_head.weight"}  # tied: transformers shares the embedding
    for name, tensor in ours.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, theirs[name]), name
    return reference


def assert_tokenizer_identical(gguf_path: Path, out_dir: Path, seed: int) -> list[str]:
    """Our directory's tokenizer (through transformers and through `tokenizers` alone) against
    transformers' GGUF tokenizer, on hundreds of strings; returns the strings."""
    reference = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    ours = transformers.AutoTokenizer.from_pretrained(out_dir)
    plain = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    slm = SlmTokenizer.from_dir(out_dir)
    a, b = json.loads(reference.backend_tokenizer.to_str()), json.loads(ours.backend_tokenizer.to_str())
    key = lambda token: json.dumps(token, sort_keys=True)  # noqa: E731
    assert sorted(map(key, a.pop("added_tokens"))) == sorted(map(key, b.pop("added_tokens")))
    assert a == b
    assert ours.special_tokens_map == reference.special_tokens_map
    assert ours.chat_template == reference.chat_template

    added = [token.content for _, token in sorted(reference.added_tokens_decoder.items())]
    specials = added[:16] + added[16 :: max(1, len(added) // 16)]  # Gemma has 6384: a spread of them
    strings = varied_strings(specials, random_count=400, seed=seed)
    assert len(strings) >= 500
    for text in strings:
        expected = reference.encode(text)
        assert ours.encode(text) == expected, repr(text)
        assert plain.encode(text).ids == expected, repr(text)
        assert slm.encode(text) == expected, repr(text)
        assert slm.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
        assert slm.decode(expected) == reference.decode(expected), repr(text)
        assert slm.decode(expected, skip_special_tokens=True) == reference.decode(expected, skip_special_tokens=True)
        assert ours.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
        assert ours.decode(expected) == reference.decode(expected), repr(text)
        assert ours.decode(expected, skip_special_tokens=True) == reference.decode(expected, skip_special_tokens=True)
    return strings


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float((np.abs(ours - reference).max(axis=-1) / np.abs(reference).max(axis=-1)).max())


# --- SmolLM2-135M-Instruct ---------------------------------------------------------------------------


def test_smollm2_tensors_and_logits(smollm2):
    gguf_path, out_dir = smollm2
    reference = assert_tensors_equal_transformers(gguf_path, out_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, tokenize=True, return_dict=False)  # fmt: skip
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits[0].numpy()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        assert np.array_equal(reloaded(torch.tensor([ids])).logits[0].numpy(), expected)
    with slmcore.LLM(out_dir, threads=2) as llm:
        error = relative_error(llm.logits(ids), expected)
    assert error <= REL_TOL_F32, f"relative logit error {error}"


def test_smollm2_config(smollm2):
    _, out_dir = smollm2
    config = ModelConfig.from_file(out_dir)
    assert (config.architecture, config.num_hidden_layers, config.hidden_size) == ("LlamaForCausalLM", 30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert config.tie_word_embeddings and config.eos_token_ids == (2,)
    assert config.rope.theta == 100000.0 and config.rms_norm_eps == 1e-5
    generation = json.loads((out_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2


def test_smollm2_tokenizer(smollm2):
    gguf_path, out_dir = smollm2
    assert_tokenizer_identical(gguf_path, out_dir, seed=1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out_dir)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.convert_tokens_to_ids("<|im_end|>") == 2
    assert tokenizer.encode("Hello") == tokenizer.encode("Hello", add_special_tokens=False)  # no BOS
    assert "<|im_start|>" in tokenizer.chat_template


# --- Gemma-3-270M ------------------------------------------------------------------------------------


def test_gemma3_tensors_and_transformers_loads_the_directory(gemma3):
    gguf_path, out_dir = gemma3
    reference = assert_tensors_equal_transformers(gguf_path, out_dir)
    ids = transformers.AutoTokenizer.from_pretrained(out_dir).encode("The capital of France is")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits[0].numpy()
        ours = reloaded(torch.tensor([ids])).logits[0].numpy()
    assert relative_error(ours, expected) <= REL_TOL_F32


def test_gemma3_config(gemma3):
    _, out_dir = gemma3
    config = transformers.AutoConfig.from_pretrained(out_dir)
    assert type(config).__name__ == "Gemma3TextConfig"
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (18, 640, 4)
    assert (config.num_key_value_heads, config.head_dim, config.vocab_size) == (1, 256, 262144)
    assert config.sliding_window == 512 and config.query_pre_attn_scalar == 256
    assert [i for i, t in enumerate(config.layer_types) if t == "full_attention"] == [5, 11, 17]
    assert config.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 1e4
    assert config.tie_word_embeddings
    raw = json.loads((out_dir / "config.json").read_text())
    assert (raw["bos_token_id"], raw["eos_token_id"]) == (2, 1)  # EOS is <eos> only
    assert not raw.get("final_logit_softcapping") and not raw.get("attn_logit_softcapping")


def test_gemma3_tokenizer(gemma3):
    gguf_path, out_dir = gemma3
    strings = assert_tokenizer_identical(gguf_path, out_dir, seed=2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out_dir)
    assert tokenizer.encode("Hello")[0] == tokenizer.bos_token_id == 2  # BOS added by encode
    assert tokenizer.chat_template is None  # the GGUF carries none

    # The rebuilt tokenizer.model (whitespace pieces respelled "▁") agrees with tokenizer.json on
    # text without special tokens, except on runs of more than 31 spaces: SentencePiece matches its
    # user-defined whitespace pieces longest-first, transformers' BPE merges them pairwise.
    import sentencepiece as spm

    sentencepiece = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    plain = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    specials = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    differing = [
        text for text in strings
        if not any(s in text for s in specials)
        and sentencepiece.encode(text) != plain.encode(text, add_special_tokens=False).ids
    ]  # fmt: skip
    assert all(" " * 32 in text for text in differing), differing


CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke about café crème ☕."}],
]


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_chat_templates_match_transformers(smollm2, gemma3, generation_prompt):
    """SmolLM2's own template (from its GGUF) and the standard Gemma 3 template (its GGUF has none):
    rendered text and token ids equal transformers' apply_chat_template on the same GGUF."""
    from test_chat import GEMMA3_TEMPLATE

    for (gguf_path, out_dir), template in ((smollm2, None), (gemma3, GEMMA3_TEMPLATE)):
        reference = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        ours = SlmTokenizer.from_dir(out_dir)
        for messages in CONVERSATIONS:
            kwargs = {"add_generation_prompt": generation_prompt}
            if template is not None:
                kwargs["chat_template"] = template
            text = reference.apply_chat_template(messages, tokenize=False, **kwargs)
            ids = reference.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)
            ours_kwargs = dict(add_generation_prompt=generation_prompt)
            if template is not None:
                ours_kwargs["template"] = template
            assert ours.apply_chat_template(messages, **ours_kwargs) == text
            assert ours.encode_chat(messages, **ours_kwargs) == list(ids)
