// dtype.h: the element types device tensors and kernel arguments carry.
//
//   f32   fp32: the working precision of the CPU backends and of every accumulator
//   bf16  bfloat16 storage (the GPU's working precision): 1 sign, 8 exponent, 7 fraction bits,
//         the upper half of an fp32. Arithmetic on bf16 data is always done in fp32 (a CPU
//         backend converts on the way in and out); rounding fp32 -> bf16 is to nearest even.
//   f64   fp64: device scalars that sums are reduced into (loss sums, squared norms)
//   i32   int32: tokens, targets, positions, segment ids
//   u8    uint8: masks (AdamW's weight-decay mask)
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rw::device {

enum class DType : uint8_t { f32, bf16, f64, i32, u8 };

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::u8: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::u8: return "u8";
  }
  return "?";
}

// A bfloat16 value in storage. Not an arithmetic type on purpose: convert to float to compute.
struct bf16_t {
  uint16_t bits = 0;
};

// Round to nearest, ties to even; NaN stays NaN (quiet, sign kept); overflow rounds to inf.
inline bf16_t bf16_from_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

inline float float_from_bf16(bf16_t x) {
  const uint32_t u = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The element type for a C++ type (for typed view builders).
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<bf16_t> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::f64;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::u8;
};

}  // namespace rw::device
