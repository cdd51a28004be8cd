// cpu_kernels.cpp: see cpu_kernels.h. One run() per kernel in fp32 (the model ops of
// model_ops.h, OpenBLAS sgemm, the attention kernels), behind the generic bf16 conversion.
#include "device/cpu/cpu_kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "device/cpu/attention_reference.h"
#include "device/cpu/model_ops.h"
#include "device/cpu/vision_ops.h"
#include "src/common/fatal.h"

namespace rw::device::cpu {

void convert_to_bf16(const float* x, bf16_t* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_from_float(x[i]);
}

void convert_from_bf16(const bf16_t* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = float_from_bf16(x[i]);
}

namespace {

// Calls fn(element offset) for every element of a (possibly strided) view, row-major order.
template <class V, class Fn>
void for_each_offset(const V& v, Fn&& fn) {
  int64_t shape[kMaxRank], stride[kMaxRank];
  for (int i = 0; i < kMaxRank; ++i) {
    shape[i] = i < v.rank ? v.shape[i] : 1;
    stride[i] = i < v.rank ? v.stride[i] : 0;
  }
  for (int64_t i0 = 0; i0 < shape[0]; ++i0)
    for (int64_t i1 = 0; i1 < shape[1]; ++i1)
      for (int64_t i2 = 0; i2 < shape[2]; ++i2)
        for (int64_t i3 = 0; i3 < shape[3]; ++i3)
          fn(i0 * stride[0] + i1 * stride[1] + i2 * stride[2] + i3 * stride[3]);
}

// Runs fn(args) with every bf16 view of args replaced by a contiguous fp32 temporary (see
// cpu_kernels.h); fp32 views are passed through untouched.
template <class Args, class Fn>
void with_fp32_storage(Args& args, Fn&& fn) {
  struct Temp {
    TensorView original;  // the bf16 view (data may be const: only written back when writable)
    Access access;
    std::vector<float> values;
  };
  std::vector<Temp> temps;  // empty (no allocation) unless some view is bf16; moves keep values' buffers
  args.visit([&](const char*, auto& v, Access access) {
    if (v.dtype != DType::bf16 || v.data == nullptr || v.empty()) return;
    Temp& t = temps.emplace_back();
    t.original = TensorView{};
    t.original.data = const_cast<void*>(static_cast<const void*>(v.data));
    t.original.dtype = v.dtype;
    t.original.rank = v.rank;
    for (int i = 0; i < kMaxRank; ++i) t.original.shape[i] = v.shape[i], t.original.stride[i] = v.stride[i];
    t.access = access;
    t.values.resize(static_cast<std::size_t>(v.n_elements()));
    if (access != Access::write) {
      const bf16_t* src = static_cast<const bf16_t*>(t.original.data);
      float* dst = t.values.data();
      if (v.is_contiguous()) {
        convert_from_bf16(src, dst, v.n_elements());
      } else {
        std::size_t i = 0;
        for_each_offset(v, [&](int64_t off) { dst[i++] = float_from_bf16(src[off]); });
      }
    }
    v.data = t.values.data();
    v.dtype = DType::f32;
    int64_t s = 1;
    for (int j = v.rank - 1; j >= 0; --j) {
      v.stride[j] = s;
      s *= v.shape[j];
    }
  });
  fn(args);
  for (Temp& t : temps) {
    if (t.access == Access::read) continue;
    bf16_t* dst = static_cast<bf16_t*>(t.original.data);
    if (t.original.is_contiguous()) {
      convert_to_bf16(t.values.data(), dst, t.original.n_elements());
    } else {
      std::size_t i = 0;
      for_each_offset(t.original, [&](int64_t off) { dst[off] = bf16_from_float(t.values[i++]); });
    }
  }
}

template <class V>
const float* f32(const V& v) {
  return static_cast<const float*>(v.data);
}
float* f32(const TensorView& v) { return static_cast<float*>(v.data); }
template <class V>
const int32_t* i32(const V& v) {
  return static_cast<const int32_t*>(v.data);
}

// ---- fp32 kernels (after conversion) ----

void run(GemmArgs& g) {
  with_fp32_storage(g, [](GemmArgs& a) {
    const int m = static_cast<int>(a.c.shape[0]), n = static_cast<int>(a.c.shape[1]);
    const bool ta = a.trans_a == Transpose::yes, tb = a.trans_b == Transpose::yes;
    const int k = static_cast<int>(ta ? a.a.shape[0] : a.a.shape[1]);
    auto ld = [](const auto& v) { return static_cast<int>(std::max<int64_t>({v.stride[0], v.shape[1], 1})); };
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, a.alpha,
                f32(a.a), ld(a.a), f32(a.b), ld(a.b), a.beta, f32(a.c), ld(a.c));
  });
}

void run(FillArgs& f) {
  const int64_t n = f.x.n_elements();
  switch (f.x.dtype) {
    case DType::f32: {
      float* x = static_cast<float*>(f.x.data);
      const float value = static_cast<float>(f.value);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) x[i] = value;
      break;
    }
    case DType::bf16: {
      bf16_t* x = static_cast<bf16_t*>(f.x.data);
      const bf16_t value = bf16_from_float(static_cast<float>(f.value));
      for (int64_t i = 0; i < n; ++i) x[i] = value;
      break;
    }
    case DType::f64: std::fill_n(static_cast<double*>(f.x.data), n, f.value); break;
    case DType::i32: std::fill_n(static_cast<int32_t*>(f.x.data), n, static_cast<int32_t>(f.value)); break;
    case DType::u8: std::fill_n(static_cast<uint8_t*>(f.x.data), n, static_cast<uint8_t>(f.value)); break;
  }
}

void run(AddArgs& args) {
  with_fp32_storage(args, [](AddArgs& a) { add(f32(a.x), f32(a.y), a.y.n_elements()); });
}
void run(AxpyArgs& args) {
  with_fp32_storage(args, [](AxpyArgs& a) { axpy(a.alpha, f32(a.x), f32(a.y), a.y.n_elements()); });
}
void run(ScaleArgs& args) {
  with_fp32_storage(args, [](ScaleArgs& a) { scale(a.alpha, f32(a.x), a.x.n_elements()); });
}

void run(ConvertArgs& a) {
  const int64_t n = a.x.n_elements();
  if (a.x.dtype == a.y.dtype) {
    if (n) std::memmove(a.y.data, a.x.data, static_cast<std::size_t>(n) * dtype_size(a.x.dtype));
  } else if (a.x.dtype == DType::f32) {
    convert_to_bf16(static_cast<const float*>(a.x.data), static_cast<bf16_t*>(a.y.data), n);
  } else {
    convert_from_bf16(static_cast<const bf16_t*>(a.x.data), static_cast<float*>(a.y.data), n);
  }
}

void run(RmsNormFwdArgs& args) {
  with_fp32_storage(args, [](RmsNormFwdArgs& a) {
    rmsnorm_forward(f32(a.x), f32(a.w), f32(a.y), f32(a.inv_rms), a.x.shape[0], a.x.shape[1], a.eps);
  });
}
void run(RmsNormBwdArgs& args) {
  with_fp32_storage(args, [](RmsNormBwdArgs& a) {
    rmsnorm_backward(f32(a.x), f32(a.w), f32(a.inv_rms), f32(a.dy), f32(a.dx), f32(a.dw), a.x.shape[0],
                     a.x.shape[1]);
  });
}
void run(RopeFwdArgs& args) {
  with_fp32_storage(args, [](RopeFwdArgs& a) {
    rope_forward(f32(a.x), i32(a.pos), a.x.shape[0], a.x.shape[1], a.x.shape[2], a.theta);
  });
}
void run(RopeBwdArgs& args) {
  with_fp32_storage(args, [](RopeBwdArgs& a) {
    rope_backward(f32(a.x), i32(a.pos), a.x.shape[0], a.x.shape[1], a.x.shape[2], a.theta);
  });
}
void run(SwigluFwdArgs& args) {
  with_fp32_storage(args, [](SwigluFwdArgs& a) { swiglu_forward(f32(a.g), f32(a.u), f32(a.a), a.g.n_elements()); });
}
void run(SwigluBwdArgs& args) {
  with_fp32_storage(args, [](SwigluBwdArgs& a) {
    swiglu_backward(f32(a.g), f32(a.u), f32(a.da), f32(a.dg), f32(a.du), a.g.n_elements());
  });
}
void run(EmbeddingFwdArgs& args) {
  with_fp32_storage(args, [](EmbeddingFwdArgs& a) {
    embedding_forward(f32(a.table), i32(a.tokens), f32(a.out), a.tokens.shape[0], a.table.shape[1]);
  });
}
void run(EmbeddingBwdArgs& args) {
  with_fp32_storage(args, [](EmbeddingBwdArgs& a) {
    embedding_backward(i32(a.tokens), f32(a.dout), f32(a.dtable), a.tokens.shape[0], a.dtable.shape[1],
                       a.dtable.shape[0]);
  });
}
void run(CrossEntropyArgs& args) {
  with_fp32_storage(args, [](CrossEntropyArgs& a) {
    float* dlogits = a.dlogits.data ? f32(a.dlogits) : nullptr;
    double* token_losses = a.token_losses.data ? static_cast<double*>(a.token_losses.data) : nullptr;
    const double total = cross_entropy(f32(a.logits), i32(a.targets), f32(a.weights), a.logits.shape[0],
                                       a.logits.shape[1], a.grad_scale, dlogits, token_losses, a.text_vocab);
    *static_cast<double*>(a.loss_sum.data) += total;
  });
}
void run(AdamWArgs& args) {
  with_fp32_storage(args, [](AdamWArgs& a) {
    AdamWHyper h;
    h.lr = a.lr;
    h.beta1 = a.beta1;
    h.beta2 = a.beta2;
    h.eps = a.eps;
    h.weight_decay = a.weight_decay;
    h.grad_multiplier = a.grad_multiplier;
    h.step = a.step;
    adamw_update(f32(a.weights), f32(a.grads), f32(a.m), f32(a.v), static_cast<const uint8_t*>(a.decay.data),
                 a.weights.shape[0], h);
  });
}
void run(SumSquaresArgs& args) {
  with_fp32_storage(args, [](SumSquaresArgs& a) {
    double* result = static_cast<double*>(a.result.data);
    *result = sum_squares(f32(a.x), a.x.n_elements(), *result);
  });
}
void run(SumArgs& args) {
  with_fp32_storage(args, [](SumArgs& a) {
    double* result = static_cast<double*>(a.result.data);
    *result = sum(f32(a.x), a.x.n_elements(), *result);
  });
}

void run(ArgmaxArgs& args) {
  with_fp32_storage(args, [](ArgmaxArgs& a) {
    argmax_rows(f32(a.x), static_cast<int32_t*>(a.index.data), a.x.shape[0], a.x.shape[1]);
  });
}

// ---- VQGAN kernels (vision_ops.h), NCHW ----

void run(Conv2dArgs& args) {
  with_fp32_storage(args, [](Conv2dArgs& a) {
    Conv2dShape s;
    s.batch = a.x.shape[0];
    s.in_channels = a.x.shape[1];
    s.height = a.x.shape[2];
    s.width = a.x.shape[3];
    s.out_channels = a.weight.shape[0];
    s.kernel_h = a.weight.shape[2];
    s.kernel_w = a.weight.shape[3];
    s.stride = a.stride;
    s.pad_top = a.pad_top;
    s.pad_bottom = a.pad_bottom;
    s.pad_left = a.pad_left;
    s.pad_right = a.pad_right;
    conv2d_forward(f32(a.x), f32(a.weight), a.bias.data ? f32(a.bias) : nullptr, f32(a.y), s);
  });
}
void run(GroupNormArgs& args) {
  with_fp32_storage(args, [](GroupNormArgs& a) {
    group_norm_forward(f32(a.x), a.weight.data ? f32(a.weight) : nullptr, a.bias.data ? f32(a.bias) : nullptr,
                       f32(a.y), a.x.shape[0], a.x.shape[1], a.x.shape[2] * a.x.shape[3], a.groups, a.eps, a.silu);
  });
}
void run(SiluArgs& args) {
  with_fp32_storage(args, [](SiluArgs& a) { silu_forward(f32(a.x), f32(a.y), a.x.n_elements()); });
}
void run(UpsampleNearest2xArgs& args) {
  with_fp32_storage(args, [](UpsampleNearest2xArgs& a) {
    upsample_nearest2x(f32(a.x), f32(a.y), a.x.shape[0] * a.x.shape[1], a.x.shape[2], a.x.shape[3]);
  });
}
void run(VqNearestArgs& args) {
  with_fp32_storage(args, [](VqNearestArgs& a) {
    vq_nearest(f32(a.z), f32(a.codebook), static_cast<int32_t*>(a.indices.data),
               a.quantized.data ? f32(a.quantized) : nullptr, a.z.shape[0], a.z.shape[1], a.z.shape[2] * a.z.shape[3],
               a.codebook.shape[0]);
  });
}
void run(VqLookupArgs& args) {
  with_fp32_storage(args, [](VqLookupArgs& a) {
    vq_lookup(i32(a.indices), f32(a.codebook), f32(a.out), a.indices.shape[0], a.codebook.shape[1],
              a.indices.shape[1] * a.indices.shape[2], a.codebook.shape[0]);
  });
}

// ---- attention: bf16 q/k/v/dout converted into fp32 temporaries ----

const float* fp32_input(const float* p, std::size_t n, DType dtype, std::vector<float>& temp) {
  if (dtype == DType::f32 || p == nullptr) return p;
  temp.resize(n);
  convert_from_bf16(reinterpret_cast<const bf16_t*>(p), temp.data(), static_cast<int64_t>(n));
  return temp.data();
}

void run(AttnFwdStepArgs a, const ProgressHook& hook, const KernelConfig& config) {
  std::vector<float> tq, tk, tv;
  a.q = fp32_input(a.q, detail::attn_q_elems(a.shape), a.dtype, tq);
  a.k = fp32_input(a.k, detail::attn_kv_elems(a.shape), a.dtype, tk);
  a.v = fp32_input(a.v, detail::attn_kv_elems(a.shape), a.dtype, tv);
  a.dtype = DType::f32;
  if (config.reference_attention) {
    check_attn_shape(a.shape, a.tiling);
    reference::attn_fwd_step<float, double>(a.shape, a.mask, a.scale, a.q, a.k, a.v, a.out, a.lse);
    hook();
  } else {
    attn_fwd_step_fast(a, hook, config.fwd_kernel);
  }
}

void run(AttnBwdStepArgs a, const ProgressHook& hook, const KernelConfig& config) {
  std::vector<float> tq, tk, tv, tdout;
  a.q = fp32_input(a.q, detail::attn_q_elems(a.shape), a.dtype, tq);
  a.k = fp32_input(a.k, detail::attn_kv_elems(a.shape), a.dtype, tk);
  a.v = fp32_input(a.v, detail::attn_kv_elems(a.shape), a.dtype, tv);
  a.dout = fp32_input(a.dout, detail::attn_q_elems(a.shape), a.dtype, tdout);
  a.dtype = DType::f32;
  if (config.reference_attention) {
    check_attn_shape(a.shape, a.tiling);
    reference::attn_bwd_step<float, double>(a.shape, a.mask, a.scale, a.q, a.k, a.v, a.dout, a.lse, a.delta, a.dq,
                                            a.dk, a.dv);
    hook();
  } else {
    attn_bwd_step_fast(a, hook);
  }
}

void run(AttnRowDotArgs& a, const KernelConfig& config) {
  if (config.reference_attention) reference::attn_row_dot<float, double>(a.shape, a.out, a.dout, a.delta);
  else attn_row_dot_fast(a.shape, a.out, a.dout, a.delta);
}

void run(AttnMergeArgs& a, const KernelConfig& config) {
  if (config.reference_attention) reference::attn_merge<float, double>(a.shape, a.out_a, a.lse_a, a.out_b, a.lse_b);
  else attn_merge_fast(a.shape, a.out_a, a.lse_a, a.out_b, a.lse_b);
}

}  // namespace

void run_kernel(KernelCall& call, const ProgressHook& hook, const KernelConfig& config) {
  std::visit(
      [&](auto& a) {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, AttnFwdStepArgs> || std::is_same_v<A, AttnBwdStepArgs>) run(a, hook, config);
        else if constexpr (std::is_same_v<A, AttnRowDotArgs> || std::is_same_v<A, AttnMergeArgs>) run(a, config);
        else run(a);
      },
      call);
}

}  // namespace rw::device::cpu
