// kernel_call.h: one kernel launch as a value: the variant of every kernel's argument struct.
// Backend's typed methods (gemm, rmsnorm_fwd, ...) wrap their arguments into a KernelCall and
// hand it to the backend's one dispatch point (Backend::submit), so a backend implements one
// function, and generic code (checks, bf16 conversion, sim-gpu's pointer translation) walks
// the buffers of any kernel with for_each_buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <variant>

#include "device/attention_args.h"
#include "device/kernel_args.h"
#include "device/vision_args.h"

namespace rw::device {

using KernelCall =
    std::variant<GemmArgs, FillArgs, AddArgs, AxpyArgs, ScaleArgs, ConvertArgs, RmsNormFwdArgs, RmsNormBwdArgs,
                 RopeFwdArgs, RopeBwdArgs, SwigluFwdArgs, SwigluBwdArgs, EmbeddingFwdArgs, EmbeddingBwdArgs,
                 CrossEntropyArgs, AdamWArgs, SumSquaresArgs, SumArgs, ArgmaxArgs, AttnFwdStepArgs,
                 AttnBwdStepArgs, AttnRowDotArgs, AttnMergeArgs, Conv2dArgs, GroupNormArgs, SiluArgs,
                 UpsampleNearest2xArgs, VqNearestArgs, VqLookupArgs>;

template <class Args>
const char* kernel_name_of(const Args&) {
  return Args::kName;
}
inline const char* kernel_name_of(const AttnFwdStepArgs&) { return "attn_fwd_step"; }
inline const char* kernel_name_of(const AttnBwdStepArgs&) { return "attn_bwd_step"; }
inline const char* kernel_name_of(const AttnRowDotArgs&) { return "attn_row_dot"; }
inline const char* kernel_name_of(const AttnMergeArgs&) { return "attn_merge"; }

inline const char* kernel_name(const KernelCall& call) {
  return std::visit([](const auto& a) { return kernel_name_of(a); }, call);
}

// Calls f(name, pointer, n_bytes, access) for every non-null buffer argument of a kernel, with
// `pointer` a reference to the argument's pointer field (so a backend may rewrite it) and
// n_bytes the extent the kernel may touch from it. Empty views are skipped.
template <class Args, class F>
void for_each_buffer(Args& args, F&& f) {
  args.visit([&](const char* name, auto& view, Access access) {
    if (view.data != nullptr && !view.empty()) f(name, view.data, view.extent_bytes(), access);
  });
}

namespace detail {
template <class P, class F>
void attn_buffer(F& f, const char* name, P& pointer, std::size_t n_elements, std::size_t element_bytes,
                 Access access) {
  if (pointer != nullptr && n_elements > 0) f(name, pointer, n_elements * element_bytes, access);
}
inline std::size_t attn_q_elems(const AttnShape& s) {
  return static_cast<std::size_t>(s.batch) * s.n_q * s.heads * s.head_dim;
}
inline std::size_t attn_kv_elems(const AttnShape& s) {
  return static_cast<std::size_t>(s.batch) * s.n_k * s.kv_heads * s.head_dim;
}
inline std::size_t attn_rows(const AttnShape& s) { return static_cast<std::size_t>(s.batch) * s.heads * s.n_q; }
template <class F>
void attn_mask_buffers(F& f, AttnMaskArgs& m, const AttnShape& s) {
  const std::size_t nq = static_cast<std::size_t>(s.batch) * s.n_q, nk = static_cast<std::size_t>(s.batch) * s.n_k;
  attn_buffer(f, "mask.q_pos", m.q_pos, nq, 4, Access::read);
  attn_buffer(f, "mask.q_seg", m.q_seg, nq, 4, Access::read);
  attn_buffer(f, "mask.k_pos", m.k_pos, nk, 4, Access::read);
  attn_buffer(f, "mask.k_seg", m.k_seg, nk, 4, Access::read);
}
}  // namespace detail

template <class F>
void for_each_buffer(AttnFwdStepArgs& a, F&& f) {
  using namespace detail;
  const std::size_t in = dtype_size(a.dtype);
  attn_buffer(f, "q", a.q, attn_q_elems(a.shape), in, Access::read);
  attn_buffer(f, "k", a.k, attn_kv_elems(a.shape), in, Access::read);
  attn_buffer(f, "v", a.v, attn_kv_elems(a.shape), in, Access::read);
  attn_buffer(f, "out", a.out, attn_q_elems(a.shape), 4, Access::read_write);
  attn_buffer(f, "lse", a.lse, attn_rows(a.shape), 4, Access::read_write);
  attn_mask_buffers(f, a.mask, a.shape);
}

template <class F>
void for_each_buffer(AttnBwdStepArgs& a, F&& f) {
  using namespace detail;
  const std::size_t in = dtype_size(a.dtype);
  attn_buffer(f, "q", a.q, attn_q_elems(a.shape), in, Access::read);
  attn_buffer(f, "k", a.k, attn_kv_elems(a.shape), in, Access::read);
  attn_buffer(f, "v", a.v, attn_kv_elems(a.shape), in, Access::read);
  attn_buffer(f, "dout", a.dout, attn_q_elems(a.shape), in, Access::read);
  attn_buffer(f, "lse", a.lse, attn_rows(a.shape), 4, Access::read);
  attn_buffer(f, "delta", a.delta, attn_rows(a.shape), 4, Access::read);
  attn_buffer(f, "dq", a.dq, attn_q_elems(a.shape), 4, Access::read_write);
  attn_buffer(f, "dk", a.dk, attn_kv_elems(a.shape), 4, Access::read_write);
  attn_buffer(f, "dv", a.dv, attn_kv_elems(a.shape), 4, Access::read_write);
  attn_mask_buffers(f, a.mask, a.shape);
}

template <class F>
void for_each_buffer(AttnRowDotArgs& a, F&& f) {
  using namespace detail;
  attn_buffer(f, "out", a.out, attn_q_elems(a.shape), 4, Access::read);
  attn_buffer(f, "dout", a.dout, attn_q_elems(a.shape), 4, Access::read);
  attn_buffer(f, "delta", a.delta, attn_rows(a.shape), 4, Access::write);
}

template <class F>
void for_each_buffer(AttnMergeArgs& a, F&& f) {
  using namespace detail;
  attn_buffer(f, "out_a", a.out_a, attn_q_elems(a.shape), 4, Access::read_write);
  attn_buffer(f, "lse_a", a.lse_a, attn_rows(a.shape), 4, Access::read_write);
  attn_buffer(f, "out_b", a.out_b, attn_q_elems(a.shape), 4, Access::read);
  attn_buffer(f, "lse_b", a.lse_b, attn_rows(a.shape), 4, Access::read);
}

template <class F>
void for_each_buffer(KernelCall& call, F&& f) {
  std::visit([&](auto& a) { for_each_buffer(a, f); }, call);
}

}  // namespace rw::device
