"""The `slmcore` command: generate, chat, convert, bench."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

DESCRIPTION = """\
Run small language models on this machine.

Without --model, commands use the default model, SmolLM2-135M-Instruct, which is downloaded
(~100 MB) and converted into the cache on first use ($SLMCORE_HOME, else ~/.cache/slmcore).
--model takes a model directory (config.json + *.safetensors) or a .gguf file."""

EXAMPLES = """\
examples:
  slmcore generate "Write a haiku about the sea."
  slmcore generate "def fibonacci(n):" --raw --max-tokens 64 --temperature 0
  slmcore chat --system "You are a concise assistant."
  slmcore convert SmolLM2-135M-Instruct.Q4_1.gguf ./smollm2 --dtype bfloat16
  slmcore convert SmolLM2-135M-Instruct.Q4_1.gguf ./smollm2-int4 --quant int4
  slmcore bench --threads 2 --json
  slmcore perplexity --file /usr/share/common-licenses/GPL-3
"""


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="model directory or .gguf file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (CUDA runs int4: add --quant int4)")
    p.add_argument("--quant", choices=["int4"], default=None, help="quantize the weights at load")
    p.add_argument("--group-size", type=int, choices=[32, 64, 128], default=None,
                   help="int4 group size (default 32)")


def _sampling_args(p: argparse.ArgumentParser, max_tokens: int) -> None:
    p.add_argument("--max-tokens", type=int, default=max_tokens, help=f"tokens to generate at most (default {max_tokens})")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (default 0.9)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same output")
    p.add_argument("--system", help="system message (chat-templated models)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slmcore", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate", help="complete a prompt and print the text as it is generated",
                       description="Complete PROMPT. Chat models get it as a user message through their chat "
                                   "template unless --raw is given.")
    g.add_argument("prompt", help="the prompt text")
    _model_args(g)
    _sampling_args(g, max_tokens=256)
    g.add_argument("--raw", action="store_true", help="feed the prompt as plain text, without the chat template")
    g.add_argument("--json", action="store_true", help="print one JSON object (text, tokens, timings) instead of streaming")

    c = sub.add_parser("chat", help="talk with the model in the terminal (type /exit to leave)",
                       description="Interactive multi-turn chat through the model's chat template, streaming replies.")
    _model_args(c)
    _sampling_args(c, max_tokens=512)

    v = sub.add_parser("convert", help="convert a GGUF file into a safetensors model directory",
                       description="Convert GGUF (F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q4_K/Q6_K tensors) into "
                                   "config.json + model.safetensors + tokenizer files.")
    v.add_argument("gguf", help="input .gguf file")
    v.add_argument("out_dir", help="output directory (created)")
    v.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="weight dtype of the output (default float32)")
    v.add_argument("--quant", choices=["int4"], default=None,
                   help="write an slmcore int4 checkpoint instead; Q4_0/Q4_1 layer matrices are kept without loss")
    v.add_argument("--group-size", type=int, choices=[32, 64, 128], default=None,
                   help="int4 group size (default 32, which keeps a GGUF's Q4_0/Q4_1 blocks as they are)")

    p = sub.add_parser("perplexity", help="perplexity of the model on a text file",
                       description="Perplexity over the text of FILE in fixed windows (each a fresh sequence, "
                                   "scored on all but its first token).")
    _model_args(p)
    p.add_argument("--file", "-f", required=True, help="UTF-8 text file")
    p.add_argument("--window", type=int, default=512, help="tokens per window (default 512)")
    p.add_argument("--stride", type=int, help="sliding windows advancing by this many tokens (default: --window)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    b = sub.add_parser("bench", help="measure prefill and decode tokens/s",
                       description="Time a prefill of --prompt-tokens random tokens and the decode of --gen-tokens "
                                   "more, and report tokens/s and GB/s of weights read per decoded token.")
    _model_args(b)
    b.add_argument("--prompt-tokens", type=int, default=512, help="prefill length (default 512)")
    b.add_argument("--gen-tokens", type=int, default=128, help="decode steps (default 128)")
    b.add_argument("--repeats", type=int, default=3, help="runs; the best is reported (default 3)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _load(args: argparse.Namespace):
    import slmcore

    return slmcore.LLM(args.model, device=args.device, threads=args.threads, quant=args.quant, group_size=args.group_size)


def _params(args: argparse.Namespace):
    import slmcore

    return slmcore.SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                  seed=args.seed)


def _has_chat_template(llm) -> bool:
    try:
        return llm.tokenizer.chat_template is not None
    except Exception:  # noqa: BLE001 - no tokenizer: no template
        return False


def cmd_generate(args: argparse.Namespace) -> int:
    llm = _load(args)
    params = _params(args)
    if not args.raw and _has_chat_template(llm):
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": args.prompt})
        chunks = llm.stream_chat(messages, params)
    else:
        chunks = llm.stream(args.prompt, params)
    if args.json:
        text, ids, finish = "", [], None
        start = time.perf_counter()
        for chunk in chunks:
            text += chunk.text
            ids += chunk.token_ids
            finish = chunk.finish_reason or finish
        print(json.dumps({"text": text, "token_ids": ids, "finish_reason": finish,
                          "seconds": round(time.perf_counter() - start, 4)}, ensure_ascii=False))
        return 0
    for chunk in chunks:
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    llm = _load(args)
    if not _has_chat_template(llm):
        print("error: this model has no chat template; use `slmcore generate --raw`", file=sys.stderr)
        return 1
    params = _params(args)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    print("slmcore chat: type a message, /exit to leave.", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        if line.strip() in ("/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        reply = ""
        for chunk in llm.stream_chat(messages, params):
            reply += chunk.text
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": reply})


def cmd_convert(args: argparse.Namespace) -> int:
    from slmcore.convert import convert_gguf

    if args.quant is None:
        if args.group_size is not None:
            from slmcore.errors import InvalidArgumentError

            raise InvalidArgumentError("--group-size applies to --quant int4 only")
        out = convert_gguf(args.gguf, args.out_dir, dtype=args.dtype, progress=True)
    else:
        import slmcore

        with slmcore.LLM(args.gguf, quant=args.quant, group_size=args.group_size) as llm:
            out = llm.save_quantized(args.out_dir)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from slmcore.errors import InvalidArgumentError

    for name in ("prompt_tokens", "gen_tokens", "repeats"):
        if getattr(args, name) < 1:
            raise InvalidArgumentError(f"--{name.replace('_', '-')} must be at least 1")
    llm = _load(args)
    engine = llm._engine
    vocab = llm.config.vocab_size
    if args.prompt_tokens + args.gen_tokens > llm.max_seq_len:
        raise InvalidArgumentError(f"--prompt-tokens + --gen-tokens must fit in max_seq_len={llm.max_seq_len}")
    ids = np.random.default_rng(0).integers(0, vocab, size=args.prompt_tokens + args.gen_tokens)
    prefill_s, decode_s = [], []
    for _ in range(args.repeats):
        engine.reset()
        t0 = time.perf_counter()
        engine.forward(ids[: args.prompt_tokens], "last")
        t1 = time.perf_counter()
        for t in ids[args.prompt_tokens:]:
            engine.forward(np.array([t]), "last")
        t2 = time.perf_counter()
        prefill_s.append(t1 - t0)
        decode_s.append(t2 - t1)
    engine.reset()
    weight_bytes = llm._weight_bytes_per_token()
    decode_tps = args.gen_tokens / min(decode_s)
    result = {
        "model": str(llm.path), "dtype": llm.dtype, "threads": llm.threads, "isa": engine.isa,
        "prefill_tokens": args.prompt_tokens, "prefill_tokens_per_s": round(args.prompt_tokens / min(prefill_s), 1),
        "decode_tokens": args.gen_tokens, "decode_tokens_per_s": round(decode_tps, 1),
        "weight_bytes_per_token": weight_bytes, "decode_weight_gb_per_s": round(decode_tps * weight_bytes / 1e9, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{llm.path.name}: {llm.dtype}, {llm.threads} thread(s), {engine.isa}")
        print(f"prefill {args.prompt_tokens} tokens: {result['prefill_tokens_per_s']:.1f} tokens/s")
        print(f"decode {args.gen_tokens} tokens:  {result['decode_tokens_per_s']:.1f} tokens/s "
              f"({result['decode_weight_gb_per_s']:.2f} GB/s of weights)")
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slmcore.errors import InvalidArgumentError
    from slmcore.perplexity import perplexity

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"cannot read {args.file} as UTF-8 text: {e}") from e
    llm = _load(args)
    result = perplexity(llm, text, window=args.window, stride=args.stride)
    if args.json:
        print(json.dumps({"model": str(llm.path), "perplexity": result.ppl, "tokens": result.n_tokens,
                          "windows": result.n_windows}))
    else:
        print(f"perplexity {result.ppl:.4f} over {result.n_tokens} scored tokens in {result.n_windows} windows")
    return 0


COMMANDS = {
    "generate": cmd_generate, "chat": cmd_chat, "convert": cmd_convert, "bench": cmd_bench,
    "perplexity": cmd_perplexity,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `slmcore` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import slmcore

        print(slmcore.__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    from slmcore.errors import SlmError

    try:
        return COMMANDS[args.command](args)
    except SlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
