// launch_context.h: what the GPU kernel launchers (gpu_kernels.h) need from the backend that
// calls them, in vendor-neutral types (no CUDA/HIP header), so the real backends (cuda, hip)
// and the emulated ones (cuda-emu, hip-emu) hand the same launchers what they have.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <string>

#include "src/common/input_error.h"

namespace rw::device::gpu {

// Scratch memory for one launch (the attention reference path's score tiles, the partial sums
// of deterministic reductions). get() returns device memory of at least n_bytes that the work
// this launch enqueues on its stream may use; the next launch on the same stream may reuse it
// (stream order makes that safe). Call get() once per launch (a larger request may move the
// buffer, invalidating an earlier pointer).
class Workspace {
 public:
  virtual ~Workspace() = default;
  virtual void* get(std::size_t n_bytes) = 0;
};

struct LaunchContext {
  void* stream = nullptr;          // cudaStream_t / hipStream_t (unused by the emulation)
  Workspace* workspace = nullptr;  // per stream
  void* blas = nullptr;            // cublasHandle_t (or hipblasHandle_t) when the build has one, else null
  bool tf32 = false;               // fp32 GEMMs may use TF32 tensor cores (opt-in; the contract's
                                   // fp32 tolerances assume full fp32)
  bool attn_fused = false;         // bf16 attention forward by the fused kernel (P rounded to bf16
                                   // before P V, as FlashAttention does: opt-in, see attention_fused.cu)
  bool attn_bwd_fused = false;     // bf16 attention backward by the fused kernels (P and dS rounded to
                                   // bf16 before their products: opt-in, see attention_fused_bwd.cu)
};

// A kernel choice from the environment: `variable` = reference (default, also when unset or
// empty) | fused; true for fused. InputError naming the variable on another value.
inline bool fused_choice_from_environment(const char* variable) {
  const char* text = std::getenv(variable);
  const std::string value = text ? text : "";
  if (value.empty() || value == "reference") return false;
  if (value == "fused") return true;
  throw InputError(std::string(variable) + "='" + value + "': expected reference or fused");
}

// RINGWORLD_GPU_ATTN_FWD = reference (default) | fused: the attention forward the GPU backends
// (and their emulation) run for bf16 steps with head_dim 64 or 128.
inline bool attn_fused_from_environment() { return fused_choice_from_environment("RINGWORLD_GPU_ATTN_FWD"); }

// RINGWORLD_GPU_ATTN_BWD = reference (default) | fused: the same choice for the backward.
inline bool attn_bwd_fused_from_environment() { return fused_choice_from_environment("RINGWORLD_GPU_ATTN_BWD"); }

}  // namespace rw::device::gpu
