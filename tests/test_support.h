// test_support.h: shared helpers of the test programs: deterministic inputs, packed-document
// masks, the fp64 and naive-fp32 full-attention references, and the tolerance rule.
//
// Tolerance rule (style.md item 6, FlashAttention's test rule): an fp32 result R of a tensor
// whose fp64 reference is G passes when
//     max|R - G| <= 2 * max|N - G| + 8 * FLT_EPSILON * max|G|
// where N is the same quantity computed by the naive fp32 implementation (reference
// <float,float>: plain loops, fp32 arithmetic) from the same fp32 inputs. The first term says
// "no more than twice as wrong as a straightforward fp32 implementation"; the second is a floor
// of a few ulps of the tensor's scale, for tensors where the naive error happens to be ~0.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "device/attention_args.h"
#include "device/cpu/attention_reference.h"
#include "src/model/llama_config.h"

namespace rw::test {

// splitmix64: the same numbers on every rank and platform.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  float symmetric(float scale) { return static_cast<float>((2 * uniform() - 1) * scale); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

// A LLaMA small enough for fp64 references and finite differences (eps 1e-5).
inline model::LlamaConfig tiny_llama(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                                     int64_t kv_heads, double rope_theta) {
  model::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = rope_theta;
  return c;
}

inline std::vector<float> random_vector(std::size_t n, uint64_t seed, float scale = 1.f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.symmetric(scale);
  return v;
}

// Packed documents: per batch row, documents of random lengths 1..max_doc_len (so some
// straddle rank and chunk boundaries); segment ids count up from 0; positions restart at 0.
inline void packed_documents(int batch, int seq, int max_doc_len, uint64_t seed, std::vector<int32_t>& seg,
                             std::vector<int32_t>& pos) {
  Rng rng(seed);
  seg.resize(static_cast<std::size_t>(batch) * seq);
  pos.resize(seg.size());
  for (int b = 0; b < batch; ++b) {
    int doc = 0, left = 1 + rng.below(max_doc_len), p = 0;
    for (int t = 0; t < seq; ++t) {
      if (left == 0) {
        ++doc;
        left = 1 + rng.below(max_doc_len);
        p = 0;
      }
      seg[static_cast<std::size_t>(b) * seq + t] = doc;
      pos[static_cast<std::size_t>(b) * seq + t] = p++;
      --left;
    }
  }
}

inline void single_document(int batch, int seq, std::vector<int32_t>& seg, std::vector<int32_t>& pos) {
  seg.assign(static_cast<std::size_t>(batch) * seq, 0);
  pos.resize(seg.size());
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < seq; ++t) pos[static_cast<std::size_t>(b) * seq + t] = t;
}

template <class T>
std::vector<T> to(const std::vector<float>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Full (single-call) attention forward and backward in the precision of T (arithmetic Acc).
template <class T, class Acc>
struct FullAttention {
  std::vector<T> out, lse, dq, dk, dv;
  FullAttention(const device::AttnShape& s, const device::AttnMaskArgs& mask, const std::vector<float>& q,
                const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>* dout) {
    const Acc scale = Acc(1) / std::sqrt(Acc(s.head_dim));
    auto qt = to<T>(q), kt = to<T>(k), vt = to<T>(v);
    out.assign(q.size(), T(0));
    lse.assign(static_cast<std::size_t>(s.batch) * s.heads * s.n_q, -std::numeric_limits<T>::infinity());
    device::reference::attn_fwd_step<T, Acc>(s, mask, scale, qt.data(), kt.data(), vt.data(), out.data(),
                                             lse.data());
    if (!dout) return;
    auto dt = to<T>(*dout);
    std::vector<T> delta(lse.size());
    device::reference::attn_row_dot<T, Acc>(s, out.data(), dt.data(), delta.data());
    dq.assign(q.size(), T(0));
    dk.assign(k.size(), T(0));
    dv.assign(v.size(), T(0));
    device::reference::attn_bwd_step<T, Acc>(s, mask, scale, qt.data(), kt.data(), vt.data(), dt.data(),
                                             lse.data(), delta.data(), dq.data(), dk.data(), dv.data());
  }
};

// max |a - g| over finite reference entries; entries where g is -inf must match exactly (an
// lse of a row that saw no key), otherwise they count as an infinite error.
template <class A, class G>
double max_abs_error(const std::vector<A>& a, const std::vector<G>& g) {
  double worst = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    double gi = double(g[i]), ai = double(a[i]);
    if (std::isinf(gi) || std::isinf(ai)) {
      if (gi != ai) return std::numeric_limits<double>::infinity();
      continue;
    }
    double e = std::fabs(ai - gi);
    if (!(e <= worst)) worst = e;  // NaN propagates as worst = NaN
  }
  return worst;
}

template <class G>
double max_abs(const std::vector<G>& g) {
  double m = 0;
  for (auto x : g)
    if (std::isfinite(double(x))) m = std::fmax(m, std::fabs(double(x)));
  return m;
}

// The tolerance rule above.
template <class N, class G>
double tolerance(const std::vector<N>& naive_fp32, const std::vector<G>& gold) {
  return 2 * max_abs_error(naive_fp32, gold) + 8 * FLT_EPSILON * max_abs(gold);
}

}  // namespace rw::test
