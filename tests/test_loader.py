"""safetensors parsing (valid and malicious files built here), sharded checkpoints, engine_weights."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from slmcore import loader
from slmcore.config import ModelConfig
from slmcore.errors import ClosedError, InvalidArgumentError, ModelFormatError
from slmcore.loader import Checkpoint, SafetensorsFile, convert
from slmcore.models import family_for, llama
from slmcore.reference.kernels import bf16_to_f32, f32_to_bf16


def write_raw(path: Path, header: bytes, data: bytes = b"", header_len: int | None = None) -> Path:
    """A file laid out as safetensors: u64 little-endian header length, header bytes, data."""
    n = len(header) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + header + data)
    return path


def write_header(path: Path, header: dict, data: bytes = b"") -> Path:
    return write_raw(path, json.dumps(header).encode(), data)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)) -> dict:
    """One header entry."""
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def open_error(path: Path, *words: str) -> str:
    """Open path, expect ModelFormatError naming the file and each of words; return the message."""
    with pytest.raises(ModelFormatError) as e:
        SafetensorsFile(path)
    message = str(e.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def view_chain_reaches_mmap(array: np.ndarray) -> bool:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


def bf16_bits(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(np.uint16)


# --- valid files ------------------------------------------------------------------------------------


def test_round_trip_f32_f16_bf16(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tensors = {
        "a.f32": torch.randn(3, 5),
        "b.f16": torch.randn(7).half(),
        "c.bf16": torch.randn(2, 3, 4).bfloat16(),
        "d.empty": torch.zeros(0, 4),
        "e.scalar": torch.tensor(1.5),
    }
    save_file(tensors, tmp_path / "m.safetensors", metadata={"format": "pt"})
    f = SafetensorsFile(tmp_path / "m.safetensors")
    assert f.metadata == {"format": "pt"}
    assert {n: (i.dtype, i.shape) for n, i in f.tensors.items()} == {
        "a.f32": ("float32", (3, 5)),
        "b.f16": ("float16", (7,)),
        "c.bf16": ("bfloat16", (2, 3, 4)),
        "d.empty": ("float32", (0, 4)),
        "e.scalar": ("float32", ()),
    }
    np.testing.assert_array_equal(f.array("a.f32"), tensors["a.f32"].numpy())
    assert f.array("b.f16").dtype == np.float16
    np.testing.assert_array_equal(f.array("b.f16"), tensors["b.f16"].numpy())
    bf = f.array("c.bf16")
    assert bf.dtype == np.uint16 and bf.shape == (2, 3, 4)
    np.testing.assert_array_equal(bf, bf16_bits(tensors["c.bf16"]))  # bit-exact
    np.testing.assert_array_equal(bf16_to_f32(bf), tensors["c.bf16"].float().numpy())
    assert f.array("d.empty").shape == (0, 4)
    assert f.array("e.scalar").shape == () and f.array("e.scalar") == 1.5
    f.close()


def test_views_are_zero_copy_and_read_only(tmp_path: Path) -> None:
    save_file({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, tmp_path / "m.safetensors")
    f = SafetensorsFile(tmp_path / "m.safetensors")
    a, b = f.array("w"), f.array("w")
    assert not a.flags.owndata and not a.flags.writeable and a.flags.c_contiguous
    assert view_chain_reaches_mmap(a)
    assert np.shares_memory(a, b)
    info = f.tensors["w"]
    assert info.nbytes == 48 and info.file == tmp_path / "m.safetensors"
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert raw[info.offset : info.offset + info.nbytes] == a.tobytes()  # offset is absolute in the file
    f.close()


def test_close_with_live_views_never_raises(tmp_path: Path) -> None:
    save_file({"w": torch.arange(6, dtype=torch.float32)}, tmp_path / "m.safetensors")
    f = SafetensorsFile(tmp_path / "m.safetensors")
    view = f.array("w")
    f.close()  # the view still holds the mapping: no BufferError
    f.close()
    np.testing.assert_array_equal(view, np.arange(6, dtype=np.float32))
    with pytest.raises(ClosedError):
        f.array("w")
    g = SafetensorsFile(tmp_path / "m.safetensors")
    g.close()  # no views: unmapped at once


def test_unaligned_offsets(tmp_path: Path) -> None:
    a = np.array([1.5], dtype="<f2")
    b = np.array([1.0, -2.0, 3.25], dtype="<f4")
    c = f32_to_bf16(np.array([0.5, -7.0], dtype=np.float32))
    header = {
        "a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
        "b": {"dtype": "F32", "shape": [3], "data_offsets": [2, 14]},
        "c": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]},  # a hole before c is allowed
    }
    text = json.dumps(header).encode()
    text += b" " * ((1 - len(text)) % 2)  # 8 + header length odd: every tensor starts unaligned
    data = a.tobytes() + b.tobytes() + b"\x00\x00" + c.tobytes()
    path = write_raw(tmp_path / "u.safetensors", text, data)
    f = SafetensorsFile(path)
    assert all(info.offset % 2 == 1 for info in f.tensors.values())
    assert not f.array("b").flags.aligned
    np.testing.assert_array_equal(f.array("a"), a)
    np.testing.assert_array_equal(f.array("b"), b)
    np.testing.assert_array_equal(f.array("c"), c)
    assert (f.array("b") * 2).tolist() == [2.0, -4.0, 6.5]


def test_valid_but_unsupported_dtype_refused_when_read(tmp_path: Path) -> None:
    header = {"ids": entry("I64", (2,), (0, 16)), "w": entry("F32", (1,), (16, 20))}
    path = write_header(tmp_path / "i.safetensors", header, bytes(20))
    f = SafetensorsFile(path)
    assert "ids" not in f.tensors and f.unsupported == {"ids": "I64"}
    with pytest.raises(ModelFormatError, match="'ids' has dtype I64") as e:
        f.array("ids")
    assert str(path) in str(e.value) and "F32, F16, BF16" in str(e.value)
    with pytest.raises(ModelFormatError, match="no tensor named 'nope'"):
        f.array("nope")


# --- malformed files --------------------------------------------------------------------------------


def test_file_shorter_than_8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    open_error(path, "3 bytes", "shorter")


def test_missing_file(tmp_path: Path) -> None:
    open_error(tmp_path / "absent.safetensors", "cannot read")


def test_header_length_larger_than_file(tmp_path: Path) -> None:
    open_error(write_raw(tmp_path / "t.safetensors", b"{}", header_len=1000), "header length 1000", "truncated")


def test_absurd_header_length(tmp_path: Path) -> None:
    open_error(write_raw(tmp_path / "t.safetensors", b"{}", header_len=2**63), "exceeds", "limit")


def test_header_not_utf8(tmp_path: Path) -> None:
    open_error(write_raw(tmp_path / "t.safetensors", b'{"\xff": 1}'), "not UTF-8")


def test_header_not_json(tmp_path: Path) -> None:
    open_error(write_raw(tmp_path / "t.safetensors", b"{this is not json"), "not valid JSON")
    open_error(write_raw(tmp_path / "t.safetensors", b'{"a": NaN}'), "not valid JSON")


def test_header_json_array(tmp_path: Path) -> None:
    open_error(write_raw(tmp_path / "t.safetensors", b"[1, 2, 3]"), "must be a JSON object", "list")


def test_duplicate_keys(tmp_path: Path) -> None:
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    header = f'{{"w": {entry}, "w": {entry}}}'.encode()
    open_error(write_raw(tmp_path / "t.safetensors", header, bytes(4)), "duplicate key 'w'")


@pytest.mark.parametrize(
    "header, data_size, words",
    [
        ({"w": entry(offsets=(0, 12))}, 8, ["'w'", "outside the data region"]),
        ({"w": entry(offsets=(-4, 4))}, 8, ["'w'", "outside the data region"]),
        ({"w": entry(shape=(0,), offsets=(9, 9))}, 8, ["'w'", "outside the data region"]),
        ({"w": entry(offsets=(8, 0))}, 8, ["'w'", "begin > end"]),
        ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, 12, ["'a'", "'b'", "overlap"]),
        ({"a": entry(shape=(4,), offsets=(0, 16)), "b": entry(offsets=(4, 12))}, 16, ["'a'", "'b'", "overlap"]),
        ({"w": entry(dtype="Q7")}, 8, ["'w'", "unknown dtype 'Q7'", "F32, F16, BF16"]),
        ({"w": entry(dtype=32)}, 8, ["'w'", "dtype must be a string"]),
        ({"w": entry(shape=(3,))}, 8, ["'w'", "8 bytes", "expected 12 bytes"]),
        ({"w": entry(dtype="F16")}, 8, ["'w'", "expected 4 bytes"]),
        ({"w": entry(dtype="BF16", shape=(2, 3))}, 8, ["'w'", "expected 12 bytes"]),
        ({"w": entry(shape=(2.0,))}, 8, ["'w'", "shape must be a list of integers"]),
        ({"w": entry(shape=(True, 2))}, 8, ["'w'", "shape must be a list of integers"]),
        ({"w": {**entry(), "shape": 2}}, 8, ["'w'", "shape must be a list"]),
        ({"w": entry(shape=(-2,), offsets=(0, 0))}, 8, ["'w'", "negative"]),
        ({"w": entry(offsets=(0.0, 8))}, 8, ["'w'", "data_offsets must be a list of two integers"]),
        ({"w": entry(offsets=(False, 8))}, 8, ["'w'", "data_offsets must be a list of two integers"]),
        ({"w": entry(offsets=(0, 8, 16))}, 8, ["'w'", "two integers"]),
        ({"w": {"dtype": "F32", "shape": [2]}}, 8, ["'w'", "exactly dtype, shape, data_offsets"]),
        ({"w": {**entry(), "extra": 1}}, 8, ["'w'", "exactly dtype, shape, data_offsets"]),
        ({"w": [1, 2]}, 8, ["'w'", "must be an object"]),
        ({"__metadata__": {"format": 1}}, 0, ["__metadata__"]),
        ({"__metadata__": ["pt"]}, 0, ["__metadata__"]),
        # a huge shape is refused from the header alone (no allocation, no overflow)
        ({"w": entry(shape=(2**62, 2**62), offsets=(0, 8))}, 8, ["'w'", "8 bytes"]),
    ],
)
def test_malformed_header(tmp_path: Path, header: dict, data_size: int, words: list[str]) -> None:
    open_error(write_header(tmp_path / "bad.safetensors", header, bytes(data_size)), *words)


def test_truncated_real_file(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(4), "b": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:-7])
    open_error(path, "'b'", "outside the data region")


def test_empty_tensors_may_share_offsets(tmp_path: Path) -> None:
    header = {
        "e1": entry(shape=(0,), offsets=(4, 4)),
        "w": entry(shape=(2,), offsets=(0, 8)),
        "e2": entry(shape=(3, 0), offsets=(8, 8)),
    }
    f = SafetensorsFile(write_header(tmp_path / "e.safetensors", header, bytes(8)))
    assert f.array("e1").shape == (0,) and f.array("e2").shape == (3, 0)


# --- checkpoints ------------------------------------------------------------------------------------


def test_checkpoint_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="model.safetensors and model.safetensors.index.json") as e:
        Checkpoint.open(tmp_path)
    assert str(tmp_path) in str(e.value)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFormatError, match="never loaded"):
        Checkpoint.open(tmp_path)
    with pytest.raises(ModelFormatError, match="not a directory"):
        Checkpoint.open(tmp_path / "nowhere")


def test_missing_tensor_names_tensor_and_directory(tiny_model) -> None:
    with Checkpoint.open(tiny_model("llama")) as checkpoint:
        with pytest.raises(ModelFormatError, match="'model.layers.9.mlp.up_proj.weight'") as e:
            checkpoint.tensor("model.layers.9.mlp.up_proj.weight")
        assert str(tiny_model("llama")) in str(e.value)


def test_sharded_checkpoint_loads_same_tensors(tiny_model) -> None:
    single = Checkpoint.open(tiny_model("llama"))
    sharded = Checkpoint.open(tiny_model("llama", sharded=True))
    assert len(sharded.files) >= 2
    assert single.tensors.keys() == sharded.tensors.keys()
    for name in single.tensors:
        a, dtype_a = single.tensor(name)
        b, dtype_b = sharded.tensor(name)
        assert dtype_a == dtype_b
        np.testing.assert_array_equal(a, b)
        assert not b.flags.owndata
    single.close()
    sharded.close()


@pytest.fixture
def sharded_copy(tiny_model, tmp_path: Path) -> Path:
    """A private copy of the sharded tiny llama, free to corrupt."""
    target = tmp_path / "model"
    shutil.copytree(tiny_model("llama", sharded=True), target)
    return target


def shard_names(model_dir: Path) -> list[str]:
    return sorted(set(json.loads((model_dir / "model.safetensors.index.json").read_text())["weight_map"].values()))


def rewrite_index(model_dir: Path, change) -> dict:
    index_path = model_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    change(index["weight_map"])
    index_path.write_text(json.dumps(index))
    return index


def index_error(model_dir: Path, *words: str) -> str:
    with pytest.raises(ModelFormatError) as e:
        Checkpoint.open(model_dir)
    message = str(e.value)
    assert "model.safetensors.index.json" in message
    for word in words:
        assert word in message, message
    return message


def test_shard_path_with_dotdot(sharded_copy: Path) -> None:
    escaping = f"../{shard_names(sharded_copy)[0]}"
    rewrite_index(sharded_copy, lambda m: m.update({"model.norm.weight": escaping}))
    index_error(sharded_copy, repr(escaping), "plain relative path")


def test_shard_path_absolute(sharded_copy: Path) -> None:
    absolute = str(sharded_copy / shard_names(sharded_copy)[0])
    rewrite_index(sharded_copy, lambda m: m.update({"model.norm.weight": absolute}))
    index_error(sharded_copy, absolute, "plain relative path")


def test_shard_path_escaping_inside_name(sharded_copy: Path) -> None:
    rewrite_index(sharded_copy, lambda m: m.update({"model.norm.weight": "sub/../../x.safetensors"}))
    index_error(sharded_copy, "plain relative path")


def test_shard_symlink_outside(sharded_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.safetensors"
    name = shard_names(sharded_copy)[0]
    shutil.copy(sharded_copy / name, outside)
    (sharded_copy / name).unlink()
    os.symlink(outside, sharded_copy / name)
    index_error(sharded_copy, repr(name), "outside the model directory")


def test_shard_symlink_inside_is_fine(sharded_copy: Path) -> None:
    (sharded_copy / "blobs").mkdir()
    shard = sharded_copy / shard_names(sharded_copy)[0]
    shard.rename(sharded_copy / "blobs" / "abc")
    os.symlink("blobs/abc", shard)
    Checkpoint.open(sharded_copy).close()


def test_hub_cache_layout_symlinks_are_fine(tiny_model, tmp_path: Path) -> None:
    # huggingface_hub's cache: snapshots/<revision>/<file> -> ../../blobs/<hash>
    repo = tmp_path / "models--org--tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, source in enumerate(sorted(tiny_model("llama", sharded=True).iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        shutil.copy(source, blob)
        os.symlink(f"../../blobs/blob{i}", snapshot / source.name)
    with Checkpoint.open(snapshot) as checkpoint:
        assert len(checkpoint.files) >= 2


def test_shard_missing(sharded_copy: Path) -> None:
    rewrite_index(sharded_copy, lambda m: m.update({"model.norm.weight": "model-99.safetensors"}))
    index_error(sharded_copy, "'model-99.safetensors'", "does not exist")


def test_tensor_missing_from_its_shard(sharded_copy: Path) -> None:
    index = rewrite_index(sharded_copy, lambda m: None)
    real_shard = index["weight_map"]["model.norm.weight"]
    other = next(s for s in sorted(set(index["weight_map"].values())) if s != real_shard)
    rewrite_index(sharded_copy, lambda m: m.update({"model.norm.weight": other}))
    index_error(sharded_copy, "'model.norm.weight'", other, "does not contain it")


def test_tensor_in_two_shards(sharded_copy: Path) -> None:
    save_file({"model.norm.weight": torch.ones(64)}, sharded_copy / "extra.safetensors")
    rewrite_index(sharded_copy, lambda m: m.update({"extra.weight": "extra.safetensors"}))
    index_error(sharded_copy, "'model.norm.weight'", "both", "extra.safetensors")


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff{}", "not valid UTF-8 JSON"),
        (b"[]", "'weight_map'"),
        (b'{"metadata": {}}', "'weight_map'"),
        (b'{"weight_map": {"a": 1}}', "must be a file name"),
        (b'{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}', "duplicate key 'a'"),
    ],
)
def test_bad_index(tmp_path: Path, content: bytes, words: str) -> None:
    (tmp_path / "model.safetensors.index.json").write_bytes(content)
    index_error(tmp_path, words)


def test_bad_shard_reported_with_its_path(sharded_copy: Path) -> None:
    shard = sharded_copy / shard_names(sharded_copy)[1]
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(ModelFormatError) as e:
        Checkpoint.open(sharded_copy)
    assert str(shard) in str(e.value)


# --- engine_weights ---------------------------------------------------------------------------------


def load_weights(model_dir: Path, dtype: str = "auto"):
    config = ModelConfig.from_file(model_dir)
    checkpoint = Checkpoint.open(model_dir)
    return config, checkpoint, family_for(config).engine_weights(config, checkpoint, dtype)


def expected_names(n_layers: int, qkv_bias=False, o_bias=False, mlp_bias=False) -> set[str]:
    names = {"embed_tokens", "norm", "lm_head"}
    for i in range(n_layers):
        p = f"layers.{i}"
        names |= {f"{p}.input_layernorm", f"{p}.post_attention_layernorm"}
        names |= {f"{p}.self_attn.{x}_proj" for x in "qkvo"} | {f"{p}.mlp.{x}_proj" for x in ("gate", "up", "down")}
        if qkv_bias:
            names |= {f"{p}.self_attn.{x}_proj.bias" for x in "qkv"}
        if o_bias:
            names.add(f"{p}.self_attn.o_proj.bias")
        if mlp_bias:
            names |= {f"{p}.mlp.{x}_proj.bias" for x in ("gate", "up", "down")}
    return names


def test_family_registry() -> None:
    from slmcore.models import gemma3

    for arch, family in (("LlamaForCausalLM", llama), ("MistralForCausalLM", llama), ("Qwen2ForCausalLM", llama),
                         ("Qwen3ForCausalLM", llama), ("Gemma3ForCausalLM", gemma3)):
        config = ModelConfig.from_dict(
            {"architectures": [arch], "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
             "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 4}
        )  # fmt: skip
        assert family_for(config) is family
    assert llama.GRAPH == gemma3.GRAPH == "llama"
    assert llama.MODEL_TYPES == ("llama", "mistral", "qwen2", "qwen3", "gemma")
    assert gemma3.MODEL_TYPES == ("gemma3_text", "gemma2", "gemma3")


@pytest.mark.parametrize(
    "arch, overrides, biases",
    [
        ("llama", {}, {}),
        ("llama", {"attention_bias": True, "mlp_bias": True}, {"qkv_bias": True, "o_bias": True, "mlp_bias": True}),
        ("qwen2", {}, {"qkv_bias": True}),
        ("mistral", {}, {}),
    ],
)
def test_engine_weights_names_shapes_and_zero_copy(tiny_model, arch: str, overrides: dict, biases: dict) -> None:
    config, checkpoint, weights = load_weights(tiny_model(arch, **overrides))
    assert set(weights) == expected_names(2, **biases)
    for name, (array, dtype) in weights.items():
        if name.endswith(("norm", "layernorm", ".bias")):
            assert dtype == "float32" and array.dtype == np.float32
        else:
            assert dtype == "float32" and not array.flags.owndata and view_chain_reaches_mmap(array)
    assert weights["layers.1.self_attn.k_proj"][0].shape == (2 * 16, 64)
    assert weights["layers.0.mlp.down_proj"][0].shape == (64, 160)
    stored, _ = checkpoint.tensor("model.layers.1.self_attn.q_proj.weight")
    np.testing.assert_array_equal(weights["layers.1.self_attn.q_proj"][0], stored)
    checkpoint.close()


def test_tied_lm_head_is_embed_tokens(tiny_model) -> None:
    model_dir = tiny_model("llama", tie_word_embeddings=True)
    config, checkpoint, weights = load_weights(model_dir)
    assert "lm_head.weight" not in checkpoint.tensors
    assert weights["lm_head"][0] is weights["embed_tokens"][0]
    for dtype in ("bfloat16", "float16"):
        converted = family_for(config).engine_weights(config, checkpoint, dtype)
        assert converted["lm_head"][0] is converted["embed_tokens"][0]  # converted once


def test_untied_without_lm_head(tiny_model, tmp_path: Path) -> None:
    model_dir = tiny_model("llama", tie_word_embeddings=True)
    shutil.copytree(model_dir, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "tie_word_embeddings": False}))
    with pytest.raises(ModelFormatError, match="no lm_head.weight and tie_word_embeddings is false"):
        load_weights(tmp_path / "m")


@pytest.mark.parametrize(
    "change, tensor, expected, found",
    [
        ({"intermediate_size": 128}, "model.layers.0.mlp.gate_proj.weight", [128, 64], [160, 64]),
        ({"num_key_value_heads": 4}, "model.layers.0.self_attn.k_proj.weight", [64, 64], [32, 64]),
        ({"vocab_size": 301}, "model.embed_tokens.weight", [301, 64], [300, 64]),
        ({"head_dim": 8}, "model.layers.0.self_attn.q_proj.weight", [32, 64], [64, 64]),
    ],
)
def test_shape_mismatch_with_config(tiny_model, tmp_path: Path, change: dict, tensor: str, expected, found) -> None:
    shutil.copytree(tiny_model("llama"), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **change}))
    with pytest.raises(ModelFormatError) as e:
        load_weights(tmp_path / "m")
    message = str(e.value)
    assert repr(tensor) in message and str(tmp_path / "m" / "model.safetensors") in message
    assert f"shape {found}" in message and f"expected {expected}" in message


def test_missing_bias_tensor(tiny_model, tmp_path: Path) -> None:
    shutil.copytree(tiny_model("llama"), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "mlp_bias": True}))
    with pytest.raises(ModelFormatError, match="no tensor 'model.layers.0.mlp.gate_proj.bias'") as e:
        load_weights(tmp_path / "m")
    assert str(tmp_path / "m") in str(e.value)


def test_unsupported_dtype_weight(tiny_model, tmp_path: Path) -> None:
    model_dir = tiny_model("llama")
    checkpoint = Checkpoint.open(model_dir)
    tensors = {name: torch.from_numpy(checkpoint.tensor(name)[0].copy()) for name in checkpoint.tensors}
    tensors["model.norm.weight"] = tensors["model.norm.weight"].double()
    (tmp_path / "m").mkdir()
    shutil.copy(model_dir / "config.json", tmp_path / "m")
    save_file(tensors, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ModelFormatError, match="'model.norm.weight' has dtype F64"):
        load_weights(tmp_path / "m")


@pytest.mark.parametrize("stored", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("target", ["auto", "float32", "float16", "bfloat16"])
def test_engine_weights_dtype_conversion(tiny_model, stored: str, target: str) -> None:
    config, checkpoint, weights = load_weights(tiny_model("llama", dtype=stored), target)
    expected_dtype = stored if target == "auto" else target
    numpy_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}[expected_dtype]
    for name, (array, dtype) in weights.items():
        hf = "lm_head.weight" if name == "lm_head" else f"model.{name}.weight"
        source, source_dtype = checkpoint.tensor(hf)
        source32 = bf16_to_f32(source) if source_dtype == "bfloat16" else source.astype(np.float32)
        if name.endswith(("norm", "layernorm")):
            assert dtype == "float32" and array.dtype == np.float32
            np.testing.assert_array_equal(array, source32)  # widening is exact
            continue
        assert dtype == expected_dtype and array.dtype == numpy_dtype and array.shape == source.shape
        if expected_dtype == stored:
            assert not array.flags.owndata  # kept as the mmap view
            continue
        if expected_dtype == "bfloat16":
            np.testing.assert_array_equal(array, f32_to_bf16(source32))
        else:
            np.testing.assert_array_equal(array, source32.astype(numpy_dtype))


def test_engine_weights_bad_dtype(tiny_model) -> None:
    config = ModelConfig.from_file(tiny_model("llama"))
    with Checkpoint.open(tiny_model("llama")) as checkpoint:
        with pytest.raises(InvalidArgumentError, match="float64"):
            llama.engine_weights(config, checkpoint, "float64")


def test_convert_matches_reference_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_CONVERT_BLOCK", 7)  # exercise block boundaries
    rng = np.random.default_rng(0)
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38,
         1.00390625, 1.01171875, 1.0039063, 65504.0, 65520.0, 1e-8],
        dtype=np.float32,
    )  # fmt: skip
    bits = rng.integers(0, 2**32, size=500, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([special, bits, rng.standard_normal(100).astype(np.float32)]).reshape(-1, 4)
    out = convert(x, "float32", "bfloat16")
    assert out.dtype == np.uint16 and out.shape == x.shape
    np.testing.assert_array_equal(out, f32_to_bf16(x))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(convert(x, "float32", "float16"), x.astype(np.float16))
    np.testing.assert_array_equal(convert(out, "bfloat16", "float32"), bf16_to_f32(out))
    with np.errstate(over="ignore"):
        half = x[np.isfinite(x)].astype(np.float16)
    np.testing.assert_array_equal(convert(half, "float16", "bfloat16"), f32_to_bf16(half.astype(np.float32)))
    assert convert(x, "float32", "float32") is x


def test_uint8_and_int8_tensors_are_served_as_quantized_storage(tmp_path: Path) -> None:
    qweight = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rows = np.array([[-127, 0, 5], [1, 2, 127]], dtype=np.int8)
    loader.write_safetensors(
        tmp_path / "model.safetensors",
        [("w.qweight", qweight, "U8", (3, 4)), ("e.qweight", rows, "I8", (2, 3)), ("s", np.ones(2, np.float16), "F16", (2,))],
    )
    with Checkpoint.open(tmp_path) as checkpoint:
        view, dtype = checkpoint.quantized_tensor("w.qweight")
        assert dtype == "uint8" and np.array_equal(view, qweight) and view_chain_reaches_mmap(view)
        view, dtype = checkpoint.quantized_tensor("e.qweight")
        assert dtype == "int8" and view.dtype == np.int8 and np.array_equal(view, rows)
        assert set(checkpoint.quantized) == {"w.qweight", "e.qweight"}
        with pytest.raises(ModelFormatError, match="U8"):
            checkpoint.tensor("w.qweight")  # never a weight by itself
        with pytest.raises(ModelFormatError, match="'s'"):
            checkpoint.quantized_tensor("s")
