// test_fused_attention.cpp: the fused attention forward (device/cuda/kernels/attention_fused.cu,
// RINGWORLD_GPU_ATTN_FWD=fused) on every GPU-kind backend under test (cuda-emu and hip-emu here:
// the matrix-core tile ops emulated from the documented layouts; cuda / hip on a GPU): bf16
// q/k/v, head_dim 64 and 128, packed documents, causal and not, GQA, sizes that are not multiples
// of the tiles, and a ring step's merge (two calls over disjoint key ranges into one (out, lse)),
// against the fp64 reference over all keys.
//
// Tolerance basis (FlashAttention's rule: at most twice the error of the same computation in the
// same precision, plus 8 ulps of the tensor's scale): the same computation is the naive one
// with fp32 arithmetic whose probabilities are rounded to bf16 before P V (the denominator
// summed from the fp32 probabilities), as the fused kernel and FlashAttention do; inputs are
// the stored bf16 values.
#include <catch2/catch.hpp>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "device/attention_builder.h"
#include "device/attention_mask.h"
#include "device/backend.h"
#include "tests/gpu/fused_attention_support.h"
#include "tests/test_support.h"
#include "tests/unit/backends_under_test.h"
#if RW_TEST_HAVE_SIMT_EMU
#include "device/cuda/emu/simt_emu.h"
#endif

using namespace rw;
using namespace rw::device;
using rw::test::download_f32;
using rw::test::is_gpu_kind;
using rw::test::round_bf16;
using rw::test::ScopedEnv;
using rw::test::upload_bf16;

namespace {

// Forward of all keys for every query row, T arithmetic; bf16_probabilities: P rounded to bf16
// before P V. out [b, n_q, h, d], lse [b, h, n_q].
template <class T>
void naive_forward(const AttnShape& s, const AttnMaskArgs& m, const std::vector<float>& q, const std::vector<float>& k,
                   const std::vector<float>& v, bool bf16_probabilities, std::vector<T>& out, std::vector<T>& lse) {
  const int group = s.heads / s.kv_heads, d = s.head_dim;
  const T scale = T(1) / std::sqrt(T(d));
  out.assign(q.size(), T(0));
  lse.assign(static_cast<std::size_t>(s.batch) * s.heads * s.n_q, -std::numeric_limits<T>::infinity());
  std::vector<T> scores(static_cast<std::size_t>(s.n_k));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        const int qi = b * s.n_q + i;
        T mx = -std::numeric_limits<T>::infinity();
        for (int j = 0; j < s.n_k; ++j) {
          const int kj = b * s.n_k + j;
          scores[j] = -std::numeric_limits<T>::infinity();
          if (!key_visible(m.q_pos[qi], m.q_seg[qi], m.k_pos[kj], m.k_seg[kj], m.causal)) continue;
          T dot = 0;
          for (int c = 0; c < d; ++c)
            dot += T(q[(static_cast<std::size_t>(qi) * s.heads + h) * d + c]) *
                   T(k[(static_cast<std::size_t>(kj) * s.kv_heads + h / group) * d + c]);
          scores[j] = dot * scale;
          mx = std::max(mx, scores[j]);
        }
        if (mx == -std::numeric_limits<T>::infinity()) continue;
        T l = 0;
        std::vector<T> acc(static_cast<std::size_t>(d), T(0));
        for (int j = 0; j < s.n_k; ++j) {
          if (scores[j] == -std::numeric_limits<T>::infinity()) continue;
          const T p = std::exp(scores[j] - mx);
          l += p;
          const T pv = bf16_probabilities ? T(round_bf16(static_cast<float>(p))) : p;
          for (int c = 0; c < d; ++c)
            acc[c] += pv * T(v[(static_cast<std::size_t>(b * s.n_k + j) * s.kv_heads + h / group) * d + c]);
        }
        for (int c = 0; c < d; ++c) out[(static_cast<std::size_t>(qi) * s.heads + h) * d + c] = acc[c] / l;
        lse[(static_cast<std::size_t>(b) * s.heads + h) * s.n_q + i] = mx + std::log(l);
      }
}

void run_case(const std::string& backend_name, int head_dim, bool causal) {
  const int batch = 2, n_q = 100, n_k = 150, heads = 4, kv_heads = 2, split = 70;
  INFO(backend_name << ", head_dim " << head_dim << (causal ? ", causal" : ", not causal"));
  std::vector<int32_t> seg, pos;
  test::packed_documents(batch, n_k, 60, 300 + head_dim, seg, pos);
  // Queries are the last n_q tokens of each row (a ring step's local shard against all keys).
  std::vector<int32_t> q_seg, q_pos;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < n_q; ++i) {
      q_seg.push_back(seg[static_cast<std::size_t>(b) * n_k + (n_k - n_q) + i]);
      q_pos.push_back(pos[static_cast<std::size_t>(b) * n_k + (n_k - n_q) + i]);
    }
  auto rounded = [](std::vector<float> x) {
    for (auto& y : x) y = round_bf16(y);
    return x;
  };
  const auto q = rounded(test::random_vector(static_cast<std::size_t>(batch) * n_q * heads * head_dim, 401));
  const auto k = rounded(test::random_vector(static_cast<std::size_t>(batch) * n_k * kv_heads * head_dim, 402));
  const auto v = rounded(test::random_vector(k.size(), 403));
  const AttnShape full{batch, n_q, n_k, heads, kv_heads, head_dim};
  const AttnMaskArgs host_mask{q_pos.data(), q_seg.data(), pos.data(), seg.data(), causal};
  std::vector<double> gold_out, gold_lse;
  std::vector<float> naive_out, naive_lse;
  naive_forward<double>(full, host_mask, q, k, v, false, gold_out, gold_lse);
  naive_forward<float>(full, host_mask, q, k, v, true, naive_out, naive_lse);

  const ScopedEnv fused("RINGWORLD_GPU_ATTN_FWD", "fused");
  auto be = create_backend(backend_name);
  auto stream = be->create_stream();
  DeviceArray<bf16_t> dq(*be, q.size()), dk(*be, k.size()), dv(*be, v.size());
  upload_bf16(dq, q);
  upload_bf16(dk, k);
  upload_bf16(dv, v);
  DeviceArray<int32_t> dqpos(*be, q_pos.size()), dqseg(*be, q_seg.size()), dkpos(*be, pos.size()),
      dkseg(*be, seg.size());
  dqpos.upload(q_pos.data());
  dqseg.upload(q_seg.data());
  dkpos.upload(pos.data());
  dkseg.upload(seg.data());
  DeviceArray<float> out(*be, q.size()), lse(*be, gold_lse.size());
  be->fill(FillArgs{out.view({static_cast<int64_t>(out.size())}), 0.0}, *stream);
  be->fill(FillArgs{lse.view({static_cast<int64_t>(lse.size())}), -std::numeric_limits<double>::infinity()}, *stream);
  // Two ring steps over keys [0, split) and [split, n_k): K/V, positions and segments of each
  // part copied into their own arrays, as the ring hands a shard to a step.
  for (int part = 0; part < 2; ++part) {
    const int k0 = part == 0 ? 0 : split, nk = part == 0 ? split : n_k - split;
    DeviceArray<bf16_t> pk(*be, static_cast<std::size_t>(batch) * nk * kv_heads * head_dim), pv(*be, pk.size());
    DeviceArray<int32_t> ppos(*be, static_cast<std::size_t>(batch) * nk), pseg(*be, ppos.size());
    std::vector<float> hk, hv;
    std::vector<int32_t> hpos, hseg;
    for (int b = 0; b < batch; ++b) {
      const std::size_t row = static_cast<std::size_t>(kv_heads) * head_dim;
      const std::size_t first = (static_cast<std::size_t>(b) * n_k + k0) * row;
      hk.insert(hk.end(), k.begin() + first, k.begin() + first + nk * row);
      hv.insert(hv.end(), v.begin() + first, v.begin() + first + nk * row);
      hpos.insert(hpos.end(), pos.begin() + b * n_k + k0, pos.begin() + b * n_k + k0 + nk);
      hseg.insert(hseg.end(), seg.begin() + b * n_k + k0, seg.begin() + b * n_k + k0 + nk);
    }
    upload_bf16(pk, hk);
    upload_bf16(pv, hv);
    ppos.upload(hpos.data());
    pseg.upload(hseg.data());
    const AttnShape shape{batch, n_q, nk, heads, kv_heads, head_dim};
    const AttnProblem problem = make_attn_problem(*be, shape, causal, DType::bf16);
    const AttnQueries queries{reinterpret_cast<const float*>(dq.data()), dqpos.data(), dqseg.data()};
    const AttnKeys keys{reinterpret_cast<const float*>(pk.data()), reinterpret_cast<const float*>(pv.data()),
                        ppos.data(), pseg.data()};
#if RW_TEST_HAVE_SIMT_EMU
    be->synchronize(*stream);
    const uint64_t launches = rw::simt::emu::counters().launches;
#endif
    be->attn_fwd_step(make_attn_fwd_args(problem, queries, keys, out.data(), lse.data()), {}, *stream);
    be->synchronize(*stream);
#if RW_TEST_HAVE_SIMT_EMU
    CHECK(rw::simt::emu::counters().launches - launches == 1);  // one fused kernel, not the reference path
#endif
  }
  const std::vector<float> got_out = download_f32(out), got_lse = download_f32(lse);
  CHECK(test::max_abs_error(got_out, gold_out) <= test::tolerance(naive_out, gold_out));
  CHECK(test::max_abs_error(got_lse, gold_lse) <= test::tolerance(naive_lse, gold_lse));
  INFO("out error " << test::max_abs_error(got_out, gold_out) << ", tolerance "
                    << test::tolerance(naive_out, gold_out));
}

}  // namespace

TEST_CASE("the fused bf16 attention forward matches fp64 within FlashAttention's rule", "[conformance][fused]") {
  int ran = 0;
  for (const std::string& name : test::backends_under_test()) {
    if (!is_gpu_kind(name)) continue;
    for (int d : {64, 128})
      for (bool causal : {true, false}) run_case(name, d, causal);
    ++ran;
  }
  CHECK(ran > 0);
}
