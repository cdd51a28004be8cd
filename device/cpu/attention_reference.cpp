// attention_reference.cpp: see attention_reference.h. Clarity over speed; O(n_k) scratch per
// row, so it runs on any length the tests use.
#include "device/cpu/attention_reference.h"

#include <cmath>
#include <limits>
#include <vector>

#include "device/attention_mask.h"

namespace rw::device::reference {
namespace {

inline std::size_t qkv_index(int b, int i, int h, int n, int n_heads, int d) {
  return ((static_cast<std::size_t>(b) * n + i) * n_heads + h) * d;
}
inline std::size_t row_index(int b, int h, int i, int heads, int n_q) {
  return (static_cast<std::size_t>(b) * heads + h) * n_q + i;
}

template <class Acc>
Acc merged_lse(Acc a, Acc b) {
  const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
  if (a == neg_inf) return b;
  if (b == neg_inf) return a;
  Acc hi = a > b ? a : b;
  return hi + std::log1p(std::exp(-std::fabs(a - b)));
}

}  // namespace

template <class Storage, class Acc>
void attn_merge(const AttnShape& s, Storage* out_a, Storage* lse_a, const Storage* out_b,
                const Storage* lse_b) {
  const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        std::size_t r = row_index(b, h, i, s.heads, s.n_q);
        Acc la = lse_a[r], lb = lse_b[r];
        Acc l = merged_lse(la, lb);
        if (l == neg_inf) continue;  // neither side saw a key: stays (0, -inf)
        Acc wa = la == neg_inf ? Acc(0) : std::exp(la - l);
        Acc wb = lb == neg_inf ? Acc(0) : std::exp(lb - l);
        Storage* oa = out_a + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        const Storage* ob = out_b + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        for (int d = 0; d < s.head_dim; ++d) oa[d] = static_cast<Storage>(wa * oa[d] + wb * ob[d]);
        lse_a[r] = static_cast<Storage>(l);
      }
}

template <class Storage, class Acc>
void attn_fwd_step(const AttnShape& s, const AttnMaskArgs& mask, Acc scale, const Storage* q,
                   const Storage* k, const Storage* v, Storage* out, Storage* lse) {
  const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
  const int group = s.heads / s.kv_heads;
  std::vector<Acc> scores(s.n_k), acc(s.head_dim);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        const int kvh = h / group;
        const Storage* qi = q + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        int32_t qp = mask.q_pos[b * s.n_q + i], qs = mask.q_seg[b * s.n_q + i];
        Acc row_max = neg_inf;
        for (int j = 0; j < s.n_k; ++j) {
          scores[j] = neg_inf;
          if (!key_visible(qp, qs, mask.k_pos[b * s.n_k + j], mask.k_seg[b * s.n_k + j], mask.causal))
            continue;
          const Storage* kj = k + qkv_index(b, j, kvh, s.n_k, s.kv_heads, s.head_dim);
          Acc dot = 0;
          for (int d = 0; d < s.head_dim; ++d) dot += Acc(qi[d]) * Acc(kj[d]);
          scores[j] = dot * scale;
          if (scores[j] > row_max) row_max = scores[j];
        }
        if (row_max == neg_inf) continue;  // no visible key in this call: nothing to merge
        Acc denom = 0;
        for (int d = 0; d < s.head_dim; ++d) acc[d] = 0;
        for (int j = 0; j < s.n_k; ++j) {
          if (scores[j] == neg_inf) continue;
          Acc p = std::exp(scores[j] - row_max);
          denom += p;
          const Storage* vj = v + qkv_index(b, j, kvh, s.n_k, s.kv_heads, s.head_dim);
          for (int d = 0; d < s.head_dim; ++d) acc[d] += p * Acc(vj[d]);
        }
        Acc step_lse = row_max + std::log(denom);
        std::size_t r = row_index(b, h, i, s.heads, s.n_q);
        Acc old_lse = lse[r];
        Acc new_lse = merged_lse(old_lse, step_lse);
        Acc w_old = old_lse == neg_inf ? Acc(0) : std::exp(old_lse - new_lse);
        Acc w_new = std::exp(step_lse - new_lse) / denom;
        Storage* oi = out + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        for (int d = 0; d < s.head_dim; ++d) oi[d] = static_cast<Storage>(w_old * oi[d] + w_new * acc[d]);
        lse[r] = static_cast<Storage>(new_lse);
      }
}

template <class Storage, class Acc>
void attn_bwd_step(const AttnShape& s, const AttnMaskArgs& mask, Acc scale, const Storage* q,
                   const Storage* k, const Storage* v, const Storage* dout, const Storage* lse,
                   const Storage* delta, Storage* dq, Storage* dk, Storage* dv) {
  const Acc neg_inf = -std::numeric_limits<Acc>::infinity();
  const int group = s.heads / s.kv_heads;
  std::vector<Acc> dq_row(s.head_dim);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        std::size_t r = row_index(b, h, i, s.heads, s.n_q);
        Acc row_lse = lse[r];
        if (row_lse == neg_inf) continue;  // the row saw no key: no gradient flows
        const int kvh = h / group;
        const Storage* qi = q + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        const Storage* doi = dout + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        int32_t qp = mask.q_pos[b * s.n_q + i], qs = mask.q_seg[b * s.n_q + i];
        for (int d = 0; d < s.head_dim; ++d) dq_row[d] = 0;
        for (int j = 0; j < s.n_k; ++j) {
          if (!key_visible(qp, qs, mask.k_pos[b * s.n_k + j], mask.k_seg[b * s.n_k + j], mask.causal))
            continue;
          std::size_t kj_off = qkv_index(b, j, kvh, s.n_k, s.kv_heads, s.head_dim);
          const Storage* kj = k + kj_off;
          const Storage* vj = v + kj_off;
          Acc dot = 0, dp = 0;
          for (int d = 0; d < s.head_dim; ++d) {
            dot += Acc(qi[d]) * Acc(kj[d]);
            dp += Acc(doi[d]) * Acc(vj[d]);
          }
          Acc p = std::exp(dot * scale - row_lse);
          Acc ds = p * (dp - Acc(delta[r]));
          for (int d = 0; d < s.head_dim; ++d) {
            dq_row[d] += ds * scale * Acc(kj[d]);
            dk[kj_off + d] = static_cast<Storage>(Acc(dk[kj_off + d]) + ds * scale * Acc(qi[d]));
            dv[kj_off + d] = static_cast<Storage>(Acc(dv[kj_off + d]) + p * Acc(doi[d]));
          }
        }
        Storage* dqi = dq + qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        for (int d = 0; d < s.head_dim; ++d) dqi[d] = static_cast<Storage>(Acc(dqi[d]) + dq_row[d]);
      }
}

template <class Storage, class Acc>
void attn_row_dot(const AttnShape& s, const Storage* out, const Storage* dout, Storage* delta) {
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.n_q; ++i) {
        std::size_t off = qkv_index(b, i, h, s.n_q, s.heads, s.head_dim);
        Acc sum = 0;
        for (int d = 0; d < s.head_dim; ++d) sum += Acc(out[off + d]) * Acc(dout[off + d]);
        delta[row_index(b, h, i, s.heads, s.n_q)] = static_cast<Storage>(sum);
      }
}

#define RW_INSTANTIATE(S, A)                                                                     \
  template void attn_fwd_step<S, A>(const AttnShape&, const AttnMaskArgs&, A, const S*, const S*, \
                                    const S*, S*, S*);                                           \
  template void attn_bwd_step<S, A>(const AttnShape&, const AttnMaskArgs&, A, const S*, const S*, \
                                    const S*, const S*, const S*, const S*, S*, S*, S*);         \
  template void attn_row_dot<S, A>(const AttnShape&, const S*, const S*, S*);                    \
  template void attn_merge<S, A>(const AttnShape&, S*, S*, const S*, const S*);

RW_INSTANTIATE(float, double)
RW_INSTANTIATE(double, double)
RW_INSTANTIATE(float, float)
#undef RW_INSTANTIATE

}  // namespace rw::device::reference
