// test_ring_attention.cpp: the ring (any number of ranks, every layout) against the fp64
// single-rank reference, forward and backward, with causal masks, packed documents and GQA;
// and bit-for-bit repeatability. Run under mpirun with 1, 2, 3 and 4 ranks.
// Every rank builds the same global inputs, takes its own tokens in ring layout, runs the ring,
// and checks its part of each result against the reference (tolerance: tests/test_support.h).
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "device/backend.h"
#include "mpi/ring_exchange.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/attention/ring_attention.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::test;

namespace {

struct RingCase {
  Layout layout;
  bool causal, packed;
  int batch, seq, heads, kv_heads, head_dim, block_q, block_k;
  std::string backend = "cpu";
};

struct RingResult {
  std::vector<float> out, lse, dq, dk, dv;
};

// Picks the local tokens (in local order) of a [batch, seq, width] tensor.
template <class T>
std::vector<T> take_local(const std::vector<T>& x, int batch, int seq, int width, const std::vector<int64_t>& idx) {
  std::vector<T> out(static_cast<std::size_t>(batch) * idx.size() * width);
  for (int b = 0; b < batch; ++b)
    for (std::size_t i = 0; i < idx.size(); ++i)
      std::memcpy(&out[(b * idx.size() + i) * width], &x[(static_cast<std::size_t>(b) * seq + idx[i]) * width],
                  sizeof(T) * width);
  return out;
}

// lse is [batch, heads, seq]: token axis in the middle.
template <class T>
std::vector<T> take_local_lse(const std::vector<T>& x, int batch, int heads, int seq, const std::vector<int64_t>& idx) {
  std::vector<T> out(static_cast<std::size_t>(batch) * heads * idx.size());
  for (int bh = 0; bh < batch * heads; ++bh)
    for (std::size_t i = 0; i < idx.size(); ++i) out[bh * idx.size() + i] = x[static_cast<std::size_t>(bh) * seq + idx[i]];
  return out;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> seg, pos;
};

Inputs make_inputs(const RingCase& c) {
  Inputs in;
  in.q = random_vector(static_cast<std::size_t>(c.batch) * c.seq * c.heads * c.head_dim, 21);
  in.k = random_vector(static_cast<std::size_t>(c.batch) * c.seq * c.kv_heads * c.head_dim, 22);
  in.v = random_vector(in.k.size(), 23);
  in.dout = random_vector(in.q.size(), 24);
  if (c.packed) packed_documents(c.batch, c.seq, 11, 25, in.seg, in.pos);
  else single_document(c.batch, c.seq, in.seg, in.pos);
  return in;
}

RingResult run_ring(const RingCase& c, const Inputs& in) {
  const int n = mpi::world_size(), rank = mpi::world_rank();
  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int n_local = static_cast<int>(idx.size());
  auto backend = device::make_backend(c.backend);
  device::Backend& dev = *backend;
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  auto upload = [&](auto host) {
    using T = typename decltype(host)::value_type;
    device::DeviceArray<T> d(dev, host.size());
    d.upload(host.data());
    return d;
  };
  auto q = upload(take_local(in.q, c.batch, c.seq, qw, idx));
  auto k = upload(take_local(in.k, c.batch, c.seq, kw, idx));
  auto v = upload(take_local(in.v, c.batch, c.seq, kw, idx));
  auto dout = upload(take_local(in.dout, c.batch, c.seq, qw, idx));
  auto pos = upload(take_local(in.pos, c.batch, c.seq, 1, idx));
  auto seg = upload(take_local(in.seg, c.batch, c.seq, 1, idx));

  RingShard shard{c.batch, n_local, c.heads, c.kv_heads, c.head_dim, q.data(), k.data(), v.data(), pos.data(), seg.data()};
  mpi::RingExchange ring(120.0);
  RingOptions options;
  options.causal = c.causal;
  options.tiling = {c.block_q, c.block_k};
  RingAttention attention(dev, ring, options);
  device::DeviceArray<float> out(dev, q.size()), lse(dev, static_cast<std::size_t>(c.batch) * c.heads * n_local),
      dq(dev, q.size()), dk(dev, k.size()), dv(dev, v.size());
  attention.forward(shard, out.data(), lse.data());
  attention.backward(shard, out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data());
  RingResult r;
  auto download = [](const device::DeviceArray<float>& d) {
    std::vector<float> h(d.size());
    d.download(h.data());
    return h;
  };
  r.out = download(out);
  r.lse = download(lse);
  r.dq = download(dq);
  r.dk = download(dk);
  r.dv = download(dv);
  return r;
}

void check_case(const RingCase& c) {
  const int n = mpi::world_size(), rank = mpi::world_rank();
  INFO("ranks " << n << ", rank " << rank << ", layout " << layout_name(c.layout) << ", "
                << (c.causal ? "causal" : "full") << (c.packed ? ", packed" : "") << ", heads " << c.heads << "/"
                << c.kv_heads << ", seq " << c.seq << ", blocks " << c.block_q << "x" << c.block_k << ", backend "
                << c.backend);
  const Inputs in = make_inputs(c);
  device::AttnShape s{c.batch, c.seq, c.seq, c.heads, c.kv_heads, c.head_dim};
  device::AttnMaskArgs mask{in.pos.data(), in.seg.data(), in.pos.data(), in.seg.data(), c.causal};
  FullAttention<double, double> gold(s, mask, in.q, in.k, in.v, &in.dout);
  FullAttention<float, float> naive(s, mask, in.q, in.k, in.v, &in.dout);
  const RingResult r = run_ring(c, in);

  const auto idx = local_token_indices(c.layout, c.seq, n, rank);
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  // Tolerances from the whole tensors; each rank checks its own tokens.
  CHECK(max_abs_error(r.out, take_local(gold.out, c.batch, c.seq, qw, idx)) <= tolerance(naive.out, gold.out));
  CHECK(max_abs_error(r.lse, take_local_lse(gold.lse, c.batch, c.heads, c.seq, idx)) <= tolerance(naive.lse, gold.lse));
  CHECK(max_abs_error(r.dq, take_local(gold.dq, c.batch, c.seq, qw, idx)) <= tolerance(naive.dq, gold.dq));
  CHECK(max_abs_error(r.dk, take_local(gold.dk, c.batch, c.seq, kw, idx)) <= tolerance(naive.dk, gold.dk));
  CHECK(max_abs_error(r.dv, take_local(gold.dv, c.batch, c.seq, kw, idx)) <= tolerance(naive.dv, gold.dv));
}

}  // namespace

TEST_CASE("ring attention equals the fp64 reference for every layout, mask and head grouping", "[ring]") {
  for (Layout layout : {Layout::contiguous, Layout::striped, Layout::zigzag})
    for (bool causal : {false, true})
      for (bool packed : {false, true})
        for (int kv_heads : {4, 2}) {
          RingCase c{layout, causal, packed, 2, 48, 4, kv_heads, 16, 8, 8};
          check_case(c);
        }
}

TEST_CASE("ring attention with blocks that do not divide the shard, and larger heads", "[ring]") {
  check_case({Layout::zigzag, true, true, 1, 96, 4, 1, 32, 5, 7});
  check_case({Layout::striped, true, false, 1, 96, 2, 2, 64, 64, 16});
  check_case({Layout::contiguous, false, true, 2, 96, 2, 1, 32, 128, 128});
}

TEST_CASE("the reference backend runs the same ring", "[ring]") {
  RingCase c{Layout::zigzag, true, true, 1, 48, 4, 2, 16, 8, 8};
  c.backend = "cpu-reference";
  check_case(c);
}

TEST_CASE("ring results are bit-for-bit repeatable", "[ring]") {
  RingCase c{Layout::zigzag, true, true, 2, 96, 4, 2, 32, 16, 16};
  const Inputs in = make_inputs(c);
  const RingResult a = run_ring(c, in), b = run_ring(c, in);
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  CHECK(same(a.out, b.out));
  CHECK(same(a.lse, b.lse));
  CHECK(same(a.dq, b.dq));
  CHECK(same(a.dk, b.dk));
  CHECK(same(a.dv, b.dv));
}
