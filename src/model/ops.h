// ops.h: the LLaMA building blocks, forward and backward by hand, on row-major host arrays, for
// the reference model (reference_transformer.h: double, the tests' fp64 oracle, and float).
// The implementations are the CPU backend's kernels (device/cpu/model_ops.h, where the formulas
// are documented); this header keeps their names in rw::model for the reference code. The
// device model (transformer.h) launches the same ops as backend kernels on device memory.
#pragma once
#include "device/cpu/model_ops.h"

namespace rw::model {

using device::cpu::cross_entropy;
using device::cpu::embedding_backward;
using device::cpu::embedding_forward;
using device::cpu::rmsnorm_backward;
using device::cpu::rmsnorm_forward;
using device::cpu::rope_backward;
using device::cpu::rope_forward;
using device::cpu::swiglu_backward;
using device::cpu::swiglu_forward;

}  // namespace rw::model
