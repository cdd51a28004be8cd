// test_fused_attention_bwd.cpp: the fused attention backward (device/cuda/kernels/
// attention_fused_bwd.cu, RINGWORLD_GPU_ATTN_BWD=fused) on every GPU-kind backend under test
// (cuda-emu and hip-emu here: warp 32 and 64, the tile ops emulated from the documented layouts;
// cuda / hip on a GPU): bf16 q/k/v/dout, head_dim 64 and 128, causal and not, packed documents,
// GQA 2:1, a query row that sees no key and a key no query sees, sizes that are not multiples of
// the tiles (100 query rows: 2 tiles of the dQ kernel, 2 or 4 of the dK/dV kernel; two ring steps
// of 70 and 80 keys: 2 tiles each of the dK/dV kernel, 2 or 3 of the dQ kernel), and the ring's
// accumulation (dQ summed over the two steps, dK/dV added to running values), against the
// fp64 gradient over all keys.
//
// Tolerance basis (the forward's rule, test_support.h: twice the error of the same computation,
// plus 8 ulps of the tensor's scale): the same computation is the naive one in fp32 arithmetic
// from the same inputs (the stored bf16 q/k/v/dout, the fp32 lse and delta the step is given)
// with P rounded to bf16 before dV += P^T dO and dS (formed from the fp32 P) rounded to bf16
// before dQ += dS K and dK += dS^T Q, as the fused kernels and FlashAttention-2 do. A sanity
// bound keeps that naive computation honest: its own error must be of bf16's size (below 2^-6 of
// the gradient's scale; bf16 rounding alone is 2^-9 per element), so a wrong naive cannot widen
// the tolerance unnoticed. ~2 s for the 8 cases on both emulated backends on a quiet machine.
#include <catch2/catch.hpp>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "device/attention_builder.h"
#include "device/attention_mask.h"
#include "device/backend.h"
#include "device/cuda/barrier_tags.h"
#include "src/common/input_error.h"
#include "tests/gpu/fused_attention_support.h"
#include "tests/test_support.h"
#include "tests/unit/backends_under_test.h"
#if RW_TEST_HAVE_SIMT_EMU
#include "device/cuda/emu/simt_emu.h"
#endif

using namespace rw;
using namespace rw::device;
using rw::test::download_f32;
using rw::test::round_bf16;
using rw::test::upload_bf16;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The backward over all keys in fp32 arithmetic with the fused kernels' roundings (file comment),
// added to dq / dk / dv. lse and delta: the fp32 inputs the kernel gets.
void naive_backward_bf16(const AttnShape& s, const AttnMaskArgs& m, const std::vector<float>& q,
                         const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>& dout,
                         const std::vector<float>& lse, const std::vector<float>& delta, std::vector<float>& dq,
                         std::vector<float>& dk, std::vector<float>& dv) {
  const int group = s.heads / s.kv_heads, d = s.head_dim;
  const float scale = attn_softmax_scale(d);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        const int qi = b * s.n_q + i;
        const float row_lse = lse[(static_cast<std::size_t>(b) * s.heads + h) * s.n_q + i];
        const float row_delta = delta[(static_cast<std::size_t>(b) * s.heads + h) * s.n_q + i];
        if (row_lse == kNegInf) continue;
        const float* qr = &q[(static_cast<std::size_t>(qi) * s.heads + h) * d];
        const float* dor = &dout[(static_cast<std::size_t>(qi) * s.heads + h) * d];
        float* dqr = &dq[(static_cast<std::size_t>(qi) * s.heads + h) * d];
        for (int j = 0; j < s.n_k; ++j) {
          const int kj = b * s.n_k + j;
          if (!key_visible(m.q_pos[qi], m.q_seg[qi], m.k_pos[kj], m.k_seg[kj], m.causal)) continue;
          const std::size_t kv = (static_cast<std::size_t>(kj) * s.kv_heads + h / group) * d;
          float dot = 0, dp = 0;
          for (int c = 0; c < d; ++c) {
            dot += qr[c] * k[kv + c];
            dp += dor[c] * v[kv + c];
          }
          const float p = std::exp(dot * scale - row_lse);
          const float p16 = round_bf16(p), ds16 = round_bf16(p * (dp - row_delta) * scale);
          for (int c = 0; c < d; ++c) {
            dv[kv + c] += p16 * dor[c];
            dk[kv + c] += ds16 * qr[c];
            dqr[c] += ds16 * k[kv + c];
          }
        }
      }
}

struct Errors {
  double dq = 0, dk = 0, dv = 0;              // max |fused - fp64|
  double dq_tol = 0, dk_tol = 0, dv_tol = 0;  // the rule's bounds
  double naive_relative = 0;                  // the naive computation's error / the gradients' scale
  bool dead_row_untouched = true;             // the query row that sees no key kept its running dq
};

// One backward over two ring steps on `backend_name`, with barrier `dropped` removed from the
// kernels (0: none; the emulation only).
Errors run_backward(const std::string& backend_name, int head_dim, bool causal, int dropped) {
  const int batch = 2, n_q = 100, n_k = 150, heads = 4, kv_heads = 2, split = 70;
  std::vector<int32_t> seg, pos;
  test::packed_documents(batch, n_k, 60, 500 + head_dim, seg, pos);
  // Queries are the last n_q tokens of each row (the local shard of a ring step) ...
  std::vector<int32_t> q_seg, q_pos;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < n_q; ++i) {
      q_seg.push_back(seg[static_cast<std::size_t>(b) * n_k + (n_k - n_q) + i]);
      q_pos.push_back(pos[static_cast<std::size_t>(b) * n_k + (n_k - n_q) + i]);
    }
  // ... one of which (row 7 of batch row 1) is in a document no key belongs to: it sees no key,
  // its lse is -inf and its gradient 0; and key 3 of batch row 0 is padding that no query sees.
  const int dead_row = n_q + 7;
  q_seg[dead_row] = 1000;
  seg[3] = -1;

  const std::size_t q_size = static_cast<std::size_t>(batch) * n_q * heads * head_dim;
  const std::size_t kv_size = static_cast<std::size_t>(batch) * n_k * kv_heads * head_dim;
  const auto q = round_bf16(test::random_vector(q_size, 601));
  const auto k = round_bf16(test::random_vector(kv_size, 602));
  const auto v = round_bf16(test::random_vector(kv_size, 603));
  const auto dout = round_bf16(test::random_vector(q_size, 604));
  // Running values the step adds to (dQ from earlier steps, dK/dV travelling the ring).
  const auto dq0 = test::random_vector(q_size, 605, 0.1f);
  const auto dk0 = test::random_vector(kv_size, 606, 0.1f);
  const auto dv0 = test::random_vector(kv_size, 607, 0.1f);

  const AttnShape full{batch, n_q, n_k, heads, kv_heads, head_dim};
  const AttnMaskArgs host_mask{q_pos.data(), q_seg.data(), pos.data(), seg.data(), causal};
  const test::FullAttention<double, double> gold(full, host_mask, q, k, v, &dout);
  // The step's inputs: the final lse and delta = rowsum(dout * out), fp32.
  std::vector<double> gold_delta(gold.lse.size());
  reference::attn_row_dot<double, double>(full, gold.out.data(), test::to<double>(dout).data(), gold_delta.data());
  const std::vector<float> lse(gold.lse.begin(), gold.lse.end()), delta(gold_delta.begin(), gold_delta.end());
  REQUIRE(lse[(static_cast<std::size_t>(1) * heads + 0) * n_q + 7] == kNegInf);  // the dead row's

  std::vector<double> gold_dq(dq0.begin(), dq0.end()), gold_dk(dk0.begin(), dk0.end()),
      gold_dv(dv0.begin(), dv0.end());
  for (std::size_t i = 0; i < q_size; ++i) gold_dq[i] += gold.dq[i];
  for (std::size_t i = 0; i < kv_size; ++i) {
    gold_dk[i] += gold.dk[i];
    gold_dv[i] += gold.dv[i];
  }
  std::vector<float> naive_dq = dq0, naive_dk = dk0, naive_dv = dv0;
  naive_backward_bf16(full, host_mask, q, k, v, dout, lse, delta, naive_dq, naive_dk, naive_dv);

  const test::ScopedEnv fused("RINGWORLD_GPU_ATTN_BWD", "fused");
  auto be = create_backend(backend_name);
  auto stream = be->create_stream();
  DeviceArray<bf16_t> d_q(*be, q_size), d_dout(*be, q_size);
  upload_bf16(d_q, q);
  upload_bf16(d_dout, dout);
  DeviceArray<int32_t> d_qpos(*be, q_pos.size()), d_qseg(*be, q_seg.size());
  d_qpos.upload(q_pos.data());
  d_qseg.upload(q_seg.data());
  DeviceArray<float> d_lse(*be, lse.size()), d_delta(*be, delta.size()), d_dq(*be, q_size);
  d_lse.upload(lse.data());
  d_delta.upload(delta.data());
  d_dq.upload(dq0.data());
  std::vector<float> got_dk(kv_size), got_dv(kv_size);
  // Two ring steps over keys [0, split) and [split, n_k), each shard (K, V, positions, segments,
  // running dK/dV) in arrays of its own, as the ring hands them to a step.
  for (int part = 0; part < 2; ++part) {
    const int k0 = part == 0 ? 0 : split, nk = part == 0 ? split : n_k - split;
    const std::size_t row = static_cast<std::size_t>(kv_heads) * head_dim;
    std::vector<float> hk, hv, hdk, hdv;
    std::vector<int32_t> hpos, hseg;
    for (int b = 0; b < batch; ++b) {
      const std::size_t first = (static_cast<std::size_t>(b) * n_k + k0) * row, last = first + nk * row;
      hk.insert(hk.end(), k.begin() + first, k.begin() + last);
      hv.insert(hv.end(), v.begin() + first, v.begin() + last);
      hdk.insert(hdk.end(), dk0.begin() + first, dk0.begin() + last);
      hdv.insert(hdv.end(), dv0.begin() + first, dv0.begin() + last);
      hpos.insert(hpos.end(), pos.begin() + b * n_k + k0, pos.begin() + b * n_k + k0 + nk);
      hseg.insert(hseg.end(), seg.begin() + b * n_k + k0, seg.begin() + b * n_k + k0 + nk);
    }
    DeviceArray<bf16_t> pk(*be, hk.size()), pv(*be, hv.size());
    DeviceArray<float> pdk(*be, hdk.size()), pdv(*be, hdv.size());
    DeviceArray<int32_t> ppos(*be, hpos.size()), pseg(*be, hseg.size());
    upload_bf16(pk, hk);
    upload_bf16(pv, hv);
    pdk.upload(hdk.data());
    pdv.upload(hdv.data());
    ppos.upload(hpos.data());
    pseg.upload(hseg.data());
    const AttnShape shape{batch, n_q, nk, heads, kv_heads, head_dim};
    const AttnProblem problem = make_attn_problem(*be, shape, causal, DType::bf16);
    const AttnQueries queries{reinterpret_cast<const float*>(d_q.data()), d_qpos.data(), d_qseg.data()};
    const AttnKeys keys{reinterpret_cast<const float*>(pk.data()), reinterpret_cast<const float*>(pv.data()),
                        ppos.data(), pseg.data()};
#if RW_TEST_HAVE_SIMT_EMU
    be->synchronize(*stream);
    const uint64_t launches = rw::simt::emu::counters().launches;
    rw::simt::emu::drop_barrier_for_test(dropped);
#else
    (void)dropped;
#endif
    be->attn_bwd_step(make_attn_bwd_args(problem, queries, keys, reinterpret_cast<const float*>(d_dout.data()),
                                         d_lse.data(), d_delta.data(), d_dq.data(), pdk.data(), pdv.data()),
                      {}, *stream);
    be->synchronize(*stream);
#if RW_TEST_HAVE_SIMT_EMU
    rw::simt::emu::drop_barrier_for_test(0);
    CHECK(rw::simt::emu::counters().launches - launches == 2);  // the fused dK/dV and dQ kernels, not the reference path
#endif
    const std::vector<float> sdk = download_f32(pdk), sdv = download_f32(pdv);
    for (int b = 0; b < batch; ++b)
      for (std::size_t e = 0; e < nk * row; ++e) {
        got_dk[(static_cast<std::size_t>(b) * n_k + k0) * row + e] = sdk[static_cast<std::size_t>(b) * nk * row + e];
        got_dv[(static_cast<std::size_t>(b) * n_k + k0) * row + e] = sdv[static_cast<std::size_t>(b) * nk * row + e];
      }
  }
  const std::vector<float> got_dq = download_f32(d_dq);

  Errors e;
  e.dq = test::max_abs_error(got_dq, gold_dq);
  e.dk = test::max_abs_error(got_dk, gold_dk);
  e.dv = test::max_abs_error(got_dv, gold_dv);
  e.dq_tol = test::tolerance(naive_dq, gold_dq);
  e.dk_tol = test::tolerance(naive_dk, gold_dk);
  e.dv_tol = test::tolerance(naive_dv, gold_dv);
  const double scale = std::max({test::max_abs(gold.dq), test::max_abs(gold.dk), test::max_abs(gold.dv)});
  e.naive_relative = std::max({test::max_abs_error(naive_dq, gold_dq), test::max_abs_error(naive_dk, gold_dk),
                               test::max_abs_error(naive_dv, gold_dv)}) /
                     scale;
  for (int h = 0; h < heads; ++h)
    for (int c = 0; c < head_dim; ++c) {
      const std::size_t at = (static_cast<std::size_t>(dead_row) * heads + h) * head_dim + c;
      if (got_dq[at] != dq0[at]) e.dead_row_untouched = false;
    }
  return e;
}

}  // namespace

TEST_CASE("the fused bf16 attention backward matches fp64 within FlashAttention's rule", "[conformance][fused]") {
  int ran = 0;
  for (const std::string& name : test::backends_under_test()) {
    if (!test::is_gpu_kind(name)) continue;
    for (int d : {64, 128})
      for (bool causal : {true, false}) {
        INFO(name << ", head_dim " << d << (causal ? ", causal" : ", not causal"));
        const Errors e = run_backward(name, d, causal, 0);
        INFO("dq error " << e.dq << " (bound " << e.dq_tol << "), dk " << e.dk << " (" << e.dk_tol << "), dv " << e.dv
                         << " (" << e.dv_tol << "); naive relative error " << e.naive_relative);
        CHECK(e.naive_relative < 1.0 / 64);  // the basis is sound (file comment)
        CHECK(e.dq <= e.dq_tol);
        CHECK(e.dk <= e.dk_tol);
        CHECK(e.dv <= e.dv_tol);
        CHECK(e.dead_row_untouched);
      }
    ++ran;
  }
  CHECK(ran > 0);
}

#if RW_TEST_HAVE_SIMT_EMU
TEST_CASE("dropping the fused backward's tile barrier gives a wrong answer", "[simt][fused]") {
  for (const char* name : {"cuda-emu", "hip-emu"}) {
    INFO(name);
    const Errors e = run_backward(name, 64, false, gpu::kBarrierAttnBwdTileLoaded);
    // Threads read the streamed tiles before their partners wrote them (NaN at block start, or
    // the previous tile): some gradient is wrong (or NaN, which fails the comparison).
    CHECK(!(e.dq <= e.dq_tol && e.dk <= e.dk_tol && e.dv <= e.dv_tol));
  }
}
#endif

#if RW_TEST_HAVE_SIMT_EMU
TEST_CASE("an unknown RINGWORLD_GPU_ATTN_FWD / _BWD value is one clear error", "[fused]") {
  for (const char* variable : {"RINGWORLD_GPU_ATTN_FWD", "RINGWORLD_GPU_ATTN_BWD"}) {
    INFO(variable);
    const test::ScopedEnv bad(variable, "fast");
    try {
      create_backend("cuda-emu");
      FAIL("no error");
    } catch (const InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains(std::string(variable) + "='fast'") &&
                               Catch::Contains("expected reference or fused"));
    }
  }
}
#endif
