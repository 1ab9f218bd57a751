"""How much accuracy slmcore's int4 format costs: the numbers behind its defaults (not a test).

    python benchmarks/int4_accuracy.py gate [--models gemma3,smollm2] [--windows N]  # the issue's gate
    python benchmarks/int4_accuracy.py rms            # weight RMS error, RTN vs scale search
    python benchmarks/int4_accuracy.py ppl [--quick]  # SmolLM2-135M perplexity, fake-quantized

`gate` measures slmcore's int4 against llama.cpp's Q4_0 on exactly the same token ids: the text
(/usr/share/common-licenses/GPL-3) is tokenized once by slmcore's tokenizer and both engines are
fed those ids, window by window (llama-cpp-python with logits for every position; the
log-softmax is computed here in numpy, as slmcore.perplexity does). The unquantized baselines are
the GGUF's dequantized weights: slmcore converts the GGUF to float32, llama.cpp requantizes it to
F16 (llama_model_quantize with allow_requantize), then F16 -> Q4_0 (default mix, and pure). Each
quantized model is compared with its own engine's unquantized one. Two conventions:
- plain: slmcore.perplexity's windows (15 non-overlapping windows of 512 tokens, the first token
  of each unscored; only the first window starts with BOS);
- bos (Gemma): BOS + 511 text tokens per window, every text token scored, as llama.cpp's
  perplexity tool starts every chunk with BOS. Gemma without BOS in front is a degraded model
  (ppl 39.6 instead of 17.7), where quantization errors are amplified erratically.
Agreement, against the same engine's unquantized model: top-1 = share of scored positions whose
argmax matches (teacher-forced on the text); greedy prefix = mean number of leading tokens of a
64-token greedy continuation that match, over 8 short prompts (GREEDY_PROMPTS), as a share of 64;
identical = continuations equal in all 64 tokens. Results are cached per variant (--work).

`rms` quantizes random matrices (N(0, 0.02), and Student-t with 3 degrees of freedom times 0.02:
heavy tails like real weights' outliers) and prints the RMS error of round-to-nearest and of the
scale search for G = 32/64/128, symmetric and asymmetric.

`ppl` converts SmolLM2-135M-Instruct (tests/real_models.py fetches it) to float32, then writes
copies whose every linear weight is dequantize(quantize_int4(w)) (and the tied embedding/lm_head
float16-rounded or int8 rows, dequantized), loads each with slmcore.LLM and measures perplexity
on /usr/share/common-licenses/GPL-3 in non-overlapping windows of 512 tokens. Caveat: that GGUF
is itself Q4_1 (asymmetric G=32) with a Q8_0 embedding, so the "float" baseline already lies on
an asymmetric G=32 grid and re-quantizing it at asymmetric G=32 is nearly lossless by
construction; the other settings measure re-quantization error on top of it.

`gate` results (2 shared cores; Δ = perplexity increase over the same engine's unquantized model;
top-1 agreement in brackets; "search" is the default search: absmax/7, Q4_0's signed max/-8 and
a least-squares refit, no clipping; "16-bit" = embedding / lm_head float16 instead of int8 rows):
  Gemma-3-270M (Q4_K_M GGUF; 7563 tokens)   plain: f32 39.62            bos: f32 17.68
    int4 G=128 RTN                           +146.1% (47.6%)             +112.0% (55.4%)
    int4 G=128 search                         +44.8% (55.2%)              +72.1% (61.0%)
    int4 G=64  RTN / search          +164.7% (50.4%) / +65.0% (57.5%)  +71.5% (61.4%) / +52.8% (65.7%)
    int4 G=32  RTN                           +134.0% (51.9%)              +55.6% (63.3%)
    int4 G=32  search (the default)           +49.8% (63.9%)              +31.2% (71.5%)
    int4 G=128 RTN, 16-bit                   +143.1% (47.8%)             +110.2% (55.8%)
    int4 G=32  search, 16-bit                 +49.9% (63.5%)              +30.8% (72.0%)
    llama.cpp Q4_0 default mix (F16 39.62 / 17.68)  +99.9% (58.4%)       +46.3% (67.9%)
    llama.cpp Q4_0 pure                      +128.4% (54.7%)              +63.6% (62.2%)
  SmolLM2-135M-Instruct (Q4_1 GGUF, flatters asymmetric G=32; plain, 7643 scored tokens; f32 22.05)
    int4 G=128 RTN +63.4% (56.4%), search +35.8% (63.6%); G=64 RTN +53.6%, search +32.9%;
    G=32 RTN +36.5% (65.8%), search +22.9% (69.8%); 16-bit: G=128 RTN +62.4%, G=32 search +22.9%;
    llama.cpp Q4_0 default mix +26.4% (67.7%), pure +40.1% (62.7%)
  Greedy continuations: no quantized model of either engine reproduced any of the 8 continuations
  (prefix 0-6% of 64 tokens, llama.cpp Q4_0 1-3%): these small models' first token already
  changes (SmolLM2: " Paris" at p=0.77 becomes " located"). slmcore float32 against llama.cpp F16:
  top-1 agreement 99.8%, greedy 8/8 identical, ppl equal to 4-5 digits.
  Clipping candidates (absmax/7 and max/-8 times 0.97/0.94/0.91) lower the weight error further
  but raised Gemma's G=32 bos increase from +31.2% to +51.1%; with ten factors (0.97 ... 0.70)
  on both scales it was +116.9% at G=128 and +50.1% at G=32. Load time of the search:
  Gemma 2.7 s vs 0.8 s RTN; TinyLlama-1.1B shape (bf16) 18.3 s vs 5.8 s (int4_load_memory.py).

`ppl` results (the older fake-quantization study; search then had ten clipping factors and no
Q4_0 scale; GPL-3 = 7643 scored tokens in 16 windows of 512; Δ vs the float32 model,
ppl 22.048; embedding/lm_head float16 unless said):
    embedding float16 +0.01%, embedding int8 rows +0.10%
    G=32  sym  RTN +35.6%  search +26.8%    |  G=32  asym RTN +0.01%  search +0.01% (lossless, see caveat)
    G=128 sym  RTN +61.7%  search +52.0%    |  G=128 asym RTN +59.4%  search +69.2%
    G=64  sym  RTN +52.8%                   |  G=64  asym RTN +39.7%
    G=32 sym search + int8 embedding +26.6%; G=128 sym search + int8 embedding +52.0%
Search ablations (module constants patched): G=128 asym refit only +54.1%, shrink grid only +62.9%;
G=128 sym refit only +48.1%, factors only +51.5%; G=32 sym refit only +37.9%, factors only +26.7%;
G=64 asym refit only +29.9%. The MSE search lowers weight RMS error by 9-14% everywhere (`rms`), but
its perplexity effect on this model is erratic (-6% to +20% relative to RTN).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# This checkout's slmcore (not an installed one) and tests/real_models.py.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from slmcore.perplexity import window_nll, windows  # noqa: E402

TEXT = Path("/usr/share/common-licenses/GPL-3")


def rms_table() -> None:
    from slmcore.quant import dequantize_int4, quantize_int4

    rng = np.random.default_rng(0)
    shape = (1536, 1152)
    sources = {
        "N(0, 0.02)": rng.standard_normal(shape) * 0.02,
        "t(3) * 0.02": rng.standard_t(3, shape) * 0.02,
    }
    print("| weights | G | sym | RMS RTN / std | RMS search / std | RMS reduction | MSE reduction | time RTN / search (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, w64 in sources.items():
        w = w64.astype(np.float32)
        std = float(w64.std())
        for group_size in (32, 64, 128):
            for sym in (True, False):
                row = []
                for search in (False, True):
                    start = time.perf_counter()
                    t = quantize_int4(w, group_size, sym=sym, search=search)
                    seconds = time.perf_counter() - start
                    error = float(np.sqrt(((dequantize_int4(t).astype(np.float64) - w64) ** 2).mean()))
                    row.append((error, seconds))
                (rtn, t_rtn), (found, t_search) = row
                print(
                    f"| {label} | {group_size} | {'sym' if sym else 'asym'} | {rtn / std:.4f} | {found / std:.4f} | "
                    f"{100 * (1 - found / rtn):.1f}% | {100 * (1 - (found / rtn) ** 2):.1f}% | {t_rtn:.2f} / {t_search:.2f} |"
                )


# --- perplexity ---------------------------------------------------------------------------------

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fake_quantized_copy(source: Path, target: Path, int4: tuple[int, bool, bool] | None, embedding: str) -> Path:
    """A copy of `source` whose linear weights are int4 round trips (group_size, sym, search) and
    whose embedding is kept (float32), float16-rounded, or int8 rows."""
    from slmcore.loader import Checkpoint, write_safetensors
    from slmcore.quant import dequantize_int4, dequantize_int8_rows, quantize_int4, quantize_int8_rows

    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "model.safetensors":
            shutil.copy(item, target / item.name)
    with Checkpoint.open(source) as checkpoint:

        def produce(name: str):
            def make() -> np.ndarray:
                w, dtype = checkpoint.tensor(name)
                assert dtype == "float32"
                if int4 is not None and w.ndim == 2 and name.split(".")[-2] in LINEARS:
                    group_size, sym, search = int4
                    return dequantize_int4(quantize_int4(w, group_size, sym=sym, search=search, name=name))
                if name in ("model.embed_tokens.weight", "lm_head.weight"):
                    if embedding == "float16":
                        return w.astype(np.float16).astype(np.float32)
                    if embedding == "int8":
                        return dequantize_int8_rows(quantize_int8_rows(w, name=name))
                return np.array(w)

            return make

        entries = [(name, produce(name), "float32", info.shape) for name, info in checkpoint.tensors.items()]
        write_safetensors(target / "model.safetensors", entries, metadata={"format": "pt"})
    return target


def measure(model_dir: Path, text: str, window: int) -> tuple[float, int, float]:
    import slmcore
    from slmcore.perplexity import perplexity

    start = time.perf_counter()
    with slmcore.LLM(model_dir, threads=2) as llm:
        result = perplexity(llm, text, window=window)
    return result.ppl, result.n_tokens, time.perf_counter() - start


def ppl_table(quick: bool, work: Path) -> None:
    from real_models import smollm2_gguf
    from slmcore.convert import convert_gguf

    base = work / "smollm2-f32"
    if not (base / "config.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        convert_gguf(smollm2_gguf(), base, dtype="float32", progress=False)
    text = TEXT.read_text(encoding="utf-8")
    window = 512
    if quick:
        text = text[: len(text) // 4]

    variants: list[tuple[str, tuple[int, bool, bool] | None, str]] = [
        ("float32 (converted Q4_1 GGUF)", None, "float32"),
        ("embedding float16", None, "float16"),
        ("embedding int8 rows", None, "int8"),
    ]
    for group_size in (32, 128):
        for sym in (True, False):
            for search in (False, True):
                variants.append((f"G={group_size} {'sym' if sym else 'asym'} {'search' if search else 'RTN'}",
                                 (group_size, sym, search), "float16"))  # fmt: skip
    variants += [
        ("G=128 sym search + embedding int8", (128, True, True), "int8"),
        ("G=32 sym search + embedding int8", (32, True, True), "int8"),
    ]
    baseline = None
    print(f"| variant | perplexity | Δ vs float32 | tokens | seconds |")
    print("|---|---|---|---|---|")
    for label, int4, embedding in variants:
        if int4 is None and embedding == "float32":
            model_dir = base
        else:
            model_dir = fake_quantized_copy(base, work / "variant", int4, embedding)
        ppl, n_tokens, seconds = measure(model_dir, text, window)
        if model_dir != base:
            shutil.rmtree(model_dir)
        baseline = ppl if baseline is None else baseline
        print(f"| {label} | {ppl:.4f} | {100 * (ppl / baseline - 1):+.2f}% | {n_tokens} | {seconds:.0f} |", flush=True)


# --- the gate: slmcore int4 against llama.cpp Q4_0 on the same token ids ------------------------

GATE_WINDOW = 512
GREEDY_TOKENS = 64
GREEDY_PROMPTS = (
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    ",
    "The three primary colours are",
    "In 1969, the first humans to walk on the Moon",
    "Water boils at a temperature of",
    "The GNU General Public License is",
    "A list of fruits: apple, banana,",
)


@dataclass
class Scored:
    """What one model did on the text: total NLL, scored tokens, the argmax at every scored
    position (per convention), and its greedy continuations of GREEDY_PROMPTS."""

    nll: dict[str, float]
    n_tokens: dict[str, int]
    top1: dict[str, np.ndarray]
    greedy: list[list[int]]
    load_seconds: float
    eval_seconds: float

    def ppl(self, convention: str) -> float:
        return math.exp(self.nll[convention] / self.n_tokens[convention])


def gate_windows(ids: list[int], n_windows: int | None, bos: int | None) -> dict[str, list[tuple[list[int], int]]]:
    """The windows each convention scores, as (window ids, first scored index in the window):
    targets are window[first:], predicted by logits rows first-1 .. len-2.

    "plain": slmcore.perplexity's windows (non-overlapping, GATE_WINDOW tokens, the first token of
    each unscored). "bos" (models whose tokenizer starts the text with BOS): the text after the
    BOS in chunks of GATE_WINDOW - 1, each window BOS + chunk, every chunk token scored (llama.cpp's
    perplexity tool also starts every chunk with BOS; Gemma without a BOS in front is far worse).
    """
    plain = [(ids[begin:end], first - begin) for begin, end, first in windows(len(ids), GATE_WINDOW, GATE_WINDOW)]
    out = {"plain": plain[:n_windows]}
    if bos is not None and ids[0] == bos:
        text = ids[1:]
        step = GATE_WINDOW - 1
        out["bos"] = [([bos] + text[i : i + step], 1) for i in range(0, len(text), step)][:n_windows]
    return out


def score(logits_of, greedy_of, spans: dict[str, list[tuple[list[int], int]]], prompts: list[list[int]]) -> Scored:
    """Run one model (logits_of(ids) -> [len, vocab] float32; greedy_of(ids, n) -> n ids) over the windows."""
    start = time.perf_counter()
    nll, n_tokens, top1 = {}, {}, {}
    for convention, items in spans.items():
        total, count, argmax = 0.0, 0, []
        for window_ids, first in items:
            logits = logits_of(window_ids)
            rows = logits[first - 1 : len(window_ids) - 1]
            total += window_nll(rows, np.asarray(window_ids[first:]))
            count += len(window_ids) - first
            argmax.append(rows.argmax(axis=1))
        nll[convention], n_tokens[convention], top1[convention] = total, count, np.concatenate(argmax)
    greedy = [greedy_of(p, GREEDY_TOKENS) for p in prompts]
    return Scored(nll, n_tokens, top1, greedy, 0.0, time.perf_counter() - start)


def score_slmcore(model_dir: Path, spans, prompts, group_size: int | None, search: bool = False,
                  embedding: str = "int8") -> Scored:  # fmt: skip
    """slmcore on model_dir: unquantized (group_size None) or quant="int4" with these settings."""
    import slmcore
    from slmcore import llm as llm_module

    saved = llm_module.INT4_SEARCH, llm_module.INT4_EMBEDDING
    llm_module.INT4_SEARCH, llm_module.INT4_EMBEDDING = search, embedding
    try:
        start = time.perf_counter()
        quant = None if group_size is None else "int4"
        llm = slmcore.LLM(model_dir, quant=quant, group_size=group_size, threads=2, max_seq_len=1024)
        load_seconds = time.perf_counter() - start
    finally:
        llm_module.INT4_SEARCH, llm_module.INT4_EMBEDDING = saved
    params = slmcore.SamplingParams(temperature=0.0, max_tokens=GREEDY_TOKENS, ignore_eos=True)
    with llm:
        result = score(llm.logits, lambda ids, n: llm.generate(ids, params)[0].token_ids, spans, prompts)
    result.load_seconds = load_seconds
    return result


def score_llama_cpp(path: Path, spans, prompts) -> Scored:
    """llama.cpp (llama-cpp-python) on a GGUF: logits of every position, fed the same token ids."""
    import llama_cpp

    start = time.perf_counter()
    model = llama_cpp.Llama(str(path), n_ctx=GATE_WINDOW + GREEDY_TOKENS + 64, n_batch=GATE_WINDOW,
                            n_ubatch=GATE_WINDOW, logits_all=True, n_threads=2, n_threads_batch=2, verbose=False)  # fmt: skip
    load_seconds = time.perf_counter() - start

    def logits_of(ids: list[int]) -> np.ndarray:
        model.reset()
        model.eval(ids)
        return np.array(model.scores[: len(ids)], dtype=np.float32)

    def greedy_of(ids: list[int], n: int) -> list[int]:
        model.reset()
        model.eval(ids)
        out = []
        for _ in range(n):
            token = int(np.argmax(model.scores[model.n_tokens - 1]))
            out.append(token)
            model.eval([token])
        return out

    result = score(logits_of, greedy_of, spans, prompts)
    result.load_seconds = load_seconds
    model.close()
    return result


def llama_cpp_file(source: Path, out: Path, ftype: str, pure: bool = False) -> Path:
    """source requantized by llama.cpp into `ftype` ("F16" or "Q4_0"; allow_requantize, so that a
    quantized GGUF becomes F16 = its dequantized weights); cached at `out`."""
    import llama_cpp

    if out.exists():
        return out
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[ftype]
    params.pure = pure
    params.allow_requantize = True
    params.nthread = 2
    tmp = out.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama_model_quantize {source} -> {ftype} failed")
    tmp.rename(out)
    return out


def cache_key(engine: str, label: str, setting: object, spans: dict, prompts: list[list[int]]) -> str:
    """A digest of everything a variant's result depends on: the windows, the prompts, the setting,
    and for slmcore's int4 variants the source of its quantizer and loader (so a change re-runs them)."""
    digest = hashlib.sha256(json.dumps([engine, label, str(setting), spans, prompts]).encode())
    if engine == "slmcore" and setting is not None:
        for source in ("slmcore/quant.py", "slmcore/llm.py", "kernels/cpu/int4_quantize.inc"):
            digest.update((ROOT / source).read_bytes())
    return digest.hexdigest()[:16]


def save_scored(path: Path, r: Scored) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"nll": r.nll, "n_tokens": r.n_tokens, "greedy": r.greedy, "load_seconds": r.load_seconds,
            "eval_seconds": r.eval_seconds}  # fmt: skip
    np.savez(path, meta=np.array(json.dumps(meta)), **{f"top1_{k}": v for k, v in r.top1.items()})


def load_scored(path: Path) -> Scored:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        top1 = {k[len("top1_") :]: data[k] for k in data.files if k.startswith("top1_")}
    return Scored(meta["nll"], meta["n_tokens"], top1, meta["greedy"], meta["load_seconds"], meta["eval_seconds"])


def agreement(a: Scored, b: Scored, convention: str) -> tuple[float, float, int]:
    """(top-1 agreement over the scored positions, mean common prefix of the greedy continuations
    as a fraction of GREEDY_TOKENS, continuations identical in full) of a against b."""
    top1 = float((a.top1[convention] == b.top1[convention]).mean())
    prefixes = []
    for x, y in zip(a.greedy, b.greedy):
        prefixes.append(next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), len(x)))
    return top1, float(np.mean(prefixes)) / GREEDY_TOKENS, sum(p == GREEDY_TOKENS for p in prefixes)


def gate_model(model: str, work: Path, n_windows: int | None, log: Path) -> None:
    """Every variant of one model; prints its tables and appends them to `log`."""
    import slmcore
    from real_models import gemma3_gguf, smollm2_gguf
    from slmcore.convert import convert_gguf

    gguf = {"gemma3": gemma3_gguf, "smollm2": smollm2_gguf}[model]()
    base = work / f"{model}-f32"
    if not (base / "config.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        convert_gguf(gguf, base, dtype="float32", progress=False)
    f16 = llama_cpp_file(gguf, work / f"{model}-f16.gguf", "F16")
    with slmcore.LLM(base, threads=2) as llm:
        ids = llm.tokenizer.encode(TEXT.read_text(encoding="utf-8"))
        prompts = [llm.tokenizer.encode(p) for p in GREEDY_PROMPTS]
        bos = llm.config.raw.get("bos_token_id")
    spans = gate_windows(ids, n_windows, bos)

    variants: list[tuple[str, str, object]] = [("slmcore", "float32 (GGUF dequantized)", None)]
    for group_size in (128, 64, 32):
        for search in (False, True):
            variants.append(("slmcore", f"int4 G={group_size} {'search' if search else 'RTN'}, emb int8", (group_size, search, "int8")))
    for group_size, search in ((128, False), (32, True)):
        variants.append(("slmcore", f"int4 G={group_size} {'search' if search else 'RTN'}, emb 16-bit", (group_size, search, "16bit")))
    variants += [
        ("llama.cpp", "F16 (GGUF dequantized)", f16),
        ("llama.cpp", "Q4_0 (default mix)", llama_cpp_file(f16, work / f"{model}-q4_0.gguf", "Q4_0")),
        ("llama.cpp", "Q4_0 pure", llama_cpp_file(f16, work / f"{model}-q4_0-pure.gguf", "Q4_0", pure=True)),
    ]  # fmt: skip

    results: dict[tuple[str, str], Scored] = {}
    for engine, label, setting in variants:
        cache = work / "scored" / f"{model}-{cache_key(engine, label, setting, spans, prompts)}.npz"
        if cache.exists():
            results[engine, label] = load_scored(cache)
        else:
            if engine == "llama.cpp":
                results[engine, label] = score_llama_cpp(setting, spans, prompts)
            elif setting is None:
                results[engine, label] = score_slmcore(base, spans, prompts, None)
            else:
                results[engine, label] = score_slmcore(base, spans, prompts, *setting)
            save_scored(cache, results[engine, label])
        r = results[engine, label]
        print(f"  {model} {engine} {label}: " + ", ".join(f"{c} ppl {r.ppl(c):.4f}" for c in spans)
              + f" (load {r.load_seconds:.1f} s, eval {r.eval_seconds:.0f} s)", flush=True)  # fmt: skip

    lines = [f"### {model} ({gguf.name}): GPL-3, {len(ids)} tokens"]
    for convention, items in spans.items():
        lines.append(f"\nconvention {convention!r}: {len(items)} windows, {results[variants[0][:2]].n_tokens[convention]} scored tokens\n")
        lines.append("| engine | variant | ppl | Δ vs own unquantized | top-1 agreement | greedy prefix | greedy identical | load (s) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for engine, label, _ in variants:
            r = results[engine, label]
            ref = results[variants[0][:2]] if engine == "slmcore" else results["llama.cpp", "F16 (GGUF dequantized)"]
            top1, prefix, identical = agreement(r, ref, convention)
            lines.append(f"| {engine} | {label} | {r.ppl(convention):.4f} | {100 * (r.ppl(convention) / ref.ppl(convention) - 1):+.2f}% | "
                         f"{100 * top1:.2f}% | {100 * prefix:.0f}% | {identical}/{len(prompts)} | {r.load_seconds:.1f} |")  # fmt: skip
        ours, theirs = results[variants[0][:2]], results["llama.cpp", "F16 (GGUF dequantized)"]
        top1, prefix, identical = agreement(ours, theirs, convention)
        lines.append(f"\nslmcore float32 vs llama.cpp F16: top-1 agreement {100 * top1:.2f}%, greedy prefix {100 * prefix:.0f}%, identical {identical}/{len(prompts)}")
    table = "\n".join(lines)
    print(table, flush=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(table + "\n\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["rms", "ppl", "gate"])
    parser.add_argument("--quick", action="store_true", help="ppl: a quarter of the text")
    parser.add_argument("--work", type=Path, default=None, help="ppl, gate: directory for converted models and copies")
    parser.add_argument("--models", default="gemma3,smollm2", help="gate: which models (gemma3, smollm2)")
    parser.add_argument("--windows", type=int, default=None, help="gate: score only the first N windows")
    args = parser.parse_args()
    if args.what == "rms":
        rms_table()
    elif args.what == "gate":
        work = args.work or Path(tempfile.gettempdir()) / "slmcore-int4-gate"
        work.mkdir(parents=True, exist_ok=True)
        for model in args.models.split(","):
            gate_model(model, work, args.windows, work / "gate.md")
    else:
        work = args.work or Path(tempfile.gettempdir()) / "slmcore-int4-accuracy"
        work.mkdir(parents=True, exist_ok=True)
        ppl_table(args.quick, work)


if __name__ == "__main__":
    main()
