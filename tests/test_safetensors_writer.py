"""write_safetensors: files our reader, the safetensors library and torch all read back exactly."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from slmcore.errors import InvalidArgumentError
from slmcore.loader import SafetensorsFile, write_safetensors


def test_round_trip_every_weight_dtype(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    f16 = rng.standard_normal(7).astype(np.float16)
    bf16 = torch.randn(2, 3, 4).bfloat16()
    bf16_bits = bf16.view(torch.int16).numpy().view(np.uint16)
    qweight = rng.integers(0, 256, (4, 8), dtype=np.uint8)
    produced = []

    def lazy() -> np.ndarray:
        produced.append(True)
        return np.arange(6, dtype=">f4").reshape(2, 3)  # big-endian input is written little-endian

    path = write_safetensors(
        tmp_path / "m.safetensors",
        [
            ("a", f32, "F32", (3, 5)),
            ("b", f16, "float16", [7]),
            ("c", bf16_bits, "BF16", (2, 3, 4)),
            ("d", lazy, "F32", (2, 3)),
            ("e.qweight", qweight, "U8", (4, 8)),
            ("f.empty", np.zeros((0, 4), np.float32), "F32", (0, 4)),
            ("g.scalar", np.array(1.5, np.float32), "F32", ()),
        ],
        metadata={"format": "pt"},
    )
    assert produced == [True]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind
    assert (8 + int.from_bytes(path.read_bytes()[:8], "little")) % 8 == 0  # data starts 8-aligned

    ours = SafetensorsFile(path)
    assert ours.metadata == {"format": "pt"}
    assert np.array_equal(ours.array("a"), f32)
    assert np.array_equal(ours.array("b"), f16)
    assert np.array_equal(ours.array("c"), bf16_bits)
    assert np.array_equal(ours.array("d"), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert ours.unsupported == {"e.qweight": "U8"}
    ours.close()

    theirs = load_file(path)
    assert torch.equal(theirs["c"], bf16)
    assert torch.equal(theirs["e.qweight"], torch.from_numpy(qweight))
    assert theirs["f.empty"].shape == (0, 4) and theirs["g.scalar"].item() == 1.5


def test_tensors_are_produced_one_at_a_time(tmp_path: Path) -> None:
    n, size = 8, 1 << 20  # 8 tensors of 4 MiB each

    def make(i: int):
        return lambda: np.full(size, i, dtype=np.float32)

    tracemalloc.start()
    try:
        write_safetensors(tmp_path / "big.safetensors", [(f"t{i}", make(i), "F32", (size,)) for i in range(n)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 4 * size, f"peak {peak / 2**20:.1f} MiB: tensors were held together"
    f = SafetensorsFile(tmp_path / "big.safetensors")
    assert all(f.array(f"t{i}")[[0, -1]].tolist() == [i, i] for i in range(n))
    f.close()


@pytest.mark.parametrize(
    "entry, words",
    [
        (("a", np.ones(3, np.float64), "F32", (3,)), ["'a'", "float32", "float64"]),
        (("a", np.ones(3, np.float32), "F32", (4,)), ["'a'", "(4,)"]),
        (("a", lambda: [1.0], "F32", (1,)), ["'a'", "list"]),
        (("a", np.ones(3, np.float32), "Q4_0", (3,)), ["'a'", "Q4_0"]),
        (("__metadata__", np.ones(3, np.float32), "F32", (3,)), ["__metadata__"]),
    ],
)
def test_bad_entries_raise_and_leave_no_file(tmp_path: Path, entry, words) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        write_safetensors(tmp_path / "x.safetensors", [entry])
    for word in words:
        assert word in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_producing_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", [("a", np.ones(2, np.float32), "F32", (2,))])
    before = path.read_bytes()

    def fail() -> np.ndarray:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_safetensors(path, [("a", np.zeros(2, np.float32), "F32", (2,)), ("b", fail, "F32", (2,))])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
