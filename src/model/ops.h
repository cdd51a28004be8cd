// ops.h: the LLaMA building blocks, forward and backward by hand, on row-major host arrays
// (the CPU backend's memory), for float (training on the cpu backends) and double (the fp64
// reference model of the tests). The implementations are the CPU backend's kernels
// (device/cpu/model_ops.h, where the formulas are documented); this header keeps their names
// in rw::model for the model code. Phase B (device/README.md) replaces these calls in the
// fp32 path by the backend's kernels on device memory; the fp64 path keeps calling them.
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
