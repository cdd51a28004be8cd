// test_simt_emu.cpp: the SIMT emulation (device/cuda/emu/simt_emu.h) that runs the GPU kernels
// here: warp operations with CUDA's semantics at warp size 32 and 64, the seeded permuted
// schedule, that a missing barrier gives a wrong answer (a probe kernel, and the project's own
// GEMM and reduction kernels with one named barrier dropped through the test hook, via the
// cuda-emu and hip-emu backends), and that a barrier or warp operation not every thread reaches
// is fatal rather than a hang; the matrix-core tile wrapper against the documented fragment
// layouts; the reductions' bits do not depend on the schedule. Fatal paths run in a forked
// child. About 2 s.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/cuda/barrier_tags.h"
#include "device/cuda/emu/simt_emu.h"
#include "src/common/fatal.h"
#include "tests/fatal_in_child.h"
#include "tests/gpu/emu_test_kernels.h"
#include "tests/gpu/mma_check.h"
#include "tests/gpu/mma_test.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::device;

namespace {

struct EmuKernels {
  const char* name;
  int warp_size;
  rw::test::simt::WarpOps (*warp_ops)(int);
  std::vector<int> (*order)(int);
  std::vector<float> (*reverse)(const std::vector<float>&, bool);
  void (*divergent_barrier)();
  void (*divergent_shuffle)();
  void (*mismatched)();
};

const EmuKernels kEmulations[] = {
    {"warp 32", 32, &gpu::emu_w32::run_warp_ops, &gpu::emu_w32::run_order, &gpu::emu_w32::run_reverse,
     &gpu::emu_w32::run_divergent_barrier, &gpu::emu_w32::run_divergent_shuffle,
     &gpu::emu_w32::run_mismatched_warp_ops},
    {"warp 64", 64, &gpu::emu_w64::run_warp_ops, &gpu::emu_w64::run_order, &gpu::emu_w64::run_reverse,
     &gpu::emu_w64::run_divergent_barrier, &gpu::emu_w64::run_divergent_shuffle,
     &gpu::emu_w64::run_mismatched_warp_ops},
};

// Runs fn in a forked child whose fatal handler sends the message back; returns it ("" if none).
std::string fatal_message_of(const std::function<void()>& fn) {
  const test::ChildResult r = test::fork_and_run(fn);
  CHECK((!r.signaled && r.exit_code >= 0));
  return r.fatal_message;
}

}  // namespace

TEST_CASE("warp shuffles, votes and reductions follow CUDA's semantics at warp size 32 and 64", "[simt]") {
  const int n = 128;
  for (const EmuKernels& k : kEmulations) {
    INFO(k.name);
    const rw::test::simt::WarpOps r = k.warp_ops(n);
    REQUIRE(r.warp_size == k.warp_size);
    const int ws = k.warp_size;
    int wrong = 0;
    for (int t = 0; t < n; ++t) {
      const int base = t / ws * ws, lane = t % ws;
      wrong += r.lane[t] != lane;
      wrong += r.xor3[t] != 10 * (t ^ 3);
      wrong += r.down5_w8[t] != 10 * ((t % 8) + 5 < 8 ? t + 5 : t);  // past the group of 8: own value
      wrong += r.up2_w16[t] != 10 * ((t % 16) < 2 ? t : t - 2);
      wrong += r.index7[t] != 10 * (base + 7);
      wrong += r.index_w4[t] != 10 * (t / 4 * 4 + 2);
      uint64_t mask = 0;
      for (int i = 0; i < ws; ++i)
        if ((base + i) % 3 == 0) mask |= uint64_t(1) << i;
      wrong += r.ballot_mod3[t] != mask;
      wrong += r.any_is_40[t] != (base <= 40 && 40 < base + ws ? 1 : 0);
      wrong += r.all_below_n[t] != 1;
      wrong += r.warp_sum[t] != static_cast<float>(ws * base + ws * (ws - 1) / 2);  // exact in fp32
      wrong += r.block_sum[t] != static_cast<float>(n * (n - 1) / 2);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("the emulation runs a block's threads in a seeded, permuted order", "[simt]") {
  for (const EmuKernels& k : kEmulations) {
    INFO(k.name);
    std::vector<int> identity(256);
    std::iota(identity.begin(), identity.end(), 0);
    const std::vector<int> first = k.order(256), second = k.order(256);
    std::vector<int> sorted = first;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == identity);  // every thread ran once
    CHECK(first != identity);
    CHECK(first != second);  // a fresh permutation per launch
  }
  const uint64_t seed = rw::simt::emu::schedule_seed();
  rw::simt::emu::set_schedule_seed(12345);
  const std::vector<int> other_seed = kEmulations[0].order(256);
  rw::simt::emu::set_schedule_seed(seed);
  std::vector<int> identity(256);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(other_seed != identity);
}

TEST_CASE("a missing __syncthreads gives a wrong answer under the emulation", "[simt]") {
  std::vector<float> in(256);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i) + 0.5f;
  for (const EmuKernels& k : kEmulations) {
    INFO(k.name);
    std::vector<float> gold(in.rbegin(), in.rend());
    CHECK(k.reverse(in, true) == gold);
    const std::vector<float> broken = k.reverse(in, false);
    int wrong = 0;
    for (std::size_t i = 0; i < in.size(); ++i) wrong += !(broken[i] == gold[i]);
    CHECK(wrong > 0);  // threads read slots their partners had not written yet (NaN)
  }
}

TEST_CASE("barriers and warp operations that not every thread reaches are fatal, not a hang", "[simt]") {
  for (const EmuKernels& k : kEmulations) {
    INFO(k.name);
    CHECK_THAT(fatal_message_of(k.divergent_barrier), Catch::Contains("deadlock") && Catch::Contains("__syncthreads"));
    CHECK_THAT(fatal_message_of(k.divergent_shuffle),
               Catch::Contains("deadlock") && Catch::Contains("warp operations"));
    CHECK_THAT(fatal_message_of(k.mismatched), Catch::Contains("different warp operations"));
  }
}

namespace {

// C = A B (f32) on a backend with barrier `dropped` removed from the kernels; max |C - gold|
// relative to max |gold| (NaN counts as infinite).
double gemm_relative_error(Backend& be, int dropped) {
  const int64_t m = 70, n = 90, k = 50;
  const std::vector<float> a = test::random_vector(static_cast<std::size_t>(m * k), 1),
                           b = test::random_vector(static_cast<std::size_t>(k * n), 2);
  DeviceArray<float> da(be, a.size()), db(be, b.size()), dc(be, static_cast<std::size_t>(m * n));
  da.upload(a.data());
  db.upload(b.data());
  GemmArgs g;
  g.a = da.view({m, k});
  g.b = db.view({k, n});
  g.c = dc.view({m, n});
  rw::simt::emu::drop_barrier_for_test(dropped);
  be.gemm(g, be.default_stream());
  be.synchronize();
  rw::simt::emu::drop_barrier_for_test(0);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  dc.download(c.data());
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double gold = 0;
      for (int64_t p = 0; p < k; ++p) gold += double(a[i * k + p]) * double(b[p * n + j]);
      const double e = std::fabs(c[i * n + j] - gold);
      worst = std::isnan(e) ? INFINITY : std::max(worst, e);
      scale = std::max(scale, std::fabs(gold));
    }
  return worst / scale;
}

double sum_squares_relative_error(Backend& be, int dropped) {
  const int64_t n = 20000;
  const std::vector<float> x = test::random_vector(static_cast<std::size_t>(n), 3);
  DeviceArray<float> dx(be, x.size());
  DeviceArray<double> result(be, 1);
  dx.upload(x.data());
  be.fill(FillArgs{result.view({1}), 0.0}, be.default_stream());
  rw::simt::emu::drop_barrier_for_test(dropped);
  be.sum_squares(SumSquaresArgs{{dx.view({n}), result.view({1})}}, be.default_stream());
  be.synchronize();
  rw::simt::emu::drop_barrier_for_test(0);
  double got = 0, gold = 0;
  result.download(&got);
  for (float v : x) gold += double(v) * double(v);
  return std::isnan(got) ? INFINITY : std::fabs(got - gold) / gold;
}

// A "same" 3x3 conv2d (f32; vision.cu: 9 input channels = two chunks, 11 x 10 outputs = four
// tiles, 17 output channels = two channel tiles) with barrier `dropped` removed; max |y - gold|
// relative to max |gold|.
double conv2d_relative_error(Backend& be, int dropped) {
  const int64_t cin = 9, h = 11, w = 10, cout = 17;
  const std::vector<float> x = test::random_vector(static_cast<std::size_t>(cin * h * w), 4),
                           wt = test::random_vector(static_cast<std::size_t>(cout * cin * 9), 5);
  DeviceArray<float> dx(be, x.size()), dw(be, wt.size()), dy(be, static_cast<std::size_t>(cout * h * w));
  dx.upload(x.data());
  dw.upload(wt.data());
  Conv2dArgs a;
  a.x = dx.view({1, cin, h, w});
  a.weight = dw.view({cout, cin, 3, 3});
  a.y = dy.view({1, cout, h, w});
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
  rw::simt::emu::drop_barrier_for_test(dropped);
  be.conv2d(a, be.default_stream());
  be.synchronize();
  rw::simt::emu::drop_barrier_for_test(0);
  std::vector<float> y(dy.size());
  dy.download(y.data());
  double worst = 0, scale = 0;
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        double gold = 0;
        for (int64_t ci = 0; ci < cin; ++ci)
          for (int64_t p = 0; p < 3; ++p)
            for (int64_t q = 0; q < 3; ++q) {
              const int64_t r = i + p - 1, c = j + q - 1;
              if (r >= 0 && r < h && c >= 0 && c < w)
                gold += double(wt[((co * cin + ci) * 3 + p) * 3 + q]) * double(x[(ci * h + r) * w + c]);
            }
        const double e = std::fabs(y[(co * h + i) * w + j] - gold);
        worst = std::isnan(e) ? INFINITY : std::max(worst, e);
        scale = std::max(scale, std::fabs(gold));
      }
  return worst / scale;
}

// vq_nearest (f32, 300 vectors of 70 dimensions, 37 codes) with barrier `dropped` removed: how
// many codes differ from the cpu backend's.
int vq_nearest_mismatches(Backend& be, int dropped) {
  const int64_t dim = 70, pixels = 300, codes = 37;
  const std::vector<float> z = test::random_vector(static_cast<std::size_t>(dim * pixels), 6),
                           cb = test::random_vector(static_cast<std::size_t>(codes * dim), 7);
  auto run = [&](Backend& b, int drop) {
    DeviceArray<float> dz(b, z.size()), dcb(b, cb.size());
    DeviceArray<int32_t> di(b, static_cast<std::size_t>(pixels));
    dz.upload(z.data());
    dcb.upload(cb.data());
    VqNearestArgs a;
    a.z = dz.view({1, dim, 1, pixels});
    a.codebook = dcb.view({codes, dim});
    a.indices = di.view({1, 1, pixels});
    rw::simt::emu::drop_barrier_for_test(drop);
    b.vq_nearest(a, b.default_stream());
    b.synchronize();
    rw::simt::emu::drop_barrier_for_test(0);
    std::vector<int32_t> idx(di.size());
    di.download(idx.data());
    return idx;
  };
  auto cpu = create_backend("cpu");
  const std::vector<int32_t> got = run(be, dropped), gold = run(*cpu, 0);
  int wrong = 0;
  for (std::size_t t = 0; t < got.size(); ++t) wrong += got[t] != gold[t];
  return wrong;
}

}  // namespace

TEST_CASE("dropping one named barrier of the VQGAN kernels gives a wrong answer", "[simt][vision]") {
  for (const char* name : {"cuda-emu", "hip-emu"}) {
    INFO(name);
    auto be = create_backend(name);
    // fp32 accumulation of 81 products of magnitude <= 1: gamma_83 ~ 5e-6 relative to the largest
    // |y| is a generous bound (style.md item 6).
    CHECK(conv2d_relative_error(*be, 0) < 1e-5);
    CHECK(conv2d_relative_error(*be, gpu::kBarrierConvTileLoaded) > 1e-3);
    CHECK(conv2d_relative_error(*be, gpu::kBarrierConvTileConsumed) > 1e-3);
    // Random data: no two codes within fp32 rounding of each other for any vector, so the fp32
    // search agrees with the cpu's fp64 one everywhere.
    CHECK(vq_nearest_mismatches(*be, 0) == 0);
    CHECK(vq_nearest_mismatches(*be, gpu::kBarrierVqTileLoaded) > 10);
  }
}

TEST_CASE("dropping one named barrier of the GEMM or reduction kernels gives a wrong answer", "[simt]") {
  for (const char* name : {"cuda-emu", "hip-emu"}) {
    INFO(name);
    auto be = create_backend(name);
    // With every barrier: fp32 accumulation over k = 50 terms of magnitude <= 1: gamma_50 ~ 3e-6
    // relative to the largest |C| is a generous bound (style.md item 6).
    CHECK(gemm_relative_error(*be, 0) < 1e-5);
    CHECK(gemm_relative_error(*be, gpu::kBarrierGemmTileLoaded) > 1e-3);
    CHECK(gemm_relative_error(*be, gpu::kBarrierGemmTileConsumed) > 1e-3);
    // fp64 partial sums: 1e-12 relative is far above their rounding.
    CHECK(sum_squares_relative_error(*be, 0) < 1e-12);
    CHECK(sum_squares_relative_error(*be, gpu::kBarrierReduceScratch) > 1e-6);
  }
}

RW_DECLARE_MMA_TEST(emu_w32)
RW_DECLARE_MMA_TEST(emu_w64)

TEST_CASE("the matrix-core tile wrapper follows the documented fragment layouts (m16n8k16, MFMA 16x16x16)",
          "[simt][mma]") {
  const rw::test::mma::Result w32 = gpu::emu_w32::run_mma_test(7, false), w64 = gpu::emu_w64::run_mma_test(7, false);
  {
    INFO("warp 32: mma.sync m16n8k16");
    rw::test::mma::check(w32, 32);
  }
  {
    INFO("warp 64: MFMA 16x16x16");
    rw::test::mma::check(w64, 64);
  }
  // A kernel that loads A against the layout (row and column swapped) gets a wrong product.
  CHECK(rw::test::mma::worst_error_ratio(gpu::emu_w32::run_mma_test(7, true)) > 100);
  CHECK(rw::test::mma::worst_error_ratio(gpu::emu_w64::run_mma_test(7, true)) > 100);
}

namespace {

// The weight-gradient and norm kernels' outputs as bytes: embedding_bwd (repeated tokens),
// rmsnorm_bwd (dx, dw), cross_entropy (loss, dlogits) and sum_squares, all f32.
std::vector<unsigned char> reduction_outputs(Backend& be) {
  const int64_t vocab = 11, hidden = 96, n = 300, rows = 150, cols = 70;
  std::vector<int32_t> tokens(static_cast<std::size_t>(n));
  for (int64_t t = 0; t < n; ++t) tokens[t] = static_cast<int32_t>((t * 7 + t / 5) % vocab);
  const auto dout = test::random_vector(static_cast<std::size_t>(n * hidden), 31);
  const auto x = test::random_vector(static_cast<std::size_t>(rows * cols), 32);
  const auto w = test::random_vector(static_cast<std::size_t>(cols), 33);
  const auto dy = test::random_vector(static_cast<std::size_t>(rows * cols), 34);
  std::vector<float> inv(static_cast<std::size_t>(rows), 0.9f);
  std::vector<float> weights(static_cast<std::size_t>(rows), 1.f);
  std::vector<int32_t> targets(static_cast<std::size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>(r % cols);
  DeviceArray<int32_t> d_tokens(be, tokens.size()), d_targets(be, targets.size());
  DeviceArray<float> d_dout(be, dout.size()), d_table(be, static_cast<std::size_t>(vocab * hidden)), d_x(be, x.size()),
      d_w(be, w.size()), d_dy(be, dy.size()), d_inv(be, inv.size()), d_dx(be, x.size()), d_dw(be, w.size()),
      d_weights(be, weights.size()), d_dlogits(be, x.size());
  DeviceArray<double> d_loss(be, 1), d_sq(be, 1);
  d_tokens.upload(tokens.data());
  d_targets.upload(targets.data());
  d_dout.upload(dout.data());
  d_x.upload(x.data());
  d_w.upload(w.data());
  d_dy.upload(dy.data());
  d_inv.upload(inv.data());
  d_weights.upload(weights.data());
  Stream& s = be.default_stream();
  be.fill(FillArgs{d_table.view({vocab * hidden}), 0.25}, s);
  be.fill(FillArgs{d_dw.view({cols}), 0.5}, s);
  be.fill(FillArgs{d_loss.view({1}), 0.0}, s);
  be.fill(FillArgs{d_sq.view({1}), 0.0}, s);
  be.embedding_bwd(EmbeddingBwdArgs{d_tokens.view({n}), d_dout.view({n, hidden}), d_table.view({vocab, hidden})}, s);
  RmsNormBwdArgs nb;
  nb.x = d_x.view({rows, cols});
  nb.w = d_w.view({cols});
  nb.inv_rms = d_inv.view({rows});
  nb.dy = d_dy.view({rows, cols});
  nb.dx = d_dx.view({rows, cols});
  nb.dw = d_dw.view({cols});
  be.rmsnorm_bwd(nb, s);
  CrossEntropyArgs ce;
  ce.logits = d_x.view({rows, cols});
  ce.targets = d_targets.view({rows});
  ce.weights = d_weights.view({rows});
  ce.dlogits = d_dlogits.view({rows, cols});
  ce.loss_sum = d_loss.view({1});
  be.cross_entropy(ce, s);
  be.sum_squares(SumSquaresArgs{{d_dout.view({n * hidden}), d_sq.view({1})}}, s);
  be.synchronize();
  std::vector<unsigned char> bytes;
  auto append = [&](const auto& array) {
    std::vector<unsigned char> b(array.n_bytes());
    be.copy_to_host(b.data(), array.data(), b.size());
    bytes.insert(bytes.end(), b.begin(), b.end());
  };
  append(d_table);
  append(d_dx);
  append(d_dw);
  append(d_dlogits);
  append(d_loss);
  append(d_sq);
  return bytes;
}

std::vector<float> embedding_table_after_backward(Backend& be) {
  const std::vector<unsigned char> all = reduction_outputs(be);
  std::vector<float> table(11 * 96);
  std::memcpy(table.data(), all.data(), table.size() * sizeof(float));
  return table;
}

}  // namespace

TEST_CASE("the reductions are the same bits whatever the schedule (no float atomics)", "[simt]") {
  const uint64_t seed = rw::simt::emu::schedule_seed();
  for (const char* name : {"cuda-emu", "hip-emu"}) {
    INFO(name);
    auto be = create_backend(name);
    rw::simt::emu::set_schedule_seed(3);
    const std::vector<unsigned char> first = reduction_outputs(*be);
    rw::simt::emu::set_schedule_seed(977);
    const std::vector<unsigned char> second = reduction_outputs(*be);
    CHECK(first == second);
  }
  rw::simt::emu::set_schedule_seed(seed);
  // embedding_bwd adds in token order in fp32, as the CPU does: the same bits as the cpu backend.
  auto cpu = create_backend("cpu");
  auto emu = create_backend("cuda-emu");
  CHECK(embedding_table_after_backward(*cpu) == embedding_table_after_backward(*emu));
}
