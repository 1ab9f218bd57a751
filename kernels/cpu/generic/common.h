// Scalar helpers shared by the generic kernels. Included only by kernels/cpu/generic/*.cpp and
// kernels/cpu/*.cpp, which are compiled without ISA flags, so the inline code here can never be an
// AVX copy.
#pragma once
#include <cstdint>
#include <cstring>

#include "slm/kernels/types.h"

namespace slm::kernels::generic {

// Unaligned reads of stored values.
inline uint16_t load_u16(const unsigned char* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float load_f32(const unsigned char* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// bfloat16 is the upper half of a float32: exact, NaN payloads included.
inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// IEEE binary16 -> binary32, exact. NaNs keep their sign and payload and come out quiet, as the
// F16C instruction vcvtph2ps does, so that every ISA gives the same bits.
inline float half_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {  // inf or NaN
    const uint32_t quiet = mant != 0 ? 0x00400000u : 0u;
    return bits_to_f32(sign | 0x7F800000u | quiet | (mant << 13));
  }
  if (exp != 0) return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_to_f32(sign);
  // Subnormal half: value = mant * 2^-24. Normalise so that the leading one is bit 10.
  int e = 113;  // biased f32 exponent of 2^-14, the half subnormal scale with the leading bit at 10
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return bits_to_f32(sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FFu) << 13));
}

// binary32 -> binary16 with round to nearest even, overflow to inf and gradual underflow, as
// numpy's astype(float16) and vcvtps2ph. NaNs keep sign and the top payload bits and come out
// quiet (vcvtps2ph's behaviour).
inline uint16_t f32_to_half(float f) {
  const uint32_t bits = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // inf or NaN
    if (abs == 0x7F800000u) return sign | 0x7C00u;
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  // 65520 = 0x477FF000 is halfway between 65504 (odd mantissa) and 2^16: it and above round to inf.
  if (abs >= 0x477FF000u) return sign | 0x7C00u;
  const uint32_t exp = abs >> 23;
  if (exp < 113) {  // below 2^-14: half subnormal (or zero), units of 2^-24
    if (exp < 102) return sign;  // < 2^-25: rounds to zero (2^-25 itself is exp 102, a tie to 0)
    const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;  // value = mant * 2^(exp-150)
    const uint32_t shift = 126 - exp;                     // value / 2^-24 = mant >> shift
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: right
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((exp - 112u) << 10) | ((abs >> 13) & 0x3FFu);
  const uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent: right
  return static_cast<uint16_t>(sign | h);
}

inline int64_t dtype_size(DType d) { return d == DType::F32 ? 4 : d == DType::I8 ? 1 : 2; }

}  // namespace slm::kernels::generic
