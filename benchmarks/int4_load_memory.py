"""Peak anonymous memory while slmcore.LLM(..., quant="int4") loads a 16-bit checkpoint (not a test).

    python benchmarks/int4_load_memory.py [--size 1.1b] [--group-size 128]

The issue's target: peak anonymous memory <= 1.2x the checkpoint size. The checkpoint is the
random-weight bfloat16 Llama that benchmarks/models.py hf_checkpoint("bfloat16", size) builds
(TinyLlama-1.1B's shape by default). The load runs in a fresh child process, which samples its
own RssAnon (/proc/self/status) every millisecond in a thread while the main thread loads; the
memory-mapped checkpoint is file-backed (RssFile), so RssAnon is what loading allocates: the int4
and int8 results, the quantizer's temporaries and the Python / numpy baseline, which is reported
separately (RssAnon after `import slmcore`, before loading).

Results (2 shared cores; llama-1.1b-bfloat16, 2.049 GiB of safetensors; RssAnon 0.02 GiB before):
    G=32 search (default)  peak RssAnon 0.668 GiB = 0.33x the checkpoint, load 18.3 s
    G=32 RTN               peak RssAnon 0.668 GiB = 0.33x,                 load  5.8 s
    G=128 search           peak RssAnon 0.627 GiB = 0.31x,                 load 13.3 s
The peak is the loaded model itself (int4 layers + int8-row embedding and lm_head): the
quantizer's temporaries, one block of rows at a time, do not show above it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_anon_bytes() -> int:
    """This process's RssAnon from /proc/self/status, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no RssAnon line (not Linux?)")


def child(model_dir: str, group_size: int, rtn: bool) -> None:
    """Load the model with quant="int4" while sampling RssAnon; print one JSON line."""
    import slmcore
    from slmcore import llm as llm_module

    if rtn:
        llm_module.INT4_SEARCH = False

    baseline = rss_anon_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_anon_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    llm = slmcore.LLM(model_dir, quant="int4", group_size=group_size, threads=2, max_seq_len=256)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    after = rss_anon_bytes()
    llm.close()
    print(json.dumps({"baseline": baseline, "peak": max(peak, after), "after": after, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1.1b", choices=["135m", "1.1b"])
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--rtn", action="store_true", help="round-to-nearest instead of the default scale search")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.group_size, args.rtn)
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from models import hf_checkpoint

    model_dir = hf_checkpoint("bfloat16", args.size)
    checkpoint_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, __file__, "--child", str(model_dir), "--group-size", str(args.group_size)]
    command += ["--rtn"] if args.rtn else []
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    gib = 1 << 30
    print("| checkpoint | G | scales | checkpoint size | RssAnon before load | peak RssAnon | peak / size | peak - before | "
          "/ size | RssAnon after | load (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {model_dir.name} | {args.group_size} | {'RTN' if args.rtn else 'search'} | {checkpoint_bytes / gib:.3f} GiB | {numbers['baseline'] / gib:.3f} GiB | "
        f"{numbers['peak'] / gib:.3f} GiB | {numbers['peak'] / checkpoint_bytes:.3f} | "
        f"{(numbers['peak'] - numbers['baseline']) / gib:.3f} GiB | {(numbers['peak'] - numbers['baseline']) / checkpoint_bytes:.3f} | "
        f"{numbers['after'] / gib:.3f} GiB | {numbers['seconds']:.1f} |"
    )


if __name__ == "__main__":
    main()
