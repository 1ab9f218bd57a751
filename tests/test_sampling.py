"""SamplingParams validation and the sampler against a plain float64 reference written here.

The reference follows vLLM's definitions step by step with full sorts and no shortcuts; the
sampler's optimised paths (strided top-k bound, nucleus window, block sums) must give the same
distribution, and its draws must follow that distribution.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from slmcore.errors import InvalidArgumentError, InvalidTokenError, NumericalError
from slmcore.sampling import Sampler, SamplingParams, token_logprobs

# -- validation --------------------------------------------------------------------------------

BAD_PARAMS = [
    ("temperature", -0.1), ("temperature", float("nan")), ("temperature", float("inf")),
    ("temperature", "1"), ("temperature", True), ("temperature", None),
    ("top_p", 0), ("top_p", -0.5), ("top_p", 1.01), ("top_p", float("nan")), ("top_p", True),
    ("top_k", -2), ("top_k", 1.5), ("top_k", True), ("top_k", "3"), ("top_k", None),
    ("min_p", -0.01), ("min_p", 1.5), ("min_p", "0.1"),
    ("max_tokens", 0), ("max_tokens", -3), ("max_tokens", 2.0), ("max_tokens", True), ("max_tokens", None),
    ("stop", ""), ("stop", [""]), ("stop", [1]), ("stop", 5), ("stop", ["a", None]), ("stop", b"x"),
    ("stop_token_ids", [-1]), ("stop_token_ids", [1.5]), ("stop_token_ids", [True]), ("stop_token_ids", "abc"),
    ("stop_token_ids", 5),
    ("ignore_eos", 1), ("ignore_eos", "yes"), ("ignore_eos", None),
    ("seed", -1), ("seed", 1.5), ("seed", True), ("seed", "1"),
    ("repetition_penalty", 0), ("repetition_penalty", -1.0), ("repetition_penalty", float("inf")),
    ("presence_penalty", 2.5), ("presence_penalty", -2.01), ("presence_penalty", float("nan")),
    ("frequency_penalty", 3), ("frequency_penalty", -2.5), ("frequency_penalty", False),
    ("logprobs", -1), ("logprobs", 21), ("logprobs", 1.5), ("logprobs", True),
]


@pytest.mark.parametrize("field,value", BAD_PARAMS, ids=[f"{f}={v!r}" for f, v in BAD_PARAMS])
def test_invalid_params_name_field_and_value(field, value):
    with pytest.raises(InvalidArgumentError) as info:
        SamplingParams(**{field: value})
    message = str(info.value)
    assert field in message
    if field not in ("stop", "stop_token_ids"):  # those name the offending element instead
        assert repr(value) in message or repr(float(value)) in message or str(value) in message


def test_ranges_are_stated():
    with pytest.raises(InvalidArgumentError, match=r"0 < top_p <= 1"):
        SamplingParams(top_p=0.0)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 20\]"):
        SamplingParams(logprobs=50)
    with pytest.raises(InvalidArgumentError, match=r"-2 <= presence_penalty <= 2"):
        SamplingParams(presence_penalty=5)


def test_defaults_and_accepted_values():
    p = SamplingParams()
    assert (p.temperature, p.top_p, p.top_k, p.min_p, p.max_tokens) == (1.0, 1.0, -1, 0.0, 256)
    assert (p.stop, p.stop_token_ids, p.ignore_eos, p.seed, p.logprobs) == ([], [], False, None, None)
    assert (p.repetition_penalty, p.presence_penalty, p.frequency_penalty) == (1.0, 0.0, 0.0)
    assert not p.greedy and SamplingParams(temperature=0).greedy
    assert SamplingParams(top_k=0).top_k == 0  # 0 is "off", like -1
    assert SamplingParams(stop="x").stop == ["x"]
    assert SamplingParams(stop=("a", "b")).stop == ["a", "b"]
    assert SamplingParams(stop_token_ids=(np.int64(3), 4)).stop_token_ids == [3, 4]
    p = SamplingParams(temperature=np.float32(0.5), seed=np.int64(7), top_k=np.int32(3), logprobs=0,
                       min_p=1, top_p=1, presence_penalty=-2, frequency_penalty=2)
    assert p.temperature == 0.5 and type(p.temperature) is float and p.seed == 7 and type(p.seed) is int
    assert SamplingParams(logprobs=20).logprobs == 20
    with pytest.raises(TypeError):
        SamplingParams(best_of=2)  # unknown fields are not silently ignored


# -- the reference -----------------------------------------------------------------------------


def reference_distribution(logits, params: SamplingParams, prompt=(), generated=()) -> np.ndarray:
    """vLLM's sampling distribution, plainly, in float64."""
    x = np.array(logits, dtype=np.float64)
    for t in set(prompt) | set(generated):
        x[t] = x[t] / params.repetition_penalty if x[t] > 0 else x[t] * params.repetition_penalty
    for t, count in Counter(generated).items():
        x[t] -= params.frequency_penalty * count + params.presence_penalty
    if params.temperature < 1e-5:
        p = np.zeros_like(x)
        p[np.argmax(x)] = 1.0
        return p
    x = x / params.temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    if params.top_k > 0:
        kth = np.sort(x)[::-1][min(params.top_k, x.size) - 1]
        p[x < kth] = 0.0  # ties with the k-th value stay
        p /= p.sum()
    if params.top_p < 1.0:
        ordered = np.sort(p)[::-1]
        cumulative = np.cumsum(ordered)
        i = min(int(np.argmax(cumulative >= params.top_p)) if (cumulative >= params.top_p).any() else x.size - 1,
                x.size - 1)
        p[p < ordered[i]] = 0.0  # the smallest prefix reaching top_p, and ties with its last token
        p /= p.sum()
    if params.min_p > 0.0:
        p[p < params.min_p * p.max()] = 0.0
        p /= p.sum()
    return p


def fixture_logits() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    ties = np.array([3, 3, 3, 2, 2, 1, 1, 1, 0, 0, -1, -5], dtype=np.float32)
    extreme = np.array([3e38, -3e38, 1e4, 1e4 - 0.5, -np.inf, 0.0, 88.0, -88.0, 1e-30, 2.0], dtype=np.float32)
    large_values = np.array([1e4, 1e4 - 0.5, 1e4 - 1, 1e4 - 3, -1e4, 0, 5, -np.inf], dtype=np.float32)
    return {
        "normal-1000": rng.standard_normal(1000).astype(np.float32) * 2,
        "ties": ties,
        "extreme": extreme,
        "large-values": large_values,
        # long enough for the strided top-k bound and the block sums; a flat and a peaked one
        "flat-70000": rng.standard_normal(70000).astype(np.float32),
        "peaked-70000": (rng.standard_normal(70000) * 4).astype(np.float32),
    }


PARAM_CASES = {
    "plain": dict(temperature=1.0),
    "greedy": dict(temperature=0.0),
    "hot": dict(temperature=1.7),
    "cold": dict(temperature=0.2),
    "top_p": dict(temperature=0.7, top_p=0.9),
    "top_p_tiny": dict(temperature=1.0, top_p=0.01),
    "top_k": dict(temperature=1.3, top_k=5),
    "top_k_1": dict(temperature=1.0, top_k=1),
    "top_k_big": dict(temperature=1.0, top_k=300),
    "min_p": dict(temperature=0.5, min_p=0.1),
    "all_filters": dict(temperature=0.9, top_k=50, top_p=0.8, min_p=0.05),
    "penalties": dict(temperature=1.0, repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.7),
    "negative_penalties": dict(temperature=0.8, repetition_penalty=0.7, presence_penalty=-0.4,
                               frequency_penalty=-1.1, top_p=0.95),
    "greedy_penalised": dict(temperature=0.0, repetition_penalty=2.0, frequency_penalty=2.0),
}
PROMPT = (0, 1, 2, 5, 5)
GENERATED = (1, 3, 3, 3, 7, 0)


def make_sampler(params, vocab_size, prompt=PROMPT, generated=GENERATED) -> Sampler:
    sampler = Sampler(params, [t % vocab_size for t in prompt])
    for t in generated:
        sampler.append(t % vocab_size)
    return sampler


@pytest.mark.parametrize("logits_name", list(fixture_logits()))
@pytest.mark.parametrize("case", list(PARAM_CASES))
def test_distribution_matches_reference(case, logits_name):
    logits = fixture_logits()[logits_name]
    params = SamplingParams(**PARAM_CASES[case])
    n = logits.size
    prompt, generated = [t % n for t in PROMPT], [t % n for t in GENERATED]
    ours = make_sampler(params, n).probabilities(logits)
    ref = reference_distribution(logits, params, prompt, generated)
    assert ours.shape == ref.shape
    assert ours.sum() == pytest.approx(1.0, abs=1e-9)
    # The sampler works on float32 logits: a logit of size |x| carries an error of about
    # |x| * 2^-24, which divided by the temperature is a relative error in the probabilities.
    finite = np.abs(logits[np.isfinite(logits) & (np.abs(logits) < 1e30)])
    rtol = 1e-4 + 4 * finite.max() * 2.0**-24 / max(params.temperature, 1e-5)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-7)
    # the same support (float32 weights underflow to 0 below ~1e-45 of the largest)
    assert not (ours > 0)[ref == 0].any()
    assert (ours > 0)[ref > 1e-30].all()


def test_distribution_is_not_trivially_equal():
    """The filters change the distribution on these fixtures (so the comparison above tests them)."""
    logits = fixture_logits()["normal-1000"]
    plain = reference_distribution(logits, SamplingParams(temperature=0.7))
    for case in ("top_p", "top_k", "min_p", "all_filters"):
        filtered = reference_distribution(logits, SamplingParams(**PARAM_CASES[case]))
        assert 1 < np.count_nonzero(filtered) < np.count_nonzero(plain), case
    ties = fixture_logits()["ties"]
    # top_k=2 keeps all three tokens tied for first; top_k=4 keeps the two tied for fourth as well
    assert np.count_nonzero(reference_distribution(ties, SamplingParams(top_k=2))) == 3
    assert np.count_nonzero(make_sampler(SamplingParams(top_k=4), 12, (), ()).probabilities(ties)) == 5


def test_penalties_follow_vllm_definitions():
    logits = np.array([2.0, -2.0, 2.0, -2.0, 0.5], dtype=np.float32)
    params = SamplingParams(repetition_penalty=2.0, presence_penalty=0.25, frequency_penalty=0.5)
    sampler = Sampler(params, prompt_token_ids=[0, 1])  # repetition only for prompt tokens
    for t in (2, 2, 3):
        sampler.append(t)
    out = sampler.penalised(logits)
    # 0: prompt, positive -> /2; 1: prompt, negative -> *2; 2: generated twice -> /2 - 0.25 - 2*0.5;
    # 3: generated once, negative -> *2 - 0.25 - 0.5; 4: untouched
    np.testing.assert_allclose(out, [1.0, -4.0, 1.0 - 1.25, -4.0 - 0.75, 0.5], rtol=1e-6)
    np.testing.assert_array_equal(logits, [2.0, -2.0, 2.0, -2.0, 0.5])  # the input is not modified


# -- draws -------------------------------------------------------------------------------------


def chi_square(counts: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic over bins with expected count >= 5 (the rest pooled); (stat, dof)."""
    big = expected >= 5
    obs = list(counts[big]) + [counts[~big].sum()]
    exp = list(expected[big]) + [expected[~big].sum()]
    if exp[-1] < 5:
        obs, exp = obs[:-1], exp[:-1]
        obs[-1] += counts[~big].sum()
        exp[-1] += expected[~big].sum()
    obs, exp = np.array(obs, dtype=float), np.array(exp, dtype=float)
    return float(((obs - exp) ** 2 / exp).sum()), len(obs) - 1


@pytest.mark.parametrize("logits_name,case,draws", [
    ("normal-1000", "plain", 20000),
    ("normal-1000", "all_filters", 20000),
    ("ties", "top_p", 20000),
    ("ties", "penalties", 20000),
    ("peaked-70000", "top_p", 6000),
    ("flat-70000", "min_p", 4000),
])
def test_draw_frequencies_follow_the_distribution(logits_name, case, draws):
    logits = fixture_logits()[logits_name]
    params = SamplingParams(**PARAM_CASES[case], seed=2024)
    sampler = make_sampler(params, logits.size)
    expected = reference_distribution(logits, params, [t % logits.size for t in PROMPT],
                                      [t % logits.size for t in GENERATED]) * draws
    counts = np.bincount([sampler.sample(logits) for _ in range(draws)], minlength=logits.size)
    assert counts[expected == 0].sum() == 0  # never a filtered-out token
    stat, dof = chi_square(counts, expected)
    # mean dof, sd sqrt(2 dof): 6 sd is far beyond chance, well below what a wrong weight gives
    assert dof >= 3
    assert stat < dof + 6 * math.sqrt(2 * dof), (stat, dof)


def test_large_vocabulary_draw_uses_every_block():
    """A uniform distribution over 70000 tokens: draws land in every block of the two-level CDF."""
    params = SamplingParams(seed=5)
    sampler = Sampler(params)
    logits = np.zeros(70000, dtype=np.float32)
    draws = np.array([sampler.sample(logits) for _ in range(3000)])
    counts = np.bincount(draws // 1024, minlength=69)  # 68 full blocks and a short one
    expected = np.full(69, 3000 / 70000 * 1024)
    expected[-1] = 3000 / 70000 * (70000 - 68 * 1024)
    stat, dof = chi_square(counts, expected)
    assert stat < dof + 6 * math.sqrt(2 * dof)


def test_seed_reproducibility():
    logits = fixture_logits()["normal-1000"]

    def run(seed):
        sampler = Sampler(SamplingParams(temperature=1.0, top_p=0.95, seed=seed))
        return [sampler.sample(logits) for _ in range(50)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(None) != run(None)  # no seed: fresh entropy each request


def test_greedy_is_argmax():
    rng = np.random.default_rng(3)
    sampler = Sampler(SamplingParams(temperature=0.0, seed=1))
    for n in (5, 1000, 49152):
        logits = rng.standard_normal(n).astype(np.float32)
        assert sampler.sample(logits) == int(np.argmax(logits))
        sampler = Sampler(SamplingParams(temperature=0.0))
    tied = np.array([0, 5, 1, 5, 5], dtype=np.float32)
    assert Sampler(SamplingParams(temperature=0)).sample(tied) == 1  # the first of tied maxima
    # tiny temperatures are greedy too (vLLM's threshold), without overflow
    assert Sampler(SamplingParams(temperature=1e-6)).sample(tied) == 1
    # and sampling at a very low but non-greedy temperature picks among the tied maxima only
    sampler = Sampler(SamplingParams(temperature=1e-3, seed=0))
    assert {sampler.sample(tied) for _ in range(50)} == {1, 3, 4}


def test_float64_and_float16_logits_are_accepted():
    logits = fixture_logits()["normal-1000"]
    p32 = Sampler(SamplingParams(top_k=10)).probabilities(logits)
    p64 = Sampler(SamplingParams(top_k=10)).probabilities(logits.astype(np.float64))
    np.testing.assert_array_equal(p32, p64)
    assert Sampler(SamplingParams(temperature=0)).sample(logits.astype(np.float16)) == int(np.argmax(logits))


def test_bad_logits():
    for params in (SamplingParams(temperature=0), SamplingParams(top_p=0.5), SamplingParams()):
        for bad in ([1.0, np.nan, 2.0], [np.inf, 0.0], [-np.inf, -np.inf]):
            with pytest.raises(NumericalError):
                Sampler(params).sample(np.array(bad, dtype=np.float32))
    with pytest.raises(InvalidArgumentError):
        Sampler(SamplingParams()).sample(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(InvalidArgumentError):
        Sampler(SamplingParams()).sample(np.zeros(3, dtype=np.int64))
    with pytest.raises(InvalidTokenError):
        Sampler(SamplingParams(repetition_penalty=1.2), [0, 10]).sample(np.zeros(5, dtype=np.float32))
    sampler = Sampler(SamplingParams())
    sampler.sample(np.zeros(5, dtype=np.float32))
    with pytest.raises(InvalidTokenError):
        sampler.append(5)
    with pytest.raises(InvalidArgumentError):
        sampler.sample(np.zeros(6, dtype=np.float32))


# -- logprobs ----------------------------------------------------------------------------------


def log_softmax64(logits) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    finite = x[np.isfinite(x)]
    m = finite.max()
    return x - m - np.log(np.exp(x - m).sum())


@pytest.mark.parametrize("logits_name", ["normal-1000", "ties", "large-values", "peaked-70000"])
@pytest.mark.parametrize("top_n", [0, 1, 5, 20])
def test_logprobs_match_float64_log_softmax(logits_name, top_n):
    logits = fixture_logits()[logits_name]
    ref = log_softmax64(logits)
    for token in (0, 3, int(np.argmax(logits)), logits.size - 1):
        chosen, top = token_logprobs(logits, token, top_n)
        if np.isfinite(ref[token]):
            assert chosen == pytest.approx(ref[token], abs=1e-5)
        else:
            assert chosen == -math.inf
        assert len(top) == min(top_n, logits.size)
        order = sorted(range(logits.size), key=lambda i: (-ref[i], i))[:top_n]
        assert [i for i, _ in top] == order
        np.testing.assert_allclose([lp for _, lp in top], ref[order], atol=1e-5)
