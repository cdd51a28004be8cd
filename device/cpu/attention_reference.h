// attention_reference.h: plain-loop attention, one query row at a time, in the precision of
// its template parameters. It is the reference every optimised kernel is checked against:
//   <float,  double>  the cpu-reference backend (fp32 storage, fp64 arithmetic);
//   <double, double>  the fp64 gold standard of the tests;
//   <float,  float>   a naive fp32 implementation, whose error against fp64 is the basis of
//                     the tests' tolerances (FlashAttention's rule: an optimised fp32 kernel
//                     may be at most a small multiple as wrong as the naive fp32 one).
// Shapes, layouts and merge semantics are those of device/attention_args.h.
#pragma once
#include "device/attention_args.h"

namespace rw::device::reference {

// out/lse hold the running result and are merged with this call's keys.
template <class Storage, class Acc>
void attn_fwd_step(const AttnShape& shape, const AttnMaskArgs& mask, Acc scale, const Storage* q,
                   const Storage* k, const Storage* v, Storage* out, Storage* lse);

// dq, dk, dv accumulate (+=); lse is the final forward lse; delta = rowsum(dout * out).
template <class Storage, class Acc>
void attn_bwd_step(const AttnShape& shape, const AttnMaskArgs& mask, Acc scale, const Storage* q,
                   const Storage* k, const Storage* v, const Storage* dout, const Storage* lse,
                   const Storage* delta, Storage* dq, Storage* dk, Storage* dv);

template <class Storage, class Acc>
void attn_row_dot(const AttnShape& shape, const Storage* out, const Storage* dout, Storage* delta);

template <class Storage, class Acc>
void attn_merge(const AttnShape& shape, Storage* out_a, Storage* lse_a, const Storage* out_b,
                const Storage* lse_b);

}  // namespace rw::device::reference
