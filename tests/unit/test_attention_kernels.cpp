// test_attention_kernels.cpp: every backend's attention tile kernels against the fp64
// reference, with the tolerance rule of tests/test_support.h.
//
// A case is a sequence of n tokens (one document, or packed documents with positions that
// restart) whose n queries meet its keys in two kernel calls (two "ring steps", key sets A and
// B), so the (O, lse) merge is exercised. Keys are in order (tiles skipped, full and masked all
// occur) or shuffled (every tile masked element by element). With `subset` only A is given, so
// some rows see no key at all (lse -inf, out 0, zero gradient); so do padding tokens (segment
// id -1) in the `padded` cases. Shapes are deliberately not
// multiples of the block sizes.
#include <catch2/catch.hpp>

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "device/cpu/cpu_backend.h"
#include "device/cpu/fused_tiles.h"
#include "tests/test_support.h"

using namespace rw;
using namespace rw::test;

namespace {

struct KernelCase {
  const char* name;
  int batch, n, heads, kv_heads, head_dim, block_q, block_k;
  bool causal, packed, shuffle, subset;
  bool padded = false;  // some tokens are padding (segment -1): they see no key and are not seen
};

// Gathers rows `idx` of a [batch, n, heads, d] tensor (or [batch, n] when width == 1).
template <class T>
std::vector<T> gather_tokens(const std::vector<T>& x, int batch, int n, int width, const std::vector<int>& idx) {
  std::vector<T> out(static_cast<std::size_t>(batch) * idx.size() * width);
  for (int b = 0; b < batch; ++b)
    for (std::size_t i = 0; i < idx.size(); ++i)
      std::copy_n(&x[(static_cast<std::size_t>(b) * n + idx[i]) * width], width,
                  &out[(static_cast<std::size_t>(b) * idx.size() + i) * width]);
  return out;
}

void run_case(const KernelCase& c, device::Backend& backend) {
  INFO("backend " << backend.name() << ", case " << c.name);
  const int qw = c.heads * c.head_dim, kw = c.kv_heads * c.head_dim;
  auto q = random_vector(static_cast<std::size_t>(c.batch) * c.n * qw, 11);
  auto k_all = random_vector(static_cast<std::size_t>(c.batch) * c.n * kw, 12);
  auto v_all = random_vector(static_cast<std::size_t>(c.batch) * c.n * kw, 13);
  auto dout = random_vector(q.size(), 14);
  std::vector<int32_t> seg, pos;
  if (c.packed) packed_documents(c.batch, c.n, 13, 15, seg, pos);
  else single_document(c.batch, c.n, seg, pos);
  if (c.padded)  // scattered padding tokens and a padded tail of 5
    for (int i = 0; i < c.batch * c.n; ++i)
      if (i % 9 == 4 || i % c.n >= c.n - 5) seg[i] = -1;

  // Key order and the split into steps A and B.
  std::vector<int> order(c.n);
  std::iota(order.begin(), order.end(), 0);
  if (c.shuffle) {
    Rng rng(16);
    for (int i = c.n - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  }
  const int n_a = c.n * 3 / 7 + 1;
  std::vector<int> idx_a(order.begin(), order.begin() + n_a), idx_b(order.begin() + n_a, order.end());
  if (c.subset) idx_b.clear();
  std::vector<int> idx_all = idx_a;
  idx_all.insert(idx_all.end(), idx_b.begin(), idx_b.end());

  auto k = gather_tokens(k_all, c.batch, c.n, kw, idx_all);
  auto v = gather_tokens(v_all, c.batch, c.n, kw, idx_all);
  auto k_pos = gather_tokens(pos, c.batch, c.n, 1, idx_all), k_seg = gather_tokens(seg, c.batch, c.n, 1, idx_all);
  const int n_k = static_cast<int>(idx_all.size());

  device::AttnShape full_shape{c.batch, c.n, n_k, c.heads, c.kv_heads, c.head_dim};
  device::AttnMaskArgs full_mask{pos.data(), seg.data(), k_pos.data(), k_seg.data(), c.causal};
  FullAttention<double, double> gold(full_shape, full_mask, q, k, v, &dout);
  FullAttention<float, float> naive(full_shape, full_mask, q, k, v, &dout);

  // Device copies, and the two steps.
  struct Step {
    device::DeviceArray<float> k, v;
    device::DeviceArray<int32_t> pos, seg;
    int n_k;
  };
  auto make_step = [&](const std::vector<int>& idx) {
    Step s{device::DeviceArray<float>(backend, static_cast<std::size_t>(c.batch) * idx.size() * kw),
           device::DeviceArray<float>(backend, static_cast<std::size_t>(c.batch) * idx.size() * kw),
           device::DeviceArray<int32_t>(backend, static_cast<std::size_t>(c.batch) * idx.size()),
           device::DeviceArray<int32_t>(backend, static_cast<std::size_t>(c.batch) * idx.size()),
           static_cast<int>(idx.size())};
    if (idx.empty()) return s;
    s.k.upload(gather_tokens(k_all, c.batch, c.n, kw, idx).data());
    s.v.upload(gather_tokens(v_all, c.batch, c.n, kw, idx).data());
    s.pos.upload(gather_tokens(pos, c.batch, c.n, 1, idx).data());
    s.seg.upload(gather_tokens(seg, c.batch, c.n, 1, idx).data());
    return s;
  };
  std::vector<Step> steps;
  steps.push_back(make_step(idx_a));
  if (!idx_b.empty()) steps.push_back(make_step(idx_b));

  device::DeviceArray<float> dq_(backend, q.size()), dout_d(backend, q.size()), out_d(backend, q.size()),
      lse_d(backend, gold.lse.size()), delta_d(backend, gold.lse.size()), dq_d(backend, q.size());
  device::DeviceArray<int32_t> qpos_d(backend, pos.size()), qseg_d(backend, seg.size());
  qpos_d.upload(pos.data());
  qseg_d.upload(seg.data());
  dq_.upload(q.data());
  dout_d.upload(dout.data());
  backend.fill(out_d.data(), out_d.size(), 0.f);
  backend.fill(lse_d.data(), lse_d.size(), -std::numeric_limits<float>::infinity());

  auto problem_for = [&](const Step& s) {
    return device::AttnProblem{{c.batch, c.n, s.n_k, c.heads, c.kv_heads, c.head_dim}, c.causal,
                               {c.block_q, c.block_k}, device::DType::f32};
  };
  const device::AttnQueries queries{dq_.data(), qpos_d.data(), qseg_d.data()};
  for (Step& s : steps)
    backend.attn_fwd_step(device::make_attn_fwd_args(problem_for(s), queries,
                                                     {s.k.data(), s.v.data(), s.pos.data(), s.seg.data()},
                                                     out_d.data(), lse_d.data()),
                          {});
  backend.synchronize({});
  std::vector<float> out(q.size()), lse(gold.lse.size());
  out_d.download(out.data());
  lse_d.download(lse.data());
  CHECK(max_abs_error(out, gold.out) <= tolerance(naive.out, gold.out));
  CHECK(max_abs_error(lse, gold.lse) <= tolerance(naive.lse, gold.lse));

  // Backward from the kernel's own forward, two steps, dK/dV per step.
  device::AttnShape row_shape{c.batch, c.n, c.n, c.heads, c.kv_heads, c.head_dim};
  backend.attn_row_dot(row_shape, out_d.data(), dout_d.data(), delta_d.data());
  backend.fill(dq_d.data(), dq_d.size(), 0.f);
  std::vector<float> dk, dv;
  for (Step& s : steps) {
    device::DeviceArray<float> dk_d(backend, s.k.size()), dv_d(backend, s.v.size());
    backend.fill(dk_d.data(), dk_d.size(), 0.f);
    backend.fill(dv_d.data(), dv_d.size(), 0.f);
    backend.attn_bwd_step(device::make_attn_bwd_args(problem_for(s), queries,
                                                     {s.k.data(), s.v.data(), s.pos.data(), s.seg.data()},
                                                     dout_d.data(), lse_d.data(), delta_d.data(), dq_d.data(),
                                                     dk_d.data(), dv_d.data()),
                          {});
    backend.synchronize({});
    std::vector<float> dk_s(dk_d.size()), dv_s(dv_d.size());
    dk_d.download(dk_s.data());
    dv_d.download(dv_s.data());
    // Steps hold consecutive key rows per batch: re-interleave into [batch, n_k, kv, d].
    dk.resize(k.size());
    dv.resize(v.size());
    const int first = &s == &steps[0] ? 0 : static_cast<int>(idx_a.size());
    for (int b = 0; b < c.batch; ++b)
      for (int i = 0; i < s.n_k; ++i)
        for (int x = 0; x < kw; ++x) {
          dk[(static_cast<std::size_t>(b) * n_k + first + i) * kw + x] = dk_s[(static_cast<std::size_t>(b) * s.n_k + i) * kw + x];
          dv[(static_cast<std::size_t>(b) * n_k + first + i) * kw + x] = dv_s[(static_cast<std::size_t>(b) * s.n_k + i) * kw + x];
        }
  }
  std::vector<float> dq(q.size());
  dq_d.download(dq.data());
  CHECK(max_abs_error(dq, gold.dq) <= tolerance(naive.dq, gold.dq));
  CHECK(max_abs_error(dk, gold.dk) <= tolerance(naive.dk, gold.dk));
  CHECK(max_abs_error(dv, gold.dv) <= tolerance(naive.dv, gold.dv));
}

const KernelCase kCases[] = {
    // name                      b   n  h kv  d  bq bk causal packed shuffle subset
    {"full, MHA",                2, 70, 4, 4, 16, 16, 16, false, false, false, false},
    {"causal, MHA",              2, 70, 4, 4, 16, 16, 8,  true,  false, false, false},
    {"causal, GQA 4:2",          1, 93, 4, 2, 32, 8,  16, true,  false, false, false},
    {"causal, MQA 4:1",          2, 64, 4, 1, 16, 16, 16, true,  false, false, false},
    {"packed causal",            2, 90, 4, 2, 16, 8,  8,  true,  true,  false, false},
    {"packed full",              2, 90, 2, 2, 16, 16, 8,  false, true,  false, false},
    {"packed causal shuffled",   2, 77, 4, 2, 16, 16, 16, true,  true,  true,  false},
    {"causal shuffled",          1, 77, 2, 1, 32, 8,  16, true,  false, true,  false},
    {"packed subset (empty rows)", 2, 90, 2, 1, 16, 8, 8, true,  true,  false, true},
    {"head_dim 64, big blocks",  1, 200, 2, 2, 64, 64, 128, true, false, false, false},
    {"head_dim 128",             1, 130, 2, 1, 128, 32, 32, true, true, false, false},
    // Blocks that are not multiples of the fused kernel's 8-row / 16-key panels; head_dim 48
    // needs a one-vector tail; head_dim 24 is not a multiple of 16 (the fused kernel declines).
    {"GQA, odd blocks, head_dim 48", 2, 101, 4, 2, 48, 12, 40, true, false, false, false},
    {"packed, odd blocks",       1, 83, 2, 2, 32, 20, 24, true,  true,  false, false},
    {"head_dim 24",              1, 60, 2, 1, 24, 16, 16, true,  true,  false, false},
    // Padding tokens (negative segment ids): rows that see no key in any step.
    {"packed causal, padding",   2, 90, 4, 2, 16, 8,  8,  true,  true,  false, false, true},
    {"full shuffled, padding, odd blocks", 1, 83, 2, 2, 32, 20, 24, false, false, true, false, true},
};

}  // namespace

// These cases hand the kernels host arrays: the backends whose memory is host memory (cpu,
// cpu-reference). sim-gpu and the GPU backends run the same kernels on device memory in the
// conformance tests (test_backend_conformance.cpp).
TEST_CASE("attention kernels of every backend match the fp64 reference", "[kernels]") {
  for (const std::string& name : device::backend_names()) {
    auto backend = device::make_backend(name);
    if (!backend->host_accessible_memory()) continue;
    for (const KernelCase& c : kCases) run_case(c, *backend);
  }
}

TEST_CASE("merge and row_dot match the reference", "[kernels]") {
  const device::AttnShape s{2, 33, 33, 4, 2, 16};
  const std::size_t n_out = static_cast<std::size_t>(s.batch) * s.n_q * s.heads * s.head_dim;
  const std::size_t n_rows = static_cast<std::size_t>(s.batch) * s.heads * s.n_q;
  auto out_a = random_vector(n_out, 1), out_b = random_vector(n_out, 2), dout = random_vector(n_out, 3);
  auto lse_a = random_vector(n_rows, 4, 5.f), lse_b = random_vector(n_rows, 5, 5.f);
  const float inf = std::numeric_limits<float>::infinity();
  lse_a[0] = -inf;  // one side empty
  lse_b[1] = -inf;
  lse_a[2] = lse_b[2] = -inf;  // both empty: stays (out_a, -inf)
  std::vector<double> gold_out = to<double>(out_a), gold_lse = to<double>(lse_a);
  rw::device::reference::attn_merge<double, double>(s, gold_out.data(), gold_lse.data(), to<double>(out_b).data(),
                                                    to<double>(lse_b).data());
  std::vector<float> naive_out = out_a, naive_lse = lse_a;
  rw::device::reference::attn_merge<float, float>(s, naive_out.data(), naive_lse.data(), out_b.data(), lse_b.data());
  std::vector<double> gold_delta(n_rows);
  rw::device::reference::attn_row_dot<double, double>(s, to<double>(out_a).data(), to<double>(dout).data(),
                                                      gold_delta.data());
  std::vector<float> naive_delta(n_rows);
  rw::device::reference::attn_row_dot<float, float>(s, out_a.data(), dout.data(), naive_delta.data());
  for (const std::string& name : device::backend_names()) {
    INFO("backend " << name);
    auto backend = device::make_backend(name);
    if (!backend->host_accessible_memory()) continue;  // host arrays below (see above)
    std::vector<float> o = out_a, l = lse_a, delta(n_rows);
    backend->attn_row_dot(s, out_a.data(), dout.data(), delta.data());  // cpu memory is host memory
    backend->attn_merge(s, o.data(), l.data(), out_b.data(), lse_b.data());
    CHECK(max_abs_error(o, gold_out) <= tolerance(naive_out, gold_out));
    CHECK(max_abs_error(l, gold_lse) <= tolerance(naive_lse, gold_lse));
    CHECK(max_abs_error(delta, gold_delta) <= tolerance(naive_delta, gold_delta));
    CHECK(l[2] == -inf);
  }
}

// The CPU backend's forward kernels, each forced: the fused AVX-512 one (where this CPU has
// AVX-512), the same fused kernel with portable tiles (every CPU: its block and panel
// bookkeeping is checked everywhere) and the OpenBLAS one that CPUs without AVX-512 run. The
// test above covers whichever kernel the automatic choice picks here.
TEST_CASE("every CPU forward kernel matches the fp64 reference", "[kernels]") {
  using device::cpu::FwdKernel;
  for (FwdKernel kernel : {FwdKernel::fused_avx512, FwdKernel::fused_portable, FwdKernel::blas}) {
    INFO("forward kernel " << device::cpu::fwd_kernel_name(kernel));
    device::CpuBackend backend(kernel);
    int n_run = 0;
    for (const KernelCase& c : kCases) {
      if (kernel == FwdKernel::fused_avx512 && !device::cpu::fused_fwd_kernel_available(c.head_dim)) continue;
      if (kernel == FwdKernel::fused_portable && c.head_dim % 16 != 0) continue;
      run_case(c, backend);
      ++n_run;
    }
    if (kernel == FwdKernel::fused_avx512 && n_run == 0)
      WARN("no AVX-512F on this CPU: the fused forward kernel was not tested");
    else
      CHECK(n_run > 0);
  }
}

TEST_CASE("forward kernel choice: automatic, forced, and the environment override", "[kernels]") {
  using device::cpu::FwdKernel;
  using device::cpu::resolve_fwd_kernel;
  const char* saved = std::getenv("RINGWORLD_ATTN_FWD_KERNEL");
  const std::string saved_value = saved ? saved : "";
  unsetenv("RINGWORLD_ATTN_FWD_KERNEL");
  const bool fused_here = device::cpu::fused_fwd_kernel_available(64);
  CHECK(resolve_fwd_kernel(FwdKernel::automatic, 64) == (fused_here ? FwdKernel::fused_avx512 : FwdKernel::blas));
  CHECK(resolve_fwd_kernel(FwdKernel::automatic, 24) == FwdKernel::blas);  // not a multiple of 16
  CHECK(resolve_fwd_kernel(FwdKernel::blas, 64) == FwdKernel::blas);
  setenv("RINGWORLD_ATTN_FWD_KERNEL", "blas", 1);
  CHECK(resolve_fwd_kernel(FwdKernel::automatic, 64) == FwdKernel::blas);
  setenv("RINGWORLD_ATTN_FWD_KERNEL", "fused-portable", 1);
  CHECK(resolve_fwd_kernel(FwdKernel::automatic, 64) == FwdKernel::fused_portable);
  CHECK(resolve_fwd_kernel(FwdKernel::fused_portable, 32) == FwdKernel::fused_portable);
  setenv("RINGWORLD_ATTN_FWD_KERNEL", "auto", 1);
  CHECK(resolve_fwd_kernel(FwdKernel::automatic, 64) == (fused_here ? FwdKernel::fused_avx512 : FwdKernel::blas));
  if (saved) setenv("RINGWORLD_ATTN_FWD_KERNEL", saved_value.c_str(), 1);
  else unsetenv("RINGWORLD_ATTN_FWD_KERNEL");
}

// The forward tasks write disjoint rows and do their arithmetic in a fixed order whichever
// thread runs them, so the bits must not change between runs or with the thread count.
TEST_CASE("fast forward kernels are bit-for-bit repeatable", "[kernels]") {
  using device::cpu::FwdKernel;
  const int batch = 1, n = 600, heads = 4, kv_heads = 2, d = 64;
  auto q = random_vector(static_cast<std::size_t>(batch) * n * heads * d, 21);
  auto k = random_vector(static_cast<std::size_t>(batch) * n * kv_heads * d, 22);
  auto v = random_vector(k.size(), 23);
  std::vector<int32_t> seg, pos;
  packed_documents(batch, n, 150, 250, seg, pos);
  auto run = [&](FwdKernel kernel, int n_threads) {
    std::vector<float> out(q.size(), 0.f), lse(static_cast<std::size_t>(batch) * heads * n,
                                                -std::numeric_limits<float>::infinity());
    const device::AttnFwdStepArgs a = device::make_attn_fwd_args(
        {{batch, n, n, heads, kv_heads, d}, true, {64, 64}, device::DType::f32}, {q.data(), pos.data(), seg.data()},
        {k.data(), v.data(), pos.data(), seg.data()}, out.data(), lse.data());
    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(n_threads);
    device::cpu::attn_fwd_step_fast(a, {}, kernel);
    omp_set_num_threads(saved_threads);
    out.insert(out.end(), lse.begin(), lse.end());
    return out;
  };
  for (FwdKernel kernel : {FwdKernel::fused_avx512, FwdKernel::fused_portable, FwdKernel::blas}) {
    if (kernel == FwdKernel::fused_avx512 && !device::cpu::fused_fwd_kernel_available(d)) continue;
    INFO("forward kernel " << device::cpu::fwd_kernel_name(kernel));
    const auto first = run(kernel, 2);
    const auto second = run(kernel, 2);
    CHECK(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)) == 0);
    if (kernel != FwdKernel::blas) {  // the fused kernel has no per-thread state at all: any thread count
      const auto one_thread = run(kernel, 1);
      CHECK(std::memcmp(first.data(), one_thread.data(), first.size() * sizeof(float)) == 0);
    }
  }
}

namespace {

// n elements that end exactly where an inaccessible page begins: a kernel reading even one
// element past the end faults (SIGSEGV, which Catch2 reports as a failure), with or without
// AddressSanitizer.
template <class T>
class GuardedArray {
 public:
  explicit GuardedArray(const std::vector<T>& values) : n_(values.size()) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    data_bytes_ = (n_ * sizeof(T) + page - 1) / page * page;
    map_bytes_ = data_bytes_ + page;
    void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<char*>(p);
    REQUIRE(mprotect(base_ + data_bytes_, page, PROT_NONE) == 0);
    std::copy(values.begin(), values.end(), data());
  }
  GuardedArray(const GuardedArray&) = delete;
  GuardedArray& operator=(const GuardedArray&) = delete;
  ~GuardedArray() { munmap(base_, map_bytes_); }
  T* data() { return reinterpret_cast<T*>(base_ + data_bytes_) - n_; }
  std::vector<T> values() { return std::vector<T>(data(), data() + n_); }

 private:
  std::size_t n_, data_bytes_ = 0, map_bytes_ = 0;
  char* base_ = nullptr;
};

}  // namespace

// The last query block is ragged (101 = 8 x 12 + 5 rows: the block's second 8-row panel is
// all padding) and so is the last key block (101 = 2 x 40 + 21). Every input and output array
// ends at an inaccessible page, so a read of positions or segments past the last token faults;
// the result must also match the fp64 reference (tolerance rule of test_support.h).
TEST_CASE("the fused forward stays inside its arrays when the last blocks are ragged", "[kernels]") {
  const int batch = 2, n = 101, heads = 4, kv_heads = 2, d = 16;
  const auto q = random_vector(static_cast<std::size_t>(batch) * n * heads * d, 31);
  const auto k = random_vector(static_cast<std::size_t>(batch) * n * kv_heads * d, 32);
  const auto v = random_vector(k.size(), 33);
  std::vector<int32_t> seg, pos;
  packed_documents(batch, n, 30, 34, seg, pos);
  const device::AttnShape shape{batch, n, n, heads, kv_heads, d};
  const device::AttnMaskArgs mask{pos.data(), seg.data(), pos.data(), seg.data(), true};
  FullAttention<double, double> gold(shape, mask, q, k, v, nullptr);
  FullAttention<float, float> naive(shape, mask, q, k, v, nullptr);

  std::vector<const device::cpu::FusedTiles*> tables = {&device::cpu::portable_fused_tiles()};
  if (device::cpu::fused_fwd_kernel_available(d)) tables.push_back(&device::cpu::avx512_fused_tiles());
  for (const device::cpu::FusedTiles* tiles : tables) {
    INFO("fused tiles " << tiles->name);
    GuardedArray<float> q_g(q), k_g(k), v_g(v), out_g(std::vector<float>(q.size(), 0.f)),
        lse_g(std::vector<float>(gold.lse.size(), -std::numeric_limits<float>::infinity()));
    GuardedArray<int32_t> qpos_g(pos), qseg_g(seg), kpos_g(pos), kseg_g(seg);
    device::AttnFwdStepArgs a;
    a.shape = shape;
    a.mask = {qpos_g.data(), qseg_g.data(), kpos_g.data(), kseg_g.data(), true};
    a.tiling = {12, 40};
    a.scale = 1.f / std::sqrt(static_cast<float>(d));
    a.q = q_g.data();
    a.k = k_g.data();
    a.v = v_g.data();
    a.out = out_g.data();
    a.lse = lse_g.data();
    device::cpu::attn_fwd_step_fused(a, {}, *tiles);
    CHECK(max_abs_error(out_g.values(), gold.out) <= tolerance(naive.out, gold.out));
    CHECK(max_abs_error(lse_g.values(), gold.lse) <= tolerance(naive.lse, gold.lse));
  }
}

// With dynamic teams (OMP_DYNAMIC=true, or OMP_THREAD_LIMIT below OMP_NUM_THREADS) OpenMP may
// give a parallel region fewer threads than omp_get_max_threads() says. Asking for twice the
// CPUs with dynamic adjustment on guarantees a short team (libgomp caps a dynamic team at the
// number of CPUs); the backward must use only the threads it got and still match fp64.
TEST_CASE("the backward kernel is right when OpenMP gives it fewer threads than requested", "[kernels]") {
  const int batch = 1, heads = 2, kv_heads = 1, d = 16, block = 8;
  const int want_threads = 2 * omp_get_num_procs();
  const int n = block * (want_threads + 3);  // key blocks (tasks) enough for every requested thread
  const auto q = random_vector(static_cast<std::size_t>(batch) * n * heads * d, 41);
  const auto k = random_vector(static_cast<std::size_t>(batch) * n * kv_heads * d, 42);
  const auto v = random_vector(k.size(), 43), dout = random_vector(q.size(), 44);
  std::vector<int32_t> seg, pos;
  single_document(batch, n, seg, pos);
  const device::AttnShape shape{batch, n, n, heads, kv_heads, d};
  const device::AttnMaskArgs mask{pos.data(), seg.data(), pos.data(), seg.data(), true};
  FullAttention<double, double> gold(shape, mask, q, k, v, &dout);
  FullAttention<float, float> naive(shape, mask, q, k, v, &dout);

  std::vector<float> lse(gold.lse.begin(), gold.lse.end()), out(gold.out.begin(), gold.out.end()),
      delta(lse.size()), dq(q.size(), 0.f), dk(k.size(), 0.f), dv(v.size(), 0.f);
  device::cpu::attn_row_dot_fast(shape, out.data(), dout.data(), delta.data());
  device::AttnBwdStepArgs a;
  a.shape = shape;
  a.mask = mask;
  a.tiling = {block, block};
  a.scale = 1.f / std::sqrt(static_cast<float>(d));
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.dout = dout.data();
  a.lse = lse.data();
  a.delta = delta.data();
  a.dq = dq.data();
  a.dk = dk.data();
  a.dv = dv.data();
  const int saved_threads = omp_get_max_threads();
  const int saved_dynamic = omp_get_dynamic();
  omp_set_dynamic(1);
  omp_set_num_threads(want_threads);
  device::cpu::attn_bwd_step_fast(a, {});
  omp_set_num_threads(saved_threads);
  omp_set_dynamic(saved_dynamic);
  CHECK(max_abs_error(dq, gold.dq) <= tolerance(naive.dq, gold.dq));
  CHECK(max_abs_error(dk, gold.dk) <= tolerance(naive.dk, gold.dk));
  CHECK(max_abs_error(dv, gold.dv) <= tolerance(naive.dv, gold.dv));
}
