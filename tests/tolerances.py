"""The one table of kernel tolerances, shared by every kernel test.

Each entry is a constant C multiplying an error scale computed by the function of the same kernel
below (``bound(kernel, dtype, **magnitudes)``). Scales are in units of float32's machine epsilon
(2^-23) times the magnitude of the data the kernel reduces, so that a tolerance stays tight for any
shape; the references (slmcore/reference/kernels.py) compute in float64 from the exact stored
values, so the only error measured is the kernel's own float32 arithmetic. The constants were set
at about 2-4x the worst ratio observed over all ISAs on random data; a real bug (a dropped or
repeated element, a wrong row, a wrong pairing, an unnormalised softmax) is orders of magnitude
above every bound. Do not loosen an entry to make a failure pass: find the bug.
"""

from __future__ import annotations

import math

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23

TOLERANCES: dict[tuple[str, str], float] = {
    # matmul: |y - ref| <= C * eps * sqrt(in) * max|x| * max|w|  (+ eps * (max|bias| + max|y0|) for the
    # final additions). Each output is a float32 sum of in_features products in a few independent
    # chains plus a short reduction tree; random rounding errors grow like sqrt(in). Widening
    # f16/bf16 is exact, so every weight dtype has the same error model. Observed worst ratio to
    # the scale 0.74 (in_features 1..5632, all ISAs).
    ("matmul", "float32"): 2.0,
    ("matmul", "float16"): 2.0,
    ("matmul", "bfloat16"): 2.0,
    # rmsnorm: |y - ref| <= C * eps * max|ref| * (1 + sqrt(n)/16). The sum of squares carries a
    # random-walk error ~ eps*sqrt(n/lanes) (halved by the square root), then two roundings per
    # element. Observed worst ratio to the scale 0.71 (n 1..20000).
    ("rmsnorm", "float32"): 2.0,
    # layernorm: the same form as rmsnorm, measured against max|ref - b| plus max|b| (the bias add
    # is one more rounding); the mean's error enters every centred value. Loose by 2x over rmsnorm.
    ("layernorm", "float32"): 4.0,
    # rope: |y - ref| <= C * eps * max|x|. Each output is a*cos -/+ b*sin: at most three roundings
    # of terms bounded by max|x| (cos/sin are the same float32 values in kernel and reference).
    # Observed worst ratio 0.54.
    ("rope", "float32"): 2.0,
    # attention: |out - ref| <= C * eps * max|v| * (1 + |scale| * max_j sum_i |q_i k_ji| + log2(n_pos)).
    # The error of a score (a float32 dot product) is at most a few eps times the sum of absolute
    # products; it becomes a relative error of p_j, the vectorised exp adds ~1 ulp, and the
    # weighted sum of V and the sum of p add a few roundings that grow slowly with n_pos. K/V in
    # f16 are widened exactly. Observed worst ratio to the scale 0.53 (head_dim 8..256, n_pos 1..3000).
    # With ALiBi the bias |slope| * n_pos joins the score term (one more rounding of that size).
    ("attention", "float32"): 2.0,
    ("attention", "float16"): 2.0,
    # int8 K/V (the int8 KV cache) against the reference over the dequantized rows (scale * q, the
    # values the cache stands for; magnitudes measured on them): the int8 values widen exactly, the
    # row scale costs one more rounding of each score and of each V weight p_j * v_scale_j.
    # Observed worst ratio to the scale 0.40 (generic; avx2 0.12, avx512 0.21; head_dim 8..256,
    # n_pos 1..3000, softcap and ALiBi), worst relative error 5.5e-6.
    ("attention", "int8"): 2.0,
    # swiglu: |out - ref| <= C * eps * |ref| elementwise, plus a floor of
    # C * 2^-149 * (|gate * up| + |up| + 1) for the subnormal range: sigmoid(g) ~ e^g (g < -87.3),
    # g * sigmoid(g), and the output itself, when subnormal, keep only the absolute precision of
    # the smallest subnormal (2^-149), amplified by the factors applied after them. exp is ~1 ulp,
    # then a division and two products. Observed worst ratio to the scale 2.1.
    ("swiglu", "float32"): 4.0,
    # geglu evaluates z = 2 sqrt(2/pi) (g + 0.044715 g^3) in float32 (a few ulp of z), and
    # sigmoid(z) then carries that error times |z| (d log sigmoid / d log z = |z| for z << 0); the
    # bound scales with (1 + |z|). Same subnormal floor as swiglu.
    ("geglu", "float32"): 8.0,
    # Conversions are exact: f16/bf16 -> f32 widen exactly, f32 -> f16 rounds to nearest even
    # exactly as numpy does (compared bit for bit).
    ("to_f32", "float32"): 0.0,
    ("to_f32", "float16"): 0.0,
    ("to_f32", "bfloat16"): 0.0,
    ("f32_to_f16", "float16"): 0.0,
    # Quantized kernels (tests/test_quant_kernels.py; reference slmcore/reference/quant.py).
    # Activation quantization is exact: every ISA gives the reference's int8 values, float32 block
    # scales and int32 block sums bit for bit.
    ("quantize_activations", "int8"): 0.0,
    # int4 / int8-row matmul: the integer block sums are exact, so the only error is the float32
    # scaling and summation of the per-block terms. Elementwise
    #   |y - ref| <= C * eps * sum_b |term_b|  (+ 2 * eps * (|bias| + |y0|) for the final additions),
    # term_b = d_b * s_g * isum_b for int4 (+ d_b * m_g * sums_b when asymmetric, counted in
    # absolute value part by part) and scale_o * d_b * sum_i |q_i * a_i| for int8 rows (a SIMD
    # kernel scales parts of a block, 4-column lanes, before summing them). A worst-case-style
    # scale: a wrong, dropped or repeated block costs a whole term. Observed worst ratio to the
    # scale (all ISAs, in_features 1..1536, 7..64 rows, 70 tokens): int4 sym 1.8, asym 2.1 (few
    # blocks, where every rounding counts), int8 1.4.
    ("int4_matmul", "sym"): 4.0,
    ("int4_matmul", "asym"): 4.0,
    ("int8_matmul", "int8"): 3.0,
    # CUDA decode kernels (tests/test_cuda.py), the same error models under the key "cuda". Derived
    # from the arithmetic, not yet measured on a GPU: CUDA's expf and tanhf are good to 2 ulp and
    # erfcf to 4 ulp (CUDA C Programming Guide, mathematical functions) against ~1 ulp for the CPU
    # kernels, and flash-decoding rescales each chunk's partial sums once more (one exp and one
    # product per chunk, then a division). So each constant is about twice the CPU one.
    ("rmsnorm", "cuda"): 4.0,
    ("layernorm", "cuda"): 8.0,
    ("rope", "cuda"): 2.0,
    ("attention", "cuda"): 4.0,
    ("swiglu", "cuda"): 8.0,
    ("geglu", "cuda"): 16.0,
    ("gelu_erf", "cuda"): 16.0,
}


def _amax(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a).max()) if a.size else 0.0


def bound(kernel: str, dtype: str, **m) -> float:
    """The largest allowed max-abs error of `kernel` on `dtype` for data of the given magnitudes."""
    c = TOLERANCES[(kernel, dtype)]
    if kernel == "matmul":
        n = m["in_features"]
        extra = _amax(m.get("bias", 0.0)) + _amax(m.get("y0", 0.0))
        return c * EPS32 * math.sqrt(max(n, 1)) * _amax(m["x"]) * _amax(m["w"]) + 2 * EPS32 * (extra + 1e-30)
    if kernel in ("rmsnorm", "layernorm"):
        return c * EPS32 * _amax(m["ref"]) * (1 + math.sqrt(m["n"]) / 16)
    if kernel == "rope":
        return c * EPS32 * _amax(m["x"])
    if kernel == "attention":
        n_pos = m["n_pos"]
        k = np.abs(np.asarray(m["k"], dtype=np.float64))
        score = abs(m["scale"]) * float((k @ np.abs(np.asarray(m["q"], dtype=np.float64))).max())
        score += abs(m.get("alibi_slope", 0.0)) * n_pos  # ALiBi's bias, up to |slope| * (n_pos - 1)
        return c * EPS32 * _amax(m["v"]) * (1 + score + math.log2(max(n_pos, 1)))
    raise KeyError(f"no scalar bound for {kernel!r}; see TOLERANCES")


def quant_matmul_bound(kernel: str, dtype: str, abs_terms_sum, bias=None, y0=None) -> np.ndarray:
    """Elementwise allowed error of int4_matmul / int8_matmul; abs_terms_sum [T, n_out] is
    sum over blocks of |term_b| (slmcore.reference.quant.int4_terms / int8_terms)."""
    c = TOLERANCES[(kernel, dtype)]
    extra = np.zeros_like(np.asarray(abs_terms_sum, dtype=np.float64))
    if bias is not None:
        extra = extra + np.abs(np.asarray(bias, dtype=np.float64))
    if y0 is not None:
        extra = extra + np.abs(np.asarray(y0, dtype=np.float64))
    return c * EPS32 * np.asarray(abs_terms_sum, dtype=np.float64) + 2 * EPS32 * extra + 1e-30


def swiglu_bound(ref: np.ndarray, gate: np.ndarray, up: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Elementwise allowed error of swiglu."""
    c = TOLERANCES[("swiglu", dtype)]
    u = np.abs(np.asarray(up, dtype=np.float64))
    gu = np.abs(np.asarray(gate, dtype=np.float64)) * u
    return c * EPS32 * np.abs(ref) + c * 2.0**-149 * (gu + u + 1.0)


def geglu_bound(ref: np.ndarray, gate: np.ndarray, up: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Elementwise allowed error of geglu."""
    c = TOLERANCES[("geglu", dtype)]
    g = np.asarray(gate, dtype=np.float64)
    z = np.abs(1.5957691216057308 * (g + 0.044715 * g**3))
    u = np.abs(np.asarray(up, dtype=np.float64))
    return c * EPS32 * np.abs(ref) * (1.0 + z) + c * 2.0**-149 * (np.abs(g) * u + u + 1.0)
