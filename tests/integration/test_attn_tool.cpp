// test_attn_tool.cpp: end-to-end test of `mpirun -np N ringworld attn`.
//
// A plain (non-MPI) Catch2 program: it writes input files with the serial HDF5 C API, runs the
// tool under mpirun (RW_MPIEXEC, RW_RINGWORLD_BIN from CMake) and reads the output files back.
//
// What is tested:
//   * Correctness: out, lse and (--backward) dq, dk, dv against a full-sequence fp64 reference
//     (device/cpu/attention_reference.h), for np 1..4 x layouts contiguous/striped/zigzag,
//     causal and not, forward-only and --backward, GQA (kv_heads 2) and MHA (kv_heads 4),
//     head_dim 16 and 32, seq 48 and 96, small and ragged tiles (--block-q/--block-k), the
//     default mask (no segment_ids/positions datasets) and packed documents (non-monotone
//     segment ids, positions restarting at 0, documents of length 1, documents straddling
//     rank and zigzag-chunk boundaries). The full layout x causal set runs at np 2 and np 3.
//   * Repeatability: the same run (np 3, zigzag, causal, backward) twice gives bit-identical
//     values in every output dataset.
//   * Bad input: every rank exits non-zero (none hangs: each run is under `timeout`), the tool
//     prints exactly one line on stderr naming the problem, and neither OUT.h5 nor OUT.h5.tmp
//     is left behind. mpirun's own "process returned a non-zero exit code" banner is allowed;
//     the tool's lines are those starting with "ringworld".
//
// Tolerance basis (style.md item 6, FlashAttention's rule), per output tensor, max-abs error:
//     max|tool - fp64| <= 2 * max|naive32 - fp64| + 8 * FLT_EPSILON * max|fp64|
// fp64 is reference<double,double> on the fp32 inputs widened to double; naive32 is
// reference<float,float> (plain loops in fp32) on the same fp32 inputs. The first term: the
// tool may be at most twice as wrong as a straightforward fp32 implementation; the second is
// a floor of a few ulps of the tensor's scale for tensors where the naive error happens to be
// ~0 (check_tensor of integration_support.h).
#include <hdf5.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "device/attention_args.h"
#include "device/backend.h"
#include "tests/integration/integration_support.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace rw::test;

namespace {

// ---- deterministic inputs --------------------------------------------------------------------

// One attention problem in the tool's file layout (token-major, see the tool's --help).
struct Problem {
  std::string name;
  int batch = 0, seq = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool write_mask = false;        // false: no segment_ids/positions datasets (tool defaults)
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> seg, pos;  // [batch, seq]: always filled (the defaults if !write_mask)
};

// doc_lengths: per batch row, the lengths of its packed documents (summing to seq); empty for
// one document per row with position = token index (the tool's defaults).
Problem make_problem(const std::string& name, int batch, int seq, int heads, int kv_heads, int head_dim,
                     const std::vector<std::vector<int>>& doc_lengths, uint64_t seed) {
  Problem p;
  p.name = name;
  p.batch = batch;
  p.seq = seq;
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.head_dim = head_dim;
  const std::size_t n_q = static_cast<std::size_t>(batch) * seq * heads * head_dim;
  const std::size_t n_kv = static_cast<std::size_t>(batch) * seq * kv_heads * head_dim;
  // Amplitude 2: scores scale*q.k have a spread of ~1.5, so softmax rows are far from uniform.
  p.q = random_vector(n_q, seed + 1, 2.f);
  p.k = random_vector(n_kv, seed + 2, 2.f);
  p.v = random_vector(n_kv, seed + 3, 1.f);
  p.dout = random_vector(n_q, seed + 4, 1.f);
  p.seg.assign(static_cast<std::size_t>(batch) * seq, 0);
  p.pos.resize(p.seg.size());
  p.write_mask = !doc_lengths.empty();
  for (int b = 0; b < batch; ++b) {
    int32_t* seg = p.seg.data() + static_cast<std::size_t>(b) * seq;
    int32_t* pos = p.pos.data() + static_cast<std::size_t>(b) * seq;
    if (doc_lengths.empty()) {
      for (int t = 0; t < seq; ++t) pos[t] = t;
      continue;
    }
    int t = 0, doc = 0;
    for (int len : doc_lengths.at(b)) {
      // Distinct, non-monotone segment ids per row (3, 10, 6, 2, 9, ...): tile summaries by
      // min/max of segment ids must still be right when ids are not sorted.
      const int32_t id = (doc * 7 + 3 + b) % 11;
      for (int i = 0; i < len; ++i, ++t) {
        seg[t] = id;
        pos[t] = i;
      }
      ++doc;
    }
    REQUIRE(t == seq);  // the test's own document table must cover each row exactly
  }
  return p;
}

// ---- input and output files -----------------------------------------------------------------

std::vector<hsize_t> q_dims(const Problem& p) {
  return {hsize_t(p.batch), hsize_t(p.seq), hsize_t(p.heads), hsize_t(p.head_dim)};
}
std::vector<hsize_t> kv_dims(const Problem& p) {
  return {hsize_t(p.batch), hsize_t(p.seq), hsize_t(p.kv_heads), hsize_t(p.head_dim)};
}
std::vector<hsize_t> tok_dims(const Problem& p) { return {hsize_t(p.batch), hsize_t(p.seq)}; }
std::vector<hsize_t> lse_dims(const Problem& p) { return {hsize_t(p.batch), hsize_t(p.heads), hsize_t(p.seq)}; }

void write_problem(const fs::path& path, const Problem& p) {
  H5Writer f(path);
  f.f32("q", q_dims(p), p.q);
  f.f32("k", kv_dims(p), p.k);
  f.f32("v", kv_dims(p), p.v);
  f.f32("dout", q_dims(p), p.dout);
  if (p.write_mask) {
    f.i32("segment_ids", tok_dims(p), p.seg);
    f.i32("positions", tok_dims(p), p.pos);
  }
}

struct Outputs {
  std::vector<float> out, lse, dq, dk, dv;  // dq, dk, dv empty without --backward
};

Outputs read_outputs(const fs::path& path, const Problem& p, bool backward) {
  INFO("reading " << path);
  const H5File f(path);
  REQUIRE(f.ok());
  Outputs o;
  o.out = read_f32(f.id(), "out", q_dims(p));
  o.lse = read_f32(f.id(), "lse", lse_dims(p));
  if (backward) {
    o.dq = read_f32(f.id(), "dq", q_dims(p));
    o.dk = read_f32(f.id(), "dk", kv_dims(p));
    o.dv = read_f32(f.id(), "dv", kv_dims(p));
  } else {
    CHECK(H5Lexists(f.id(), "dq", H5P_DEFAULT) == 0);  // no gradients written without --backward
  }
  return o;
}

// ---- references --------------------------------------------------------------------------------

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// Full attention (one call over the whole sequence) forward and backward in precision T
// (test_support.h's FullAttention<T, T>), widened to double.
template <class T>
Reference full_attention(const Problem& p, bool causal) {
  const rw::device::AttnShape shape{p.batch, p.seq, p.seq, p.heads, p.kv_heads, p.head_dim};
  rw::device::AttnMaskArgs mask;
  mask.q_pos = mask.k_pos = p.pos.data();
  mask.q_seg = mask.k_seg = p.seg.data();
  mask.causal = causal;
  const FullAttention<T, T> r(shape, mask, p.q, p.k, p.v, &p.dout);
  auto widen = [](const std::vector<T>& x) { return std::vector<double>(x.begin(), x.end()); };
  return {widen(r.out), widen(r.lse), widen(r.dq), widen(r.dk), widen(r.dv)};
}

// ---- running the tool ------------------------------------------------------------------------

// Runs `timeout T mpirun -np N ringworld attn ARGS`, stdout and stderr to files in dir.
RunResult run_attn(const ScratchDir& dir, int np, const std::string& args, int timeout_s = 60) {
  return run_ringworld(np, "attn " + args, timeout_s, dir / "stdout.txt", dir / "stderr.txt");
}

// ---- correctness cases ---------------------------------------------------------------------

// Packed documents. seq 48 boundaries: np 2 contiguous 24; np 3 16, 32; np 4 12, 24, 36;
// zigzag chunks of 24/np tokens. Row 0 documents end at 5, 19, 20, 39, 48 (one of length 1);
// row 1 at 17, 20, 48: most cross a rank or chunk boundary somewhere.
const std::vector<std::vector<int>> kDocs48 = {{5, 14, 1, 19, 9}, {17, 3, 28}};
// seq 96 (zigzag chunks of 48/np tokens): row 0 ends 30, 32, 73, 96; row 1 at 1, 51, 96.
const std::vector<std::vector<int>> kDocs96 = {{30, 2, 41, 23}, {1, 50, 45}};

struct Case {
  int np;
  const char* layout;
  bool causal, backward;
  const char* problem;
  int block_q, block_k;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "np " << c.np << ", " << c.layout << (c.causal ? ", causal" : ", full") << (c.backward ? ", backward" : "")
    << ", problem " << c.problem << ", block " << c.block_q << "x" << c.block_k;
  return s.str();
}

std::map<std::string, Problem> make_problems() {
  std::map<std::string, Problem> m;
  // A: GQA (4 query heads on 2 kv heads), packed documents, seq 48.
  m["A"] = make_problem("A", 2, 48, 4, 2, 16, kDocs48, 1000);
  // B: MHA, default mask (no segment_ids/positions datasets), seq 48, head_dim 32.
  m["B"] = make_problem("B", 2, 48, 4, 4, 32, {}, 2000);
  // C: GQA, packed documents, seq 96, head_dim 32.
  m["C"] = make_problem("C", 2, 96, 4, 2, 32, kDocs96, 3000);
  // D: MHA, packed documents, seq 48, head_dim 16.
  m["D"] = make_problem("D", 2, 48, 4, 4, 16, kDocs48, 4000);
  return m;
}

// Every np covers each layout, causal and not, forward-only and --backward, GQA and MHA,
// packed and default masks; np 2 and np 3 run the full layout x causal set. Block sizes 8/16
// give many tiles; 7x5 and 16x8 give ragged last tiles (n_local = 48/np or 96/np).
const std::vector<Case> kCases = {
    {1, "contiguous", true, true, "A", 8, 8},
    {1, "striped", false, false, "B", 16, 8},
    {1, "zigzag", true, true, "C", 16, 16},
    {1, "zigzag", false, true, "D", 7, 5},
    {2, "contiguous", true, true, "A", 8, 8},
    {2, "contiguous", false, true, "A", 16, 8},
    {2, "striped", true, true, "A", 8, 16},
    {2, "striped", false, true, "A", 8, 8},
    {2, "zigzag", true, true, "A", 8, 8},
    {2, "zigzag", false, true, "A", 7, 5},
    {2, "zigzag", true, false, "B", 8, 8},
    {2, "contiguous", false, true, "B", 16, 16},
    {2, "striped", true, true, "D", 8, 8},
    {3, "contiguous", true, true, "C", 16, 8},
    {3, "contiguous", false, true, "C", 8, 8},
    {3, "striped", true, true, "C", 8, 16},
    {3, "striped", false, true, "C", 16, 16},
    {3, "zigzag", true, true, "C", 8, 8},
    {3, "zigzag", false, true, "C", 7, 5},
    {3, "zigzag", true, false, "A", 8, 8},
    {3, "striped", true, true, "B", 8, 8},
    {3, "contiguous", true, false, "D", 8, 8},
    {4, "contiguous", true, true, "A", 8, 8},
    {4, "striped", false, true, "C", 8, 8},
    {4, "zigzag", true, true, "B", 8, 8},
    {4, "zigzag", false, false, "C", 16, 8},
    {4, "striped", true, false, "A", 8, 16},
    {4, "zigzag", true, true, "D", 5, 7},
    {4, "contiguous", false, true, "C", 16, 16},
};

std::string attn_args(const fs::path& in, const fs::path& out, const std::string& layout, bool causal,
                      bool backward, int block_q, int block_k) {
  std::string a = "--quiet --input " + quoted(in) + " --output " + quoted(out) + " --layout " + layout +
                  " --block-q " + std::to_string(block_q) + " --block-k " + std::to_string(block_k);
  if (causal) a += " --causal";
  if (backward) a += " --backward";
  return a;
}

}  // namespace

TEST_CASE("attn tool matches the fp64 reference for every rank count, layout and mask", "[attn_tool]") {
  ScratchDir dir("attn_tool_correct");
  const auto problems = make_problems();
  for (const auto& [name, p] : problems) write_problem(dir / ("in_" + name + ".h5"), p);

  // references[(problem, causal)] = {fp64, naive fp32}
  std::map<std::pair<std::string, bool>, std::pair<Reference, Reference>> references;
  for (const auto& [name, p] : problems)
    for (bool causal : {false, true})
      references[{name, causal}] = {full_attention<double>(p, causal), full_attention<float>(p, causal)};

  for (const Case& c : kCases) {
    INFO(describe(c));
    const Problem& p = problems.at(c.problem);
    const fs::path in = dir / ("in_" + p.name + ".h5"), out = dir / "out.h5";
    const RunResult r = run_attn(dir, c.np, attn_args(in, out, c.layout, c.causal, c.backward, c.block_q, c.block_k));
    INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(fs::exists(out.string() + ".tmp"));
    const Outputs o = read_outputs(out, p, c.backward);
    const auto& [fp64, naive32] = references.at({p.name, c.causal});
    check_tensor("out", o.out, fp64.out, naive32.out);
    check_tensor("lse", o.lse, fp64.lse, naive32.lse);
    if (c.backward) {
      check_tensor("dq", o.dq, fp64.dq, naive32.dq);
      check_tensor("dk", o.dk, fp64.dk, naive32.dk);
      check_tensor("dv", o.dv, fp64.dv, naive32.dv);
    }
    fs::remove(out);
  }
}

// Every device the tools take (device::backend_names(): cpu, cpu-reference and, once the
// registry offers it to the tools, sim-gpu; ctest runs this program with
// RINGWORLD_SIM_GPU_DELAY_US=50, which the ranks inherit): within the rule on each, at np 2 and 3
// (zigzag, causal, --backward, packed GQA); sim-gpu, which runs the cpu's kernels on device
// memory, gives the cpu's bits.
TEST_CASE("attn tool on every device the tools take", "[attn_tool][device]") {
  ScratchDir dir("attn_tool_devices");
  const Problem p = make_problem("C", 2, 96, 4, 2, 32, kDocs96, 3100);
  const fs::path in = dir / "in.h5", out = dir / "out.h5";
  write_problem(in, p);
  const Reference fp64 = full_attention<double>(p, true), naive32 = full_attention<float>(p, true);
  const std::vector<std::string> devices = rw::device::backend_names();
  REQUIRE(devices.size() >= 2);  // cpu and cpu-reference at least
  for (int np : {2, 3}) {
    Outputs on_cpu;
    for (const std::string& device : devices) {
      INFO("--device " << device << ", np " << np);
      const RunResult r = run_attn(dir, np, attn_args(in, out, "zigzag", true, true, 8, 8) + " --device " + device);
      INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
      REQUIRE(r.exit_code == 0);
      const Outputs o = read_outputs(out, p, true);
      check_tensor("out", o.out, fp64.out, naive32.out);
      check_tensor("lse", o.lse, fp64.lse, naive32.lse);
      check_tensor("dq", o.dq, fp64.dq, naive32.dq);
      check_tensor("dk", o.dk, fp64.dk, naive32.dk);
      check_tensor("dv", o.dv, fp64.dv, naive32.dv);
      fs::remove(out);
      if (device == "cpu") on_cpu = o;
      if (device != "sim-gpu") continue;  // other kernels: the rule above is the test
      CHECK(same_bits(o.out, on_cpu.out));
      CHECK(same_bits(o.lse, on_cpu.lse));
      CHECK(same_bits(o.dq, on_cpu.dq));
      CHECK(same_bits(o.dk, on_cpu.dk));
      CHECK(same_bits(o.dv, on_cpu.dv));
    }
  }
}

TEST_CASE("attn tool is bit-for-bit repeatable", "[attn_tool]") {
  ScratchDir dir("attn_tool_repeat");
  const Problem p = make_problem("C", 2, 96, 4, 2, 32, kDocs96, 3000);
  const fs::path in = dir / "in.h5", out1 = dir / "out1.h5", out2 = dir / "out2.h5";
  write_problem(in, p);
  for (const fs::path& out : {out1, out2}) {
    const RunResult r = run_attn(dir, 3, attn_args(in, out, "zigzag", true, true, 8, 8));
    INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
    REQUIRE(r.exit_code == 0);
  }
  const Outputs a = read_outputs(out1, p, true), b = read_outputs(out2, p, true);
  CHECK(same_bits(a.out, b.out));
  CHECK(same_bits(a.lse, b.lse));
  CHECK(same_bits(a.dq, b.dq));
  CHECK(same_bits(a.dk, b.dk));
  CHECK(same_bits(a.dv, b.dv));
}

TEST_CASE("attn tool rejects bad input cleanly on every rank", "[attn_tool]") {
  ScratchDir dir("attn_tool_bad");
  const fs::path out = dir / "out.h5";
  const Problem p = make_problem("A", 2, 48, 4, 2, 16, kDocs48, 1000);
  const std::vector<hsize_t> q_shape = q_dims(p), kv_shape = kv_dims(p);
  const std::string tail = " --output " + quoted(out);
  // dir / name holding the datasets `write` writes (closed before any run).
  auto input_with = [&](const std::string& name, const std::function<void(H5Writer&)>& write) {
    const fs::path in = dir / name;
    H5Writer f(in);
    write(f);
    return in;
  };
  // `attn OPTIONS--input IN --output OUT` on np ranks fails cleanly, naming `needle`.
  auto expect_rejected = [&](int np, const std::string& options, const fs::path& in, const std::string& needle) {
    const RunResult r = run_attn(dir, np, options + "--input " + quoted(in) + tail);
    expect_clean_failure(r, out, needle);
    return r;
  };

  SECTION("missing input file") { expect_rejected(2, "", dir / "nope.h5", "nope.h5"); }
  SECTION("input is not an HDF5 file") {
    const fs::path in = dir / "text.h5";
    std::ofstream(in) << "this is not an HDF5 file\n";
    expect_rejected(2, "", in, "as an HDF5 file");
  }
  SECTION("missing dataset 'k' (np 3)") {
    const fs::path in = input_with("no_k.h5", [&](H5Writer& f) {
      f.f32("q", q_shape, p.q);
      f.f32("v", kv_shape, p.v);
    });
    expect_rejected(3, "", in, "dataset 'k'");
  }
  SECTION("q of rank 3") {
    const fs::path in = input_with("q_rank3.h5", [&](H5Writer& f) {
      f.f32("q", {2, 48, 64}, p.q);
      f.f32("k", kv_shape, p.k);
      f.f32("v", kv_shape, p.v);
    });
    expect_rejected(2, "", in, "dataset 'q'");
  }
  SECTION("q stored as float64") {
    const fs::path in = input_with("q_f64.h5", [&](H5Writer& f) {
      f.f64("q", q_shape, std::vector<double>(p.q.begin(), p.q.end()));
      f.f32("k", kv_shape, p.k);
      f.f32("v", kv_shape, p.v);
    });
    const RunResult r = expect_rejected(2, "", in, "float64");
    CHECK(r.stderr_text.find("'q'") != std::string::npos);
  }
  SECTION("k with a different seq than q") {
    const fs::path in = input_with("k_seq.h5", [&](H5Writer& f) {
      f.f32("q", q_shape, p.q);
      f.f32("k", {2, 40, 2, 16}, random_vector(2 * 40 * 2 * 16, 7, 1.f));
      f.f32("v", kv_shape, p.v);
    });
    expect_rejected(2, "", in, "dataset 'k'");
  }
  SECTION("heads not divisible by kv_heads") {
    const std::vector<float> kv = random_vector(2 * 48 * 3 * 16, 8, 1.f);
    const fs::path in = input_with("gqa_3.h5", [&](H5Writer& f) {
      f.f32("q", q_shape, p.q);
      f.f32("k", {2, 48, 3, 16}, kv);
      f.f32("v", {2, 48, 3, 16}, kv);
    });
    expect_rejected(2, "", in, "kv_heads");
  }
  SECTION("seq 50 over 4 ranks (contiguous)") {
    const fs::path in = dir / "seq50.h5";
    write_problem(in, make_problem("s50", 1, 50, 4, 2, 16, {}, 9));
    expect_rejected(4, "--layout contiguous ", in, "sequence length 50");
  }
  SECTION("seq 52 over 4 ranks (zigzag needs a multiple of 8)") {
    const fs::path in = dir / "seq52.h5";
    write_problem(in, make_problem("s52", 1, 52, 4, 2, 16, {}, 10));
    expect_rejected(4, "--layout zigzag ", in, "sequence length 52");
  }
  SECTION("--backward without dout") {
    const fs::path in = input_with("no_dout.h5", [&](H5Writer& f) {
      f.f32("q", q_shape, p.q);
      f.f32("k", kv_shape, p.k);
      f.f32("v", kv_shape, p.v);
    });
    expect_rejected(2, "--backward ", in, "'dout'");
  }
  SECTION("segment_ids of the wrong shape") {
    const fs::path in = input_with("seg_shape.h5", [&](H5Writer& f) {
      f.f32("q", q_shape, p.q);
      f.f32("k", kv_shape, p.k);
      f.f32("v", kv_shape, p.v);
      f.i32("segment_ids", {2, 24}, std::vector<int32_t>(48, 0));
    });
    expect_rejected(2, "", in, "segment_ids");
  }
  SECTION("unknown layout") {
    const fs::path in = dir / "ok.h5";
    write_problem(in, p);
    expect_rejected(2, "--layout spiral ", in, "spiral");
  }
  SECTION("output in a directory that does not exist") {
    const fs::path in = dir / "ok.h5", missing_dir = dir / "no_such_dir", bad_out = missing_dir / "out.h5";
    write_problem(in, p);
    expect_clean_failure(run_attn(dir, 2, "--input " + quoted(in) + " --output " + quoted(bad_out)), bad_out,
                         "no_such_dir");
    CHECK_FALSE(fs::exists(missing_dir));
  }
  SECTION("output path that is a directory") {
    const fs::path in = dir / "ok.h5", out_dir = dir / "out_dir";
    write_problem(in, p);
    fs::create_directory(out_dir);
    const RunResult r = run_attn(dir, 2, "--input " + quoted(in) + " --output " + quoted(out_dir));
    CHECK(r.exit_code != 0);
    CHECK(r.stderr_text.find("is a directory") != std::string::npos);
    CHECK(r.stderr_text.find("fatal") == std::string::npos);
    CHECK(fs::is_directory(out_dir));
    CHECK_FALSE(fs::exists(fs::path(out_dir.string() + ".tmp")));
  }
}

// Padding tokens (segment id < 0) see no key and no query sees them: their queries get out = 0
// and lse = -inf, no gradient flows to their q, k or v. Through the tool on 1-4 ranks, every
// layout, causal and not, with padding at a sequence's start, inside it and at its end, across
// rank and chunk boundaries; all outputs also match the fp64 reference (tolerance rule above).
TEST_CASE("attn tool: a query that sees no key gets zero out and gradients and lse -inf", "[attn_tool]") {
  ScratchDir dir("attn_tool_no_key");
  Problem p = make_problem("P", 2, 48, 4, 2, 16, kDocs48, 5000);
  std::vector<int> padding;  // token indices b * seq + t
  for (int t : {5, 6, 7, 8, 9, 23, 24, 40, 41, 42, 43, 44, 45, 46, 47}) padding.push_back(t);
  for (int t : {0, 1, 17, 30, 31}) padding.push_back(48 + t);
  for (int i : padding) p.seg[i] = -1;
  const fs::path in = dir / "in.h5";
  write_problem(in, p);

  struct NoKeyCase {
    int np;
    const char* layout;
    bool causal;
  };
  for (const NoKeyCase& c : {NoKeyCase{1, "striped", true}, NoKeyCase{2, "zigzag", false},
                             NoKeyCase{3, "contiguous", true}, NoKeyCase{4, "zigzag", true}}) {
    INFO("np " << c.np << ", " << c.layout << (c.causal ? ", causal" : ", full"));
    const Reference fp64 = full_attention<double>(p, c.causal), naive32 = full_attention<float>(p, c.causal);
    const fs::path out = dir / "out.h5";
    const RunResult r = run_attn(dir, c.np, attn_args(in, out, c.layout, c.causal, true, 8, 8));
    INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
    REQUIRE(r.exit_code == 0);
    const Outputs o = read_outputs(out, p, true);
    const int d = p.head_dim, qw = p.heads * d, kw = p.kv_heads * d;
    for (int i : padding) {
      const int b = i / p.seq, t = i % p.seq;
      INFO("padding token " << t << " of sequence " << b);
      for (int x = 0; x < qw; ++x) {
        CHECK(o.out[static_cast<std::size_t>(i) * qw + x] == 0.f);
        CHECK(o.dq[static_cast<std::size_t>(i) * qw + x] == 0.f);
      }
      for (int x = 0; x < kw; ++x) {
        CHECK(o.dk[static_cast<std::size_t>(i) * kw + x] == 0.f);
        CHECK(o.dv[static_cast<std::size_t>(i) * kw + x] == 0.f);
      }
      for (int h = 0; h < p.heads; ++h)
        CHECK(o.lse[(static_cast<std::size_t>(b) * p.heads + h) * p.seq + t] == -std::numeric_limits<float>::infinity());
    }
    // lse: -inf entries must match exactly (max_abs_error's rule); the rest as check_tensor does
    // (which also requires every value finite, so not for lse).
    CHECK(max_abs_error(o.lse, fp64.lse) <= 2 * max_abs_error(naive32.lse, fp64.lse) + 8 * FLT_EPSILON * max_abs(fp64.lse));
    check_tensor("out", o.out, fp64.out, naive32.out);
    check_tensor("dq", o.dq, fp64.dq, naive32.dq);
    check_tensor("dk", o.dk, fp64.dk, naive32.dk);
    check_tensor("dv", o.dv, fp64.dv, naive32.dv);
    fs::remove(out);
  }
}
