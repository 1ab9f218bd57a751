"""LLM(x.gguf, quant="int4") on a GGUF whose layer matrices are Q4_0 or Q4_1: those blocks become
the int4 format without loss (G=32; Q4_0 symmetric, Q4_1 asymmetric), DESIGN.md section 4."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize

import slmcore
from slmcore.convert import gguf_int4_matrices
from slmcore.quant import canonical_value, dequantize_int4
from gguf_files import byte_level_vocab, llama_permute, tiny_model, write_gguf

MATRICES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip
GGUF_NAMES = dict(zip(MATRICES, ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")))


@pytest.fixture(scope="module")
def vocab():
    return byte_level_vocab()


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory, vocab):
    built = {}

    def get(arch: str, qtype: Q):
        key = (arch, qtype)
        if key not in built:
            model = tiny_model(arch, len(vocab.tokens), tie_word_embeddings=False)
            root = tmp_path_factory.mktemp(f"{arch}-{qtype.name}")
            built[key] = (model, *write_gguf(root / f"{arch}.gguf", model, vocab, qtype))
        return built[key]

    return get


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMCORE_HOME", str(tmp_path / "home"))


def expected_matrix(arch: str, model, stored: dict, layer: int, matrix: str, qtype: Q) -> np.ndarray:
    """The GGUF's own dequantization of the stored blocks, in Hugging Face's row order."""
    raw = stored[f"blk.{layer}.{GGUF_NAMES[matrix]}.weight"]
    values = gguf_dequantize(raw, qtype).reshape(raw.shape[0], -1).astype(np.float64)
    if arch == "llama" and matrix in ("self_attn.q_proj", "self_attn.k_proj"):
        heads = model.config.num_attention_heads if matrix == "self_attn.q_proj" else model.config.num_key_value_heads
        inverse = np.argsort(llama_permute(np.arange(values.shape[0]), heads))
        values = values[inverse]
    return values


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_q4_blocks_are_taken_without_loss(gguf_file, arch, qtype):
    model, path, stored = gguf_file(arch, qtype)
    with slmcore.LLM(path, quant="int4", kv_dtype="float32") as llm:
        assert llm.quant == "int4" and llm.group_size == 32
        entries = llm._entries
    for layer in range(model.config.num_hidden_layers):
        for matrix in MATRICES:
            t = canonical_value(entries[f"layers.{layer}.{matrix}"])
            assert t.group_size == 32 and t.sym == (qtype == Q.Q4_0)
            np.testing.assert_array_equal(
                dequantize_int4(t).astype(np.float64), expected_matrix(arch, model, stored, layer, matrix, qtype)
            )


def test_the_import_is_close_to_the_dequantized_model(gguf_file):
    """Only the int8 activations differ from the float model on the same (dequantized) weights."""
    _, path, _ = gguf_file("llama", Q.Q4_1)
    ids = list(range(3, 40))
    with slmcore.LLM(path, kv_dtype="float32") as dense:
        ref = dense.logits(ids)
    with slmcore.LLM(path, quant="int4", kv_dtype="float32") as llm:
        ours = llm.logits(ids)
    err = np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert err.max() <= 0.1, err


def test_explicit_other_group_size_requantizes(gguf_file):
    _, path, _ = gguf_file("llama", Q.Q4_1)
    with slmcore.LLM(path, quant="int4", group_size=128) as llm:
        assert llm.group_size == 128
        t = canonical_value(llm._entries["layers.0.mlp.up_proj"])
        assert t.group_size == 128 and t.sym


def test_other_types_are_not_imported(gguf_file):
    _, path, _ = gguf_file("qwen2", Q.Q8_0)
    assert gguf_int4_matrices(path) is None
    with slmcore.LLM(path, quant="int4") as llm:  # quantized from the dequantized values: symmetric
        assert canonical_value(llm._entries["layers.0.mlp.up_proj"]).sym


def test_save_and_reload_keep_the_asymmetric_blocks(gguf_file, tmp_path):
    _, path, _ = gguf_file("qwen2", Q.Q4_1)
    ids = [5, 9, 200, 17, 3]
    with slmcore.LLM(path, quant="int4") as llm:
        logits = llm.logits(ids)
        llm.save_quantized(tmp_path / "q")
    with slmcore.LLM(tmp_path / "q") as again:
        assert again.group_size == 32
        assert not canonical_value(again._entries["layers.1.self_attn.o_proj"]).sym
        np.testing.assert_array_equal(again.logits(ids), logits)


def test_cli_convert_to_int4_keeps_the_blocks(gguf_file, tmp_path, capsys):
    from slmcore.cli import main

    _, path, _ = gguf_file("llama", Q.Q4_1)
    out = tmp_path / "int4"
    assert main(["convert", str(path), str(out), "--quant", "int4"]) == 0
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["group_size"] == 32 and config["sym"] is False
    ids = [4, 8, 15, 16, 23, 42]
    with slmcore.LLM(out) as saved, slmcore.LLM(path, quant="int4") as direct:
        np.testing.assert_array_equal(saved.logits(ids), direct.logits(ids))
    assert main(["convert", str(path), str(tmp_path / "x"), "--group-size", "64"]) == 1
    assert "--quant int4" in capsys.readouterr().err
