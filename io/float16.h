// float16.h: IEEE binary16 ("fp16", safetensors F16) and bfloat16 ("bf16", BF16) to and from
// float32, bit-exactly. Widening is exact for every value (subnormals, signed zeros, infinities,
// NaN payloads kept). Narrowing rounds to nearest, ties to even; values past the largest finite
// value (after rounding) become infinity of the same sign; NaN stays NaN (quiet, sign and the
// top payload bits kept). Header-only: the importers and the exporter share it, and tests
// compare it against an independent reference.
#pragma once
#include <cstdint>
#include <cstring>

namespace rw::io {

inline uint32_t float_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

inline float bits_float(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  // Adding 0x7FFF plus the lowest kept bit rounds half to even; a carry into the exponent is
  // the correct result (up to infinity).
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return bits_float(sign);
  // Subnormal: mantissa * 2^-24; normalise so the leading one lands on bit 10.
  uint32_t shift = 0;
  while (!(mantissa & 0x400u)) {
    mantissa <<= 1;
    ++shift;
  }
  return bits_float(sign | ((113 - shift) << 23) | ((mantissa & 0x3FFu) << 13));
}

inline uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));  // quiet NaN
  if (abs >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65536 (and inf): inf
  if (abs >= 0x38800000u) {  // >= 2^-14: a normal half (or, rounding up past 65504, infinity)
    const uint32_t rebased = abs - 0x38000000u;  // exponent bias 127 -> 15
    return static_cast<uint16_t>(sign | ((rebased + 0xFFFu + ((rebased >> 13) & 1u)) >> 13));
  }
  // A half subnormal (units of 2^-24) or zero: round mantissa * 2^(e - 126) to an integer.
  const uint32_t e = abs >> 23;
  if (e < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t result = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (result & 1u))) ++result;  // may reach 0x400: the smallest normal
  return static_cast<uint16_t>(sign | result);
}

}  // namespace rw::io
