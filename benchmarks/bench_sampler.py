"""Per-step cost of the sampler (penalties, temperature, top-k/top-p/min-p, draw) and of logprobs.

Run standalone: python benchmarks/bench_sampler.py [--vocab 49152 262144]
Logits are random: N(0, 1) is a flat worst case for top-p (the nucleus holds ~40% of the
vocabulary and has to be sorted), N(0, 4) is peaked like a language model's. Shows the best of
several rounds, with the load average. Not collected by pytest (no test_ functions).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from slmcore.sampling import Sampler, SamplingParams, token_logprobs

CASES = {
    "greedy": dict(temperature=0.0),
    "greedy + repetition/presence/frequency": dict(temperature=0.0, repetition_penalty=1.1,
                                                   presence_penalty=0.5, frequency_penalty=0.5),
    "temperature=1.0": dict(temperature=1.0),
    "temperature=0.7 top_p=0.9": dict(temperature=0.7, top_p=0.9),
    "temperature=0.7 top_k=50": dict(temperature=0.7, top_k=50),
    "temperature=0.7 top_k=50 top_p=0.9 min_p=0.05": dict(temperature=0.7, top_k=50, top_p=0.9, min_p=0.05),
}


def best_time(fn, rounds: int = 5, calls: int = 50) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, nargs="+", default=[49152, 262144])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    history = rng.integers(0, 1000, size=300).tolist()  # a prompt plus generated tokens
    print(f"{'vocab':>7s} {'logits':8s} {'case':48s} {'us/step':>8s}")
    for vocab in args.vocab:
        for scale in (1.0, 4.0):
            logits = (rng.standard_normal(vocab) * scale).astype(np.float32)
            for name, params in CASES.items():
                sampler = Sampler(SamplingParams(**params, seed=0), history[:200])
                for t in history[200:]:
                    sampler.append(t)
                us = best_time(lambda: sampler.sample(logits)) * 1e6
                print(f"{vocab:7d} N(0,{scale:g})  {name:48s} {us:8.1f}")
            us = best_time(lambda: token_logprobs(logits, 5, 20)) * 1e6
            print(f"{vocab:7d} N(0,{scale:g})  {'logprobs (chosen + top 20)':48s} {us:8.1f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
