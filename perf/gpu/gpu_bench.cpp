// gpu_bench.cpp: the GPU benchmarks of perf/gpu/check.sh, on any backend of the registry (cuda
// and hip on a GPU; cuda-emu with --quick as the smoke test CI runs here). Links ringworld_device
// only, so it builds on a GPU machine without MPI/HDF5 (perf/gpu/standalone/).
//
//   gemm       C = A B, square (default 8192), bf16 in/out with fp32 accumulation (cuBLAS: the
//              machine's bf16 limit), and fp32
//   attention  one sequence of N tokens (8K, 16K, 32K), head_dim 64/128, heads = hidden / d
//              (hidden 2048, as FlashAttention's benchmarks), causal and not, bf16 and fp32
//              storage: the forward step, and forward + row_dot + backward, by the reference path
//              (attn-ref); and for bf16 the fused kernels (attn-fused: RINGWORLD_GPU_ATTN_FWD=fused and
//              RINGWORLD_GPU_ATTN_BWD=fused, forward and forward + row_dot + fused backward)
//
// FLOPs: GEMM 2 m n k; attention forward 4 n^2 d heads (halved when causal: what an ideal
// kernel computes; a kernel that does not skip masked tiles shows half its speed there), forward
// + backward 3.5 x the forward (FlashAttention-2's convention: backward = 2.5 x forward).
// Time: wall clock over `iters` calls after one warm-up, closed by a synchronize.
//
// Every row is also a correctness check (style.md item 13): sampled outputs against an fp64
// host computation from the stored inputs: GEMM entries; attention output rows (and their lse),
// dq rows, dk and dv rows (the backward's check takes the kernel's lse and delta as given).
// Tolerance basis: the contract's fp32 arithmetic. GEMM: a sum of k terms, gamma_(k+10) on
// sum |terms|, plus one bf16 rounding u_bf16 |value| for a bf16 output. Attention (inputs in
// [-1, 1], so |q.k| scale <= sqrt(d) and |dp|, |delta| <= d): the sums over n keys (softmax
// denominator and P V: 2n roundings), plus the rounding of each score (d + 2 on sqrt(d)) and of
// dp and delta (d + 2 on 2d) that the weights carry: (2n + (d + 2)(sqrt(d) + 2d) + 20) u32 on
// sum |terms|. "wrong" counts sampled values beyond it, err/tol is the worst ratio.
//
// Output: '#' comment lines, a header row, a units row, one row per case (perf/README.md's
// format); --json FILE writes the same rows as a JSON object.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "device/attention_builder.h"
#include "device/backend.h"
#include "perf/gpu/bench_cli.h"
#include "src/common/input_error.h"

using namespace rw;
using namespace rw::device;

namespace {

constexpr double kU32 = 1.0 / (1 << 24);
constexpr double kUbf16 = 1.0 / (1 << 8);

struct Options {
  std::string backend = "cuda";
  bool quick = false;
  std::string json;
  int gemm_n = 8192;
  std::vector<int> tokens = {8192, 16384, 32768};
  std::vector<int> head_dims = {64, 128};
  int hidden = 2048;
  int gemm_iters = 10;
  int attn_iters = 2;
  bool gemm = true, attention = true;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw InputError("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--backend")
      o.backend = value();
    else if (a == "--quick")
      o.quick = true;
    else if (a == "--json")
      o.json = value();
    else if (a == "--gemm-size")
      o.gemm_n = perf::parse_int_list(value()).at(0);
    else if (a == "--tokens")
      o.tokens = perf::parse_int_list(value());
    else if (a == "--head-dims")
      o.head_dims = perf::parse_int_list(value());
    else if (a == "--hidden")
      o.hidden = perf::parse_int_list(value()).at(0);
    else if (a == "--iters")
      o.gemm_iters = o.attn_iters = perf::parse_int_list(value()).at(0);
    else if (a == "--only") {
      const std::string what = value();
      o.gemm = what == "gemm";
      o.attention = what == "attention";
      if (!o.gemm && !o.attention) throw InputError("--only takes gemm or attention");
    } else if (a == "--help") {
      std::printf(
          "gpu_bench [--backend cuda|hip|cuda-emu|...] [--quick] [--json FILE] [--gemm-size N] [--tokens LIST]\n"
          "          [--head-dims LIST] [--hidden H] [--iters N] [--only gemm|attention]\n");
      std::exit(0);
    } else {
      throw InputError("unknown option " + a + " (--help lists them)");
    }
  }
  if (o.quick) {  // the smoke test: tiny shapes, one timed call
    o.gemm_n = 96;
    o.tokens = {80};
    o.head_dims = {16, 64};  // 64: the fused forward's smallest head size
    o.hidden = 128;
    o.gemm_iters = o.attn_iters = 1;
  }
  return o;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// splitmix64 values in [-1, 1).
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  double next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
  }
};

// Host values as stored in `dtype` (the oracle's inputs), and their bytes.
struct HostTensor {
  DType dtype;
  std::vector<float> values;         // the stored values, as fp32
  std::vector<unsigned char> bytes;  // the storage
  HostTensor(DType t, std::size_t n, uint64_t seed, double scale = 1.0)
      : dtype(t), values(n), bytes(n * dtype_size(t)) {
    Rng rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
      const float x = static_cast<float>(rng.next() * scale);
      if (t == DType::bf16) {
        const bf16_t b = bf16_from_float(x);
        values[i] = float_from_bf16(b);
        std::memcpy(&bytes[i * 2], &b, 2);
      } else {
        values[i] = x;
        std::memcpy(&bytes[i * 4], &x, 4);
      }
    }
  }
};

std::vector<float> download(Backend& be, const void* p, std::size_t n, DType t) {
  std::vector<unsigned char> bytes(n * dtype_size(t));
  be.copy_to_host(bytes.data(), p, bytes.size());
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (t == DType::bf16) {
      bf16_t b;
      std::memcpy(&b, &bytes[i * 2], 2);
      out[i] = float_from_bf16(b);
    } else {
      std::memcpy(&out[i], &bytes[i * 4], 4);
    }
  }
  return out;
}

struct Row {
  std::string kind, dtype, pass;
  long tokens = 0;
  int head_dim = 0, heads = 0, causal = 0, iters = 0;
  double ms = 0, tflops = 0;
  long checked = 0, wrong = 0;
  double worst_ratio = 0;  // max err / tolerance over the checked values
};

struct Check {
  long checked = 0, wrong = 0;
  double worst = 0;
  void add(double got, double gold, double tolerance) {
    ++checked;
    const double err = std::fabs(got - gold);
    const double ratio =
        err == 0 ? 0.0 : (std::isfinite(err) ? err / tolerance : std::numeric_limits<double>::infinity());
    if (!(ratio <= 1.0)) ++wrong;
    if (!(ratio <= worst)) worst = ratio;
  }
};

void print_header() {
  std::printf("%-10s %-5s %-8s %7s %5s %6s %7s %5s %10s %9s %7s %6s %8s\n", "kind", "dtype", "pass", "tokens", "d",
              "heads", "causal", "iters", "time", "rate", "checked", "wrong", "err/tol");
  std::printf("%-10s %-5s %-8s %7s %5s %6s %7s %5s %10s %9s %7s %6s %8s\n", "-", "-", "-", "count", "-", "count", "0/1",
              "count", "ms", "TFLOP/s", "count", "count", "ratio");
  std::fflush(stdout);
}

void print_row(const Row& r) {
  std::printf("%-10s %-5s %-8s %7ld %5d %6d %7d %5d %10.3f %9.2f %7ld %6ld %8.3f\n", r.kind.c_str(), r.dtype.c_str(),
              r.pass.c_str(), r.tokens, r.head_dim, r.heads, r.causal, r.iters, r.ms, r.tflops, r.checked, r.wrong,
              r.worst_ratio);
  std::fflush(stdout);
}

// ---- GEMM ----

Row bench_gemm(Backend& be, DType dt, int n, int iters) {
  const std::size_t count = static_cast<std::size_t>(n) * n;
  HostTensor a(dt, count, 11), b(dt, count, 12);
  void* da = be.allocate(a.bytes.size());
  void* db = be.allocate(b.bytes.size());
  void* dc = be.allocate(count * dtype_size(dt));
  be.copy_to_device(da, a.bytes.data(), a.bytes.size());
  be.copy_to_device(db, b.bytes.data(), b.bytes.size());
  GemmArgs g;
  g.a = make_view<const void*>(da, dt, {n, n});
  g.b = make_view<const void*>(db, dt, {n, n});
  g.c = make_view<void*>(dc, dt, {n, n});
  Stream& s = be.default_stream();
  be.gemm(g, s);  // warm-up
  be.synchronize(s);
  const double t0 = now_s();
  for (int i = 0; i < iters; ++i) be.gemm(g, s);
  be.synchronize(s);
  const double seconds = (now_s() - t0) / iters;
  Row r;
  r.kind = "gemm";
  r.dtype = dtype_name(dt);
  r.pass = "C=AB";
  r.tokens = n;
  r.iters = iters;
  r.ms = seconds * 1e3;
  r.tflops = 2.0 * n * double(n) * n / seconds / 1e12;
  // 32 sampled entries against fp64.
  const std::vector<float> c = download(be, dc, count, dt);
  Check check;
  Rng pick(13);
  for (int t = 0; t < 32; ++t) {
    const int i = static_cast<int>((pick.next() + 1) / 2 * n) % n, j = static_cast<int>((pick.next() + 1) / 2 * n) % n;
    double gold = 0, s_abs = 0;
    for (int p = 0; p < n; ++p) {
      const double term =
          double(a.values[static_cast<std::size_t>(i) * n + p]) * b.values[static_cast<std::size_t>(p) * n + j];
      gold += term;
      s_abs += std::fabs(term);
    }
    const double tol = (n + 10) * kU32 * s_abs + (dt == DType::bf16 ? kUbf16 * std::fabs(gold) : 0.0);
    check.add(c[static_cast<std::size_t>(i) * n + j], gold, tol);
  }
  r.checked = check.checked;
  r.wrong = check.wrong;
  r.worst_ratio = check.worst;
  be.release(da);
  be.release(db);
  be.release(dc);
  return r;
}

// ---- attention ----

struct AttnInputs {
  int n_max, heads, d;
  HostTensor q, k, v, dout;  // [n_max, heads, d], the first n tokens of each are a problem of n tokens
  AttnInputs(DType dt, int n_max_, int heads_, int d_)
      : n_max(n_max_),
        heads(heads_),
        d(d_),
        q(dt, static_cast<std::size_t>(n_max_) * heads_ * d_, 21),
        k(dt, static_cast<std::size_t>(n_max_) * heads_ * d_, 22),
        v(dt, static_cast<std::size_t>(n_max_) * heads_ * d_, 23),
        dout(dt, static_cast<std::size_t>(n_max_) * heads_ * d_, 24) {}
};

// fused: `be` runs the fused forward and backward (RINGWORLD_GPU_ATTN_FWD / _BWD=fused), checked
// with the bf16 rounding of P (forward, dV) and dS (dQ, dK) added to the tolerance: u_bf16 on the
// same sums of magnitudes (sum p |v| / l; sum p |dout|; sum p (|dp| + |delta|) scale |k or q|).
std::vector<Row> bench_attention(Backend& be, const AttnInputs& in, int n, bool causal, int iters, bool fused) {
  const DType dt = in.q.dtype;
  const int heads = in.heads, d = in.d;
  const std::size_t elems = static_cast<std::size_t>(n) * heads * d, rows = static_cast<std::size_t>(heads) * n;
  const std::size_t in_bytes = elems * dtype_size(dt);
  void* q = be.allocate(in_bytes);
  void* k = be.allocate(in_bytes);
  void* v = be.allocate(in_bytes);
  void* dout = be.allocate(in_bytes);
  be.copy_to_device(q, in.q.bytes.data(), in_bytes);
  be.copy_to_device(k, in.k.bytes.data(), in_bytes);
  be.copy_to_device(v, in.v.bytes.data(), in_bytes);
  be.copy_to_device(dout, in.dout.bytes.data(), in_bytes);
  std::vector<int32_t> pos(static_cast<std::size_t>(n)), seg(static_cast<std::size_t>(n), 0);
  for (int i = 0; i < n; ++i) pos[i] = i;
  DeviceArray<int32_t> dpos(be, pos.size()), dseg(be, seg.size());
  dpos.upload(pos.data());
  dseg.upload(seg.data());
  DeviceArray<float> out(be, elems), lse(be, rows), delta(be, rows), dq(be, elems), dk(be, elems), dv(be, elems),
      dout32(be, elems);
  {  // row_dot takes fp32 dout
    std::vector<float> host(in.dout.values.begin(), in.dout.values.begin() + static_cast<std::ptrdiff_t>(elems));
    dout32.upload(host.data());
  }
  const AttnShape shape{1, n, n, heads, heads, d};
  const AttnProblem problem = make_attn_problem(be, shape, causal, dt);
  const AttnQueries queries{static_cast<const float*>(q), dpos.data(), dseg.data()};
  const AttnKeys keys{static_cast<const float*>(k), static_cast<const float*>(v), dpos.data(), dseg.data()};
  Stream& s = be.default_stream();
  auto forward = [&] {
    be.fill(FillArgs{out.view({static_cast<int64_t>(elems)}), 0.0}, s);
    be.fill(FillArgs{lse.view({static_cast<int64_t>(rows)}), -std::numeric_limits<double>::infinity()}, s);
    be.attn_fwd_step(make_attn_fwd_args(problem, queries, keys, out.data(), lse.data()), {}, s);
  };
  auto forward_backward = [&] {
    forward();
    be.attn_row_dot(AttnRowDotArgs{shape, out.data(), dout32.data(), delta.data()}, s);
    for (DeviceArray<float>* g : {&dq, &dk, &dv}) be.fill(FillArgs{g->view({static_cast<int64_t>(elems)}), 0.0}, s);
    be.attn_bwd_step(make_attn_bwd_args(problem, queries, keys, static_cast<const float*>(dout), lse.data(),
                                        delta.data(), dq.data(), dk.data(), dv.data()),
                     {}, s);
  };
  const double fwd_flops = 4.0 * n * double(n) * d * heads * (causal ? 0.5 : 1.0);
  std::vector<Row> result;
  for (int pass = 0; pass < 2; ++pass) {
    const std::function<void()> call =
        pass == 0 ? std::function<void()>(forward) : std::function<void()>(forward_backward);
    call();  // warm-up
    be.synchronize(s);
    const double t0 = now_s();
    for (int i = 0; i < iters; ++i) call();
    be.synchronize(s);
    const double seconds = (now_s() - t0) / iters;
    Row r;
    r.kind = fused ? "attn-fused" : "attn-ref";
    r.dtype = dtype_name(dt);
    r.pass = pass == 0 ? "fwd" : "fwd+bwd";
    r.tokens = n;
    r.head_dim = d;
    r.heads = heads;
    r.causal = causal;
    r.iters = iters;
    r.ms = seconds * 1e3;
    r.tflops = (pass == 0 ? fwd_flops : 3.5 * fwd_flops) / seconds / 1e12;
    result.push_back(r);
  }

  // Checks on the last forward (+ backward): sampled rows against fp64.
  const std::vector<float> h_out = download(be, out.data(), elems, DType::f32),
                           h_lse = download(be, lse.data(), rows, DType::f32),
                           h_delta = download(be, delta.data(), rows, DType::f32),
                           h_dq = download(be, dq.data(), elems, DType::f32),
                           h_dk = download(be, dk.data(), elems, DType::f32),
                           h_dv = download(be, dv.data(), elems, DType::f32);
  const double scale = attn_softmax_scale(d);
  auto at = [&](const HostTensor& t, int token, int h, int dd) {
    return double(t.values[(static_cast<std::size_t>(token) * heads + h) * d + dd]);
  };
  auto score = [&](int i, int j, int h) {
    double s_ij = 0;
    for (int dd = 0; dd < d; ++dd) s_ij += at(in.q, i, h, dd) * at(in.k, j, h, dd);
    return s_ij * scale;
  };
  auto visible = [&](int i, int j) { return !causal || j <= i; };
  const double tol_units = (2.0 * n + (d + 2) * (std::sqrt(double(d)) + 2.0 * d) + 20) * kU32;
  const double bwd_units = tol_units + (fused ? kUbf16 : 0.0);
  Check fwd_check, bwd_check;
  const int sample_rows[] = {0, n / 3, (2 * n) / 3, n - 1};
  const int sample_heads[] = {0, heads - 1};
  std::vector<double> p(static_cast<std::size_t>(n)), o(static_cast<std::size_t>(d)),
      o_abs(static_cast<std::size_t>(d));
  for (int h : sample_heads)
    for (int i : sample_rows) {
      // Forward: out row and lse.
      double mx = -INFINITY;
      for (int j = 0; j < n; ++j) mx = visible(i, j) ? std::max(mx, score(i, j, h)) : mx;
      double l = 0;
      for (int j = 0; j < n; ++j) l += p[j] = visible(i, j) ? std::exp(score(i, j, h) - mx) : 0.0;
      std::fill(o.begin(), o.end(), 0.0);
      std::fill(o_abs.begin(), o_abs.end(), 0.0);
      for (int j = 0; j < n; ++j)
        if (p[j] != 0)
          for (int dd = 0; dd < d; ++dd) {
            o[dd] += p[j] / l * at(in.v, j, h, dd);
            o_abs[dd] += p[j] / l * std::fabs(at(in.v, j, h, dd));
          }
      const double row_lse = mx + std::log(l);
      const std::size_t r_index = static_cast<std::size_t>(h) * n + i;
      fwd_check.add(h_lse[r_index], row_lse, tol_units * (std::fabs(mx) + 1));  // lse = max + log l, l >= 1
      for (int dd = 0; dd < d; ++dd)
        fwd_check.add(h_out[(static_cast<std::size_t>(i) * heads + h) * d + dd], o[dd],
                      (tol_units + (fused ? kUbf16 : 0.0)) * o_abs[dd]);
      // Backward: dq row i, from the kernel's lse and delta: dq = scale sum_j p (dp - delta) k_j.
      const double klse = h_lse[r_index], kdelta = h_delta[r_index];
      std::fill(o.begin(), o.end(), 0.0);
      std::fill(o_abs.begin(), o_abs.end(), 0.0);
      for (int j = 0; j < n; ++j) {
        if (!visible(i, j)) continue;
        const double pij = std::exp(score(i, j, h) - klse);
        double dp = 0;
        for (int dd = 0; dd < d; ++dd) dp += at(in.dout, i, h, dd) * at(in.v, j, h, dd);
        const double ds = pij * (dp - kdelta) * scale;
        for (int dd = 0; dd < d; ++dd) {
          o[dd] += ds * at(in.k, j, h, dd);
          o_abs[dd] += std::fabs(pij) * (std::fabs(dp) + std::fabs(kdelta)) * scale * std::fabs(at(in.k, j, h, dd));
        }
      }
      for (int dd = 0; dd < d; ++dd)
        bwd_check.add(h_dq[(static_cast<std::size_t>(i) * heads + h) * d + dd], o[dd], bwd_units * o_abs[dd]);
      // dk and dv of key row j = i: sums over the query rows that see it.
      const int j = i;
      std::vector<double> gk(static_cast<std::size_t>(d), 0.0), gv(static_cast<std::size_t>(d), 0.0),
          sk(static_cast<std::size_t>(d), 0.0), sv(static_cast<std::size_t>(d), 0.0);
      for (int r = 0; r < n; ++r) {
        if (!visible(r, j)) continue;
        const std::size_t rr = static_cast<std::size_t>(h) * n + r;
        const double prj = std::exp(score(r, j, h) - double(h_lse[rr]));
        double dp = 0;
        for (int dd = 0; dd < d; ++dd) dp += at(in.dout, r, h, dd) * at(in.v, j, h, dd);
        const double ds = prj * (dp - double(h_delta[rr])) * scale;
        for (int dd = 0; dd < d; ++dd) {
          gk[dd] += ds * at(in.q, r, h, dd);
          sk[dd] += prj * (std::fabs(dp) + std::fabs(double(h_delta[rr]))) * scale * std::fabs(at(in.q, r, h, dd));
          gv[dd] += prj * at(in.dout, r, h, dd);
          sv[dd] += prj * std::fabs(at(in.dout, r, h, dd));
        }
      }
      for (int dd = 0; dd < d; ++dd) {
        const std::size_t e = (static_cast<std::size_t>(j) * heads + h) * d + dd;
        bwd_check.add(h_dk[e], gk[dd], bwd_units * sk[dd]);
        bwd_check.add(h_dv[e], gv[dd], bwd_units * sv[dd]);
      }
    }
  result[0].checked = fwd_check.checked;
  result[0].wrong = fwd_check.wrong;
  result[0].worst_ratio = fwd_check.worst;
  result[1].checked = fwd_check.checked + bwd_check.checked;
  result[1].wrong = fwd_check.wrong + bwd_check.wrong;
  result[1].worst_ratio = std::max(fwd_check.worst, bwd_check.worst);
  for (void* ptr : {q, k, v, dout}) be.release(ptr);
  return result;
}

std::string json_rows(const Options& o, const std::vector<Row>& rows);

// Writes the rows so far to o.json (atomically), so a run cut short by a time limit still leaves
// what it measured.
void write_json(const Options& o, const std::vector<Row>& rows) { perf::write_text_atomically(o.json, json_rows(o, rows)); }

std::string json_rows(const Options& o, const std::vector<Row>& rows) {
  std::ostringstream js;
  js << "{\n  \"backend\": \"" << o.backend << "\",\n  \"quick\": " << (o.quick ? "true" : "false")
     << ",\n  \"flop_convention\": \"gemm 2mnk; attention fwd 4 n^2 d heads (x0.5 causal), fwd+bwd 3.5x fwd\",\n"
     << "  \"rows\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    js << "    {\"kind\": \"" << r.kind << "\", \"dtype\": \"" << r.dtype << "\", \"pass\": \"" << r.pass
       << "\", \"tokens\": " << r.tokens << ", \"head_dim\": " << r.head_dim << ", \"heads\": " << r.heads
       << ", \"causal\": " << r.causal << ", \"iters\": " << r.iters << ", \"ms\": " << r.ms
       << ", \"tflops\": " << r.tflops << ", \"checked\": " << r.checked << ", \"wrong\": " << r.wrong
       << ", \"err_over_tol\": " << (std::isfinite(r.worst_ratio) ? r.worst_ratio : -1.0) << "}"
       << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  js << "  ]\n}\n";
  return js.str();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const BackendInfo* info = find_backend(o.backend);
    if (!info) throw InputError("unknown backend '" + o.backend + "'");
    if (!info->available()) {
      std::printf("# gpu_bench: backend %s is not available here: %s\n", o.backend.c_str(),
                  info->unavailable_reason ? info->unavailable_reason().c_str() : "(no reason given)");
      return 77;
    }
    auto be = create_backend(o.backend);
    std::unique_ptr<Backend> be_fused;  // the same backend with the fused attention forward and backward
    {
      const char* names[] = {"RINGWORLD_GPU_ATTN_FWD", "RINGWORLD_GPU_ATTN_BWD"};
      std::string saved[2];
      bool had[2];
      for (int i = 0; i < 2; ++i) {
        const char* old = std::getenv(names[i]);
        had[i] = old != nullptr;
        saved[i] = old ? old : "";
        setenv(names[i], "fused", 1);
      }
      if (o.backend == "cuda" || o.backend == "hip" || o.backend == "cuda-emu" || o.backend == "hip-emu")
        be_fused = create_backend(o.backend);
      for (int i = 0; i < 2; ++i)
        if (had[i])
          setenv(names[i], saved[i].c_str(), 1);
        else
          unsetenv(names[i]);
    }
    std::printf("# gpu_bench on %s%s\n", o.backend.c_str(), o.quick ? " (--quick: smoke-test sizes)" : "");
    std::printf("# flops: gemm 2mnk; attention fwd 4 n^2 d heads (x0.5 causal), fwd+bwd = 3.5 x fwd\n");
    std::printf("# checks: sampled outputs vs fp64; wrong = beyond the fp32 contract's tolerance\n");
    print_header();
    std::vector<Row> rows;
    long wrong = 0;
    if (o.gemm)
      for (DType dt : {DType::bf16, DType::f32}) {
        rows.push_back(bench_gemm(*be, dt, o.gemm_n, o.gemm_iters));
        print_row(rows.back());
        write_json(o, rows);
      }
    if (o.attention)
      for (int d : o.head_dims) {
        const int heads = std::max(1, o.hidden / d);
        const int n_max = *std::max_element(o.tokens.begin(), o.tokens.end());
        for (DType dt : {DType::bf16, DType::f32}) {
          const AttnInputs inputs(dt, n_max, heads, d);
          for (int n : o.tokens)
            for (bool causal : {true, false}) {
              std::vector<Row> case_rows = bench_attention(*be, inputs, n, causal, o.attn_iters, false);
              if (be_fused && dt == DType::bf16 && (d == 64 || d == 128))
                for (const Row& r : bench_attention(*be_fused, inputs, n, causal, o.attn_iters, true))
                  case_rows.push_back(r);
              for (const Row& r : case_rows) {
                rows.push_back(r);
                print_row(r);
              }
              write_json(o, rows);
            }
        }
      }
    for (const Row& r : rows) wrong += r.wrong;
    write_json(o, rows);
    std::printf("# %ld sampled values beyond tolerance\n", wrong);
    return wrong == 0 ? 0 : 1;
  } catch (const InputError& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 2;
  }
}
