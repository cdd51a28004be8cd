// precision.h: the device model's working precision (`--precision fp32|bf16`, config key
// `precision`). What each choice keeps in which type is transformer.h's header comment.
#pragma once
#include <string>

#include "device/dtype.h"

namespace rw::model {

enum class Precision { fp32, bf16 };

// "fp32" or "bf16"; anything else throws InputError naming the value and the choices.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision precision);
// The storage of the working copy of the weights and of the GEMM / attention inputs.
inline device::DType working_dtype(Precision precision) {
  return precision == Precision::bf16 ? device::DType::bf16 : device::DType::f32;
}

}  // namespace rw::model
