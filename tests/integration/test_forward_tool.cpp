// test_forward_tool.cpp: end-to-end test of `mpirun -np N ringworld forward` and of the
// parameter files of `ringworld train` (--save-params, --init-params).
//
// A plain (non-MPI) Catch2 program: it writes checkpoints and token files with the serial HDF5
// C API, runs the tools under mpirun (RW_MPIEXEC, RW_RINGWORLD_BIN from CMake) and reads the
// output files back. The references run in this process on the whole batch (one "rank", the
// ring of one is the plain reference attention): rw::model::ReferenceTransformer<double> with
// ReferenceAttentionOp<double> and CpuMatMulDouble (fp64), and the same model in fp32
// (ReferenceTransformer<float>, ReferenceAttentionOp<float>, BackendMatMul on the "cpu" backend).
//
// What is tested:
//   * Correctness: logits [batch, seq, vocab] (original token order), the scalar loss
//     (sum(w * CE) / sum(w) over targets >= 0) and, with --backward, /grads/<name> of every
//     parameter (full shapes) against the fp64 model, for np 1..4 with the zigzag layout and
//     np 2, 3 with contiguous and striped, forward-only and --backward, a tiny GQA LLaMA
//     (vocab 37, hidden 16, intermediate 40, 2 layers, 4 heads on 2 kv heads), batch 2 x seq 48,
//     default and ragged attention tiles. One input has explicit targets (some -1), non-uniform
//     loss weights (some 0), and packed documents (non-monotone segment ids, positions
//     restarting at 0 and stepping by 2 in the longest documents, documents straddling rank
//     and zigzag-chunk boundaries), at np 1..4.
//   * Repeatability: the same run (np 2, zigzag, --backward) twice gives bit-identical values
//     in every output dataset.
//   * Train <-> forward: a parameter file written by `train --save-params` (np 2) carries the
//     config and step attributes, differs from the initialisation, is accepted by `forward` at
//     np 1 and np 3 (both within the rule below of the fp64 model on the file's weights, so
//     within it of each other), and `train --init-params` of it (np 2) runs, and its first
//     step's loss equals the forward tool's loss of those weights on the same synthetic batch
//     (so the weights were really loaded, not re-initialised).
//   * Bad input: every rank exits non-zero (none hangs: each run is under `timeout`), the tool
//     prints exactly one line on stderr (starting "ringworld", containing "error") naming the
//     problem, no fatal/abort path is taken, and neither OUT.h5 nor OUT.h5.tmp is left.
//
// Tolerance basis (style.md item 6, FlashAttention's rule), per output tensor (logits, loss,
// each gradient tensor), max-abs error:
//     max|tool - fp64| <= 2 * max|fp32_single - fp64| + 8 * FLT_EPSILON * max|fp64|
// fp64 is the fp64 model on the checkpoint's fp32 weights widened to double; fp32_single is the
// same model in fp32 on one process (reference attention, backend GEMM). The first term: the
// tool on any ring may be at most twice as wrong as a straightforward single-process fp32 run;
// the second is a floor of a few ulps of the tensor's scale.
#include <hdf5.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "src/attention/attention_ops.h"
#include "src/data/batch.h"
#include "src/data/synthetic_source.h"
#include "src/model/llama_config.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/param_init.h"
#include "src/model/reference_transformer.h"
#include "tests/integration/integration_support.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace rw::test;
using rw::model::LlamaConfig;

namespace {

// ---- the model and its weights ---------------------------------------------------------------

// GQA: 2 query heads per kv head.
LlamaConfig tiny_config() { return rw::test::tiny_llama(37, 16, 40, 2, 4, 2, 1e4); }

// Weights per parameter unit (parameter_units() layout: tensors back to back, row-major).
using UnitWeights = std::vector<std::vector<float>>;

// Projections and embeddings uniform with std 0.3 (scores q.k/sqrt(head_dim) spread ~1: softmax
// neither saturated nor uniform); norms 1 + uniform(-0.2, 0.2).
UnitWeights random_weights(const LlamaConfig& config, uint64_t seed) {
  rw::test::Rng rng(seed);
  UnitWeights w;
  for (const auto& unit : rw::model::parameter_units(config)) {
    std::vector<float> v(unit.count);
    for (std::size_t t = 0; t < unit.tensors.size(); ++t) {
      const auto& spec = unit.tensors[t];
      for (int64_t i = 0; i < spec.count(); ++i)
        v[unit.offsets[t] + i] = spec.is_norm ? 1.f + rng.symmetric(0.2f) : rng.symmetric(0.3f * std::sqrt(3.f));
    }
    w.push_back(std::move(v));
  }
  return w;
}

// ---- the token inputs ------------------------------------------------------------------------

struct Input {
  int batch = 0, seq = 0;
  std::vector<int32_t> tokens;
  // Optional datasets (written only if non-empty); the reference uses the tool's defaults.
  std::vector<int32_t> targets, segment_ids, positions;
  std::vector<float> loss_weights;
};

Input random_tokens(int batch, int seq, int vocab, uint64_t seed) {
  rw::test::Rng rng(seed);
  Input in;
  in.batch = batch;
  in.seq = seq;
  in.tokens.resize(static_cast<std::size_t>(batch) * seq);
  for (auto& t : in.tokens) t = rng.below(vocab);
  return in;
}

// Packed documents, per row, of these lengths. seq 48 boundaries: np 2 contiguous 24; np 3 16,
// 32; np 4 12, 24, 36; zigzag chunks of 24/np tokens. Row 0 documents end at 5, 19, 20, 39, 48
// (one of length 1), row 1 at 17, 20, 48: most cross a rank or chunk boundary somewhere.
const std::vector<std::vector<int>> kDocs48 = {{5, 14, 1, 19, 9}, {17, 3, 28}};

// Explicit targets (next token of the same document, -1 at a document's end and at a few
// random tokens), non-uniform loss weights (0 at a few tokens), packed documents with
// non-monotone segment ids and positions restarting at 0 (with gaps in the longest ones).
Input packed_input(int vocab, uint64_t seed) {
  Input in = random_tokens(2, 48, vocab, seed);
  rw::test::Rng rng(seed + 1);
  const std::size_t n = in.tokens.size();
  in.targets.assign(n, -1);
  in.segment_ids.assign(n, 0);
  in.positions.assign(n, 0);
  in.loss_weights.resize(n);
  for (int b = 0; b < in.batch; ++b) {
    int t = 0, doc = 0;
    for (int len : kDocs48.at(b)) {
      const int32_t id = (doc * 7 + 3 + b) % 11;
      for (int i = 0; i < len; ++i, ++t) {
        const std::size_t k = static_cast<std::size_t>(b) * in.seq + t;
        in.segment_ids[k] = id;
        // Positions restart at 0 per document; the longest document of each row counts in
        // steps of 2: RoPE is relative, so only such gaps make positions differ from the
        // token index in effect (and a tool ignoring `positions` fail).
        in.positions[k] = len >= 19 ? 2 * i : i;
        if (i + 1 < len && rng.below(8) != 0) in.targets[k] = in.tokens[k + 1];
      }
      ++doc;
    }
    REQUIRE(t == in.seq);
  }
  for (auto& w : in.loss_weights) w = rng.below(6) == 0 ? 0.f : 0.25f + static_cast<float>(rng.uniform()) * 1.5f;
  return in;
}

// The whole batch as one process sees it, with the tool's defaults for absent datasets.
rw::data::LocalBatch whole_batch(const Input& in) {
  rw::data::LocalBatch b;
  b.n_sequences = in.batch;
  b.n_local = in.seq;
  b.tokens = in.tokens;
  const std::size_t n = in.tokens.size();
  if (!in.targets.empty()) {
    b.targets = in.targets;
  } else {
    b.targets.resize(n);
    for (int s = 0; s < in.batch; ++s)
      for (int t = 0; t < in.seq; ++t) {
        const std::size_t k = static_cast<std::size_t>(s) * in.seq + t;
        b.targets[k] = t + 1 < in.seq ? in.tokens[k + 1] : -1;
      }
  }
  b.segment_ids = in.segment_ids.empty() ? std::vector<int32_t>(n, 0) : in.segment_ids;
  if (!in.positions.empty()) {
    b.positions = in.positions;
  } else {
    b.positions.resize(n);
    for (int s = 0; s < in.batch; ++s)
      for (int t = 0; t < in.seq; ++t) b.positions[static_cast<std::size_t>(s) * in.seq + t] = t;
  }
  b.loss_weights = in.loss_weights.empty() ? std::vector<float>(n, 1.f) : in.loss_weights;
  return b;
}

// ---- references --------------------------------------------------------------------------------

struct ModelResult {
  double loss = 0;                          // sum(w * CE) / sum(w)
  std::vector<double> logits;               // [batch, seq, vocab]
  std::map<std::string, std::vector<double>> grads;  // per tensor name, of the loss
};

template <class T>
ModelResult run_model(const LlamaConfig& config, const UnitWeights& weights, const rw::data::LocalBatch& batch,
                      rw::model::MatMul<T>& matmul) {
  rw::model::LocalParams<T> params(config, 0);
  for (std::size_t u = 0; u < weights.size(); ++u) params.weights[u].assign(weights[u].begin(), weights[u].end());
  rw::ReferenceAttentionOp<T> attention(true);
  rw::model::ReferenceTransformer<T> model(config, params, attention, matmul);
  double weight_sum = 0;
  for (std::size_t i = 0; i < batch.targets.size(); ++i)
    if (batch.targets[i] >= 0) weight_sum += batch.loss_weights[i];
  REQUIRE(weight_sum > 0);
  std::vector<T> logits(static_cast<std::size_t>(batch.token_count()) * config.vocab_size);
  ModelResult r;
  r.loss = model.forward(batch, logits.data()) / weight_sum;
  r.logits.assign(logits.begin(), logits.end());
  params.zero_grads();
  model.forward_backward(batch, 1.0 / weight_sum);
  const auto& units = params.units();
  for (std::size_t u = 0; u < units.size(); ++u)
    for (std::size_t t = 0; t < units[u].tensors.size(); ++t) {
      const auto begin = params.grads[u].begin() + units[u].offsets[t];
      r.grads[units[u].tensors[t].name].assign(begin, begin + units[u].tensors[t].count());
    }
  return r;
}

struct References {
  ModelResult fp64, fp32;
};

References references(const LlamaConfig& config, const UnitWeights& weights, const Input& in) {
  const rw::data::LocalBatch batch = whole_batch(in);
  rw::model::CpuMatMulDouble matmul64;
  auto backend = rw::device::make_backend("cpu");
  rw::model::BackendMatMul matmul32(*backend);
  return {run_model<double>(config, weights, batch, matmul64), run_model<float>(config, weights, batch, matmul32)};
}

// The tolerance rule of the header comment for the scalar loss (for a tensor: check_tensor of
// integration_support.h).
void check_scalar(const std::string& name, double tool, double fp64, double fp32) {
  const double err_tool = std::fabs(tool - fp64), err_fp32 = std::fabs(fp32 - fp64);
  const double bound = 2 * err_fp32 + 8 * FLT_EPSILON * std::fabs(fp64);  // basis: header comment
  INFO(name << ": tool " << tool << ", fp64 " << fp64 << ", fp32 " << fp32 << ", |tool-fp64| = " << err_tool
            << ", bound = " << bound);
  CHECK(std::isfinite(tool));
  CHECK(err_tool <= bound);
}

// ---- input and output files -----------------------------------------------------------------

// How to damage a checkpoint (bad-input cases); the default writes a correct one.
struct CheckpointEdits {
  std::string skip_tensor;                    // leave this parameter out
  std::string reshape_tensor;                 // write this parameter with shape `new_shape`
  std::vector<hsize_t> new_shape;
  std::string extra_tensor;                   // add this unknown parameter ([hidden] of ones)
  std::string skip_attribute;                 // leave this config attribute out
};

void write_checkpoint(const fs::path& path, const LlamaConfig& config, const UnitWeights& weights,
                      const CheckpointEdits& edits = {}) {
  H5Writer f(path);
  for (const auto& field : rw::model::config_fields()) {
    if (field.name == edits.skip_attribute) continue;
    if (field.integer) f.attr_i64(field.name, config.*field.integer);
    else f.attr_f64(field.name, config.*field.real);
  }
  f.group("params");
  const auto units = rw::model::parameter_units(config);
  for (std::size_t u = 0; u < units.size(); ++u)
    for (std::size_t t = 0; t < units[u].tensors.size(); ++t) {
      const auto& spec = units[u].tensors[t];
      if (spec.name == edits.skip_tensor) continue;
      std::vector<float> data(weights[u].begin() + units[u].offsets[t],
                              weights[u].begin() + units[u].offsets[t] + spec.count());
      std::vector<hsize_t> dims(spec.shape.begin(), spec.shape.end());
      if (spec.name == edits.reshape_tensor) {
        dims = edits.new_shape;
        hsize_t count = 1;
        for (hsize_t d : dims) count *= d;
        data.resize(count, 0.5f);
      }
      f.f32("params/" + spec.name, dims, data);
    }
  if (!edits.extra_tensor.empty())
    f.f32("params/" + edits.extra_tensor, {hsize_t(config.hidden_size)},
          std::vector<float>(static_cast<std::size_t>(config.hidden_size), 1.f));
}

void write_input(const fs::path& path, const Input& in) {
  H5Writer f(path);
  const std::vector<hsize_t> dims{hsize_t(in.batch), hsize_t(in.seq)};
  f.i32("tokens", dims, in.tokens);
  if (!in.targets.empty()) f.i32("targets", dims, in.targets);
  if (!in.loss_weights.empty()) f.f32("loss_weights", dims, in.loss_weights);
  if (!in.segment_ids.empty()) f.i32("segment_ids", dims, in.segment_ids);
  if (!in.positions.empty()) f.i32("positions", dims, in.positions);
}

// Reads a scalar float64 dataset.
double read_scalar_f64(hid_t file, const std::string& name) {
  INFO("dataset '" << name << "'");
  REQUIRE(H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0);
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  REQUIRE(ds >= 0);
  hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
  const bool scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR;
  const bool is_f64 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 8;
  H5Tclose(type);
  H5Sclose(space);
  CHECK(scalar);
  CHECK(is_f64);
  double value = std::nan("");
  CHECK(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) >= 0);
  H5Dclose(ds);
  return value;
}

struct ToolOutput {
  std::vector<float> logits;
  double loss = 0;
  std::map<std::string, std::vector<float>> grads;  // empty without --backward
};

ToolOutput read_output(const fs::path& path, const LlamaConfig& config, const Input& in, bool backward) {
  INFO("reading " << path);
  const H5File f(path);
  REQUIRE(f.ok());
  ToolOutput o;
  o.logits = read_f32(f.id(), "logits", {hsize_t(in.batch), hsize_t(in.seq), hsize_t(config.vocab_size)});
  o.loss = read_scalar_f64(f.id(), "loss");
  if (backward) {
    for (const auto& unit : rw::model::parameter_units(config))
      for (const auto& t : unit.tensors)
        o.grads[t.name] = read_f32(f.id(), "grads/" + t.name, std::vector<hsize_t>(t.shape.begin(), t.shape.end()));
    // Nothing else under /grads.
    H5G_info_t info;
    hid_t g = H5Gopen2(f.id(), "grads", H5P_DEFAULT);
    REQUIRE(g >= 0);
    CHECK(H5Gget_info(g, &info) >= 0);
    H5Gclose(g);
    CHECK(info.nlinks == o.grads.size());
  } else {
    CHECK(H5Lexists(f.id(), "grads", H5P_DEFAULT) == 0);  // no gradients written without --backward
  }
  return o;
}

// Reads /params/<name> of a parameter file into the unit layout of `config`.
UnitWeights read_param_file(const fs::path& path, const LlamaConfig& config) {
  INFO("reading " << path);
  const H5File f(path);
  REQUIRE(f.ok());
  UnitWeights w;
  for (const auto& unit : rw::model::parameter_units(config)) {
    std::vector<float> v(unit.count);
    for (std::size_t t = 0; t < unit.tensors.size(); ++t) {
      const auto& spec = unit.tensors[t];
      const auto data = read_f32(f.id(), "params/" + spec.name, std::vector<hsize_t>(spec.shape.begin(), spec.shape.end()));
      REQUIRE(static_cast<int64_t>(data.size()) == spec.count());
      std::copy(data.begin(), data.end(), v.begin() + unit.offsets[t]);
    }
    w.push_back(std::move(v));
  }
  return w;
}

// ---- running the tools -----------------------------------------------------------------------

// Runs `timeout T mpirun -np N ringworld ARGS` (ARGS starts with the command), stdout and
// stderr to files in dir.
RunResult run_tool(const ScratchDir& dir, int np, const std::string& args, int timeout_s = 60) {
  return run_ringworld(np, args, timeout_s, dir / "stdout.txt", dir / "stderr.txt");
}

std::string forward_args(const fs::path& ckpt, const fs::path& in, const fs::path& out, const std::string& layout,
                         bool backward, int block_q = 0, int block_k = 0, const std::string& device = "") {
  std::string a = "forward --quiet --checkpoint " + quoted(ckpt) + " --input " + quoted(in) + " --output " +
                  quoted(out) + " --layout " + layout;
  if (block_q > 0) a += " --block-q " + std::to_string(block_q) + " --block-k " + std::to_string(block_k);
  if (backward) a += " --backward";
  if (!device.empty()) a += " --device " + device;
  return a;
}

// The small model's options for `ringworld train`.
const char* kTrainModel =
    " --hidden_size 16 --intermediate_size 40 --num_hidden_layers 2 --num_attention_heads 4"
    " --num_key_value_heads 2 --vocab_size 37";

// Runs forward and checks every output tensor against the references with the rule.
void check_forward_run(const ScratchDir& dir, int np, const fs::path& ckpt, const fs::path& in_path,
                       const LlamaConfig& config, const Input& in, const References& ref, const std::string& layout,
                       bool backward, int block_q = 0, int block_k = 0, double* loss_out = nullptr,
                       const std::string& device = "", ToolOutput* output = nullptr) {
  const fs::path out = dir / "out.h5";
  const RunResult r = run_tool(dir, np, forward_args(ckpt, in_path, out, layout, backward, block_q, block_k, device));
  INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.empty());  // --quiet
  CHECK_FALSE(fs::exists(out.string() + ".tmp"));
  const ToolOutput o = read_output(out, config, in, backward);
  check_scalar("loss", o.loss, ref.fp64.loss, ref.fp32.loss);
  check_tensor("logits", o.logits, ref.fp64.logits, ref.fp32.logits);
  if (backward)
    for (const auto& [name, g] : o.grads) check_tensor("grad " + name, g, ref.fp64.grads.at(name), ref.fp32.grads.at(name));
  if (loss_out) *loss_out = o.loss;
  if (output) *output = o;
  fs::remove(out);
}

struct Case {
  int np;
  const char* layout;
  bool backward;
  int block_q, block_k;  // 0: the tool's defaults (128: one tile per rank here)
};

std::string describe(const Case& c, const char* input) {
  std::ostringstream s;
  s << "input " << input << ", np " << c.np << ", " << c.layout << (c.backward ? ", --backward" : ", forward only")
    << ", block " << c.block_q << "x" << c.block_k;
  return s.str();
}

// zigzag at every np; contiguous and striped at np 2 and 3; forward-only and --backward each.
const std::vector<Case> kPlainCases = {
    {1, "zigzag", false, 0, 0},     {1, "zigzag", true, 8, 8},      {2, "zigzag", false, 0, 0},
    {2, "zigzag", true, 5, 7},      {2, "contiguous", false, 8, 8}, {2, "contiguous", true, 0, 0},
    {2, "striped", false, 0, 0},    {2, "striped", true, 8, 8},     {3, "zigzag", false, 8, 8},
    {3, "zigzag", true, 0, 0},      {3, "contiguous", false, 0, 0}, {3, "contiguous", true, 7, 5},
    {3, "striped", false, 8, 8},    {3, "striped", true, 0, 0},     {4, "zigzag", false, 0, 0},
    {4, "zigzag", true, 8, 8},
};

// Packed documents with explicit targets and weights, at every np and layout.
const std::vector<Case> kPackedCases = {
    {1, "contiguous", true, 8, 8}, {2, "contiguous", true, 8, 8}, {2, "zigzag", false, 0, 0},
    {3, "zigzag", true, 5, 7},     {3, "striped", true, 8, 8},    {4, "zigzag", true, 8, 8},
    {4, "striped", false, 0, 0},
};

}  // namespace

TEST_CASE("forward tool matches the fp64 model for every rank count and layout", "[forward_tool]") {
  ScratchDir dir("forward_tool_correct");
  const LlamaConfig config = tiny_config();
  const UnitWeights weights = random_weights(config, 101);
  const fs::path ckpt = dir / "ckpt.h5";
  write_checkpoint(ckpt, config, weights);

  const Input plain = random_tokens(2, 48, static_cast<int>(config.vocab_size), 202);
  const Input packed = packed_input(static_cast<int>(config.vocab_size), 303);
  const fs::path plain_path = dir / "plain.h5", packed_path = dir / "packed.h5";
  write_input(plain_path, plain);
  write_input(packed_path, packed);
  const References plain_ref = references(config, weights, plain), packed_ref = references(config, weights, packed);
  // The references themselves: a loss near log(vocab) but not equal (the model is not trivial),
  // and the fp32 single-process model close to fp64 (a broken fp32 path would be far off).
  INFO("plain loss fp64 " << plain_ref.fp64.loss << ", packed loss fp64 " << packed_ref.fp64.loss);
  CHECK(std::fabs(plain_ref.fp64.loss - plain_ref.fp32.loss) <= 1e-4 * plain_ref.fp64.loss);
  CHECK(std::fabs(packed_ref.fp64.loss - packed_ref.fp32.loss) <= 1e-4 * packed_ref.fp64.loss);
  CHECK(std::fabs(plain_ref.fp64.loss - packed_ref.fp64.loss) > 1e-3);

  for (const Case& c : kPlainCases) {
    INFO(describe(c, "plain"));
    check_forward_run(dir, c.np, ckpt, plain_path, config, plain, plain_ref, c.layout, c.backward, c.block_q, c.block_k);
  }
  for (const Case& c : kPackedCases) {
    INFO(describe(c, "packed"));
    check_forward_run(dir, c.np, ckpt, packed_path, config, packed, packed_ref, c.layout, c.backward, c.block_q,
                      c.block_k);
  }
}

// Every device the tools take (device::backend_names(): cpu, cpu-reference and, once the
// registry offers it to the tools, sim-gpu; ctest runs this program with
// RINGWORLD_SIM_GPU_DELAY_US=50, which the ranks inherit): the outputs within the rule above on
// each, at np 1 and 2 with --backward; where the kernels are the cpu backend's run on another
// kind of memory and execution (sim-gpu), the cpu's outputs bit for bit.
TEST_CASE("forward tool on every device the tools take", "[forward_tool][device]") {
  ScratchDir dir("forward_tool_devices");
  const LlamaConfig config = tiny_config();
  const UnitWeights weights = random_weights(config, 131);
  const fs::path ckpt = dir / "ckpt.h5", in_path = dir / "in.h5";
  write_checkpoint(ckpt, config, weights);
  const Input in = packed_input(static_cast<int>(config.vocab_size), 232);
  write_input(in_path, in);
  const References ref = references(config, weights, in);
  const std::vector<std::string> devices = rw::device::backend_names();
  REQUIRE(devices.size() >= 2);  // cpu and cpu-reference at least
  for (int np : {1, 2}) {
    ToolOutput on_cpu;
    check_forward_run(dir, np, ckpt, in_path, config, in, ref, "zigzag", true, 8, 8, nullptr, "cpu", &on_cpu);
    for (const std::string& device : devices) {
      if (device == "cpu") continue;
      INFO("--device " << device << ", np " << np);
      ToolOutput o;
      check_forward_run(dir, np, ckpt, in_path, config, in, ref, "zigzag", true, 8, 8, nullptr, device, &o);
      if (device != "sim-gpu") continue;  // other kernels: the rule above is the test
      CHECK(same_bits(o.logits, on_cpu.logits));
      CHECK(std::memcmp(&o.loss, &on_cpu.loss, sizeof(double)) == 0);
      for (const auto& [name, g] : o.grads) CHECK(same_bits(g, on_cpu.grads.at(name)));
    }
  }
}

// --precision bf16 (src/model/transformer.h) at np 1 and 2 with --backward: the loss, logits and
// every gradient within bf16's bound of fp64 (basis: tests/unit/test_device_model.cpp: D roundings
// of u = 2^-8 in series on the 2-layer model's longest path, D = 21 forward, 42 for gradients,
// times the tensor's scale), and the logits outside the fp32 rule (bf16 ran). Two runs, ~2 s.
TEST_CASE("forward tool --precision bf16 is within bf16's bound of fp64", "[forward_tool][bf16]") {
  ScratchDir dir("forward_tool_bf16");
  const LlamaConfig config = tiny_config();
  const UnitWeights weights = random_weights(config, 151);
  const fs::path ckpt = dir / "ckpt.h5", in_path = dir / "in.h5", out = dir / "out.h5";
  write_checkpoint(ckpt, config, weights);
  const Input in = packed_input(static_cast<int>(config.vocab_size), 252);
  write_input(in_path, in);
  const References ref = references(config, weights, in);
  const double u = 1.0 / 256, forward_roundings = 21, backward_roundings = 42;
  for (int np : {1, 2}) {
    INFO("np " << np);
    const RunResult r = run_tool(dir, np, forward_args(ckpt, in_path, out, "zigzag", true, 8, 8) + " --precision bf16");
    INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
    REQUIRE(r.exit_code == 0);
    const ToolOutput o = read_output(out, config, in, true);
    CHECK(std::fabs(o.loss - ref.fp64.loss) <= forward_roundings * u * std::fabs(ref.fp64.loss));
    const double logits_err = max_abs_error(o.logits, ref.fp64.logits);
    CHECK(logits_err <= forward_roundings * u * max_abs(ref.fp64.logits));
    CHECK(logits_err > 2 * max_abs_error(ref.fp32.logits, ref.fp64.logits) + 8 * FLT_EPSILON * max_abs(ref.fp64.logits));
    for (const auto& [name, g] : o.grads) {
      INFO("grad " << name);
      CHECK(max_abs_error(g, ref.fp64.grads.at(name)) <= backward_roundings * u * max_abs(ref.fp64.grads.at(name)));
    }
    fs::remove(out);
  }
}

TEST_CASE("forward tool is bit-for-bit repeatable", "[forward_tool]") {
  ScratchDir dir("forward_tool_repeat");
  const LlamaConfig config = tiny_config();
  const UnitWeights weights = random_weights(config, 111);
  const fs::path ckpt = dir / "ckpt.h5", in_path = dir / "in.h5", out1 = dir / "out1.h5", out2 = dir / "out2.h5";
  write_checkpoint(ckpt, config, weights);
  const Input in = packed_input(static_cast<int>(config.vocab_size), 222);
  write_input(in_path, in);
  for (const fs::path& out : {out1, out2}) {
    const RunResult r = run_tool(dir, 2, forward_args(ckpt, in_path, out, "zigzag", true, 8, 8));
    INFO("command: " << r.command << "\nstderr:\n" << r.stderr_text);
    REQUIRE(r.exit_code == 0);
  }
  const ToolOutput a = read_output(out1, config, in, true), b = read_output(out2, config, in, true);
  CHECK(same_bits(a.logits, b.logits));
  CHECK(std::memcmp(&a.loss, &b.loss, sizeof(double)) == 0);
  REQUIRE(a.grads.size() == b.grads.size());
  for (const auto& [name, g] : a.grads) {
    INFO("grads/" << name);
    CHECK(same_bits(g, b.grads.at(name)));
  }
}

TEST_CASE("train --save-params files feed forward and train --init-params", "[forward_tool]") {
  ScratchDir dir("forward_tool_train");
  const LlamaConfig config = tiny_config();
  const fs::path params = dir / "P.h5";

  // 1. Three steps of training on 2 ranks, parameters saved.
  {
    const RunResult r = run_tool(dir, 2,
                                 std::string("train --steps 3 --seq-len 32") + kTrainModel + " --save-params " +
                                     quoted(params),
                                 120);
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    REQUIRE(fs::exists(params));
    CHECK_FALSE(fs::exists(params.string() + ".tmp"));
  }

  // 2. The file describes itself: every config attribute, and the step count.
  {
    INFO("reading " << params);
    const H5File f(params);
    REQUIRE(f.ok());
    for (const auto& field : rw::model::config_fields()) {
      INFO("attribute " << field.name);
      if (!field.written(config)) {  // an optional field at 0 (a text model's vision_vocab_size): absent
        CHECK(H5Aexists(f.id(), field.name) == 0);
        continue;
      }
      if (field.integer) CHECK(get_i64(f.id(), field.name) == config.*field.integer);
      else CHECK(get_f64(f.id(), field.name) == config.*field.real);
    }
    CHECK(get_f64(f.id(), "step") == 3);
  }
  const UnitWeights trained = read_param_file(params, config);
  {
    // Training moved the weights away from the initialisation (train's default --seed 1).
    const auto units = rw::model::parameter_units(config);
    double moved = 0;
    for (std::size_t u = 0; u < units.size(); ++u)
      for (int64_t i = 0; i < units[u].count; ++i)
        moved = std::max(moved, std::fabs(double(trained[u][i]) -
                                          rw::model::initial_value(1, static_cast<int>(u), units[u], i)));
    CHECK(moved > 1e-5);
  }

  // 3. forward accepts it at np 1 and np 3; both within the rule of the fp64 model on the
  // file's weights (hence of each other).
  const Input in = random_tokens(2, 48, static_cast<int>(config.vocab_size), 404);
  const fs::path in_path = dir / "in.h5";
  write_input(in_path, in);
  const References ref = references(config, trained, in);
  double loss_np1 = 0, loss_np3 = 0;
  {
    INFO("forward of the trained parameters, np 1");
    check_forward_run(dir, 1, params, in_path, config, in, ref, "zigzag", true, 0, 0, &loss_np1);
  }
  {
    INFO("forward of the trained parameters, np 3");
    check_forward_run(dir, 3, params, in_path, config, in, ref, "zigzag", true, 8, 8, &loss_np3);
  }
  {
    // |np1 - np3| <= |np1 - fp64| + |np3 - fp64| <= twice the rule's bound.
    const double bound = 2 * (2 * std::fabs(ref.fp32.loss - ref.fp64.loss) + 8 * FLT_EPSILON * std::fabs(ref.fp64.loss));
    INFO("loss np 1 " << loss_np1 << ", np 3 " << loss_np3 << ", bound " << bound);
    CHECK(std::fabs(loss_np1 - loss_np3) <= bound);
  }

  // 4. train --init-params continues from the file: its first step's loss (before any update)
  // is the loss of the file's weights on the synthetic stream's first batch, which forward
  // computes from the same batch written to a token file.
  rw::data::SyntheticOptions so;
  so.seed = 1;  // train's default --seed
  so.seq_len = 32;
  so.global_sequences = 1;
  so.vocab_size = static_cast<int>(config.vocab_size);
  so.packed = true;  // train's default --data synthetic
  const rw::data::GlobalBatch g = rw::data::synthetic_global_batch(so, 0);
  Input first;
  first.batch = g.n_sequences;
  first.seq = g.seq_len;
  first.tokens = g.tokens;
  first.targets = g.targets;
  first.loss_weights = g.loss_weights;
  first.segment_ids = g.segment_ids;
  first.positions = g.positions;
  const fs::path first_path = dir / "first.h5";
  write_input(first_path, first);
  const References first_ref = references(config, trained, first);
  double forward_loss = 0;
  {
    INFO("forward of the trained parameters on the first synthetic batch, np 2");
    check_forward_run(dir, 2, params, first_path, config, first, first_ref, "zigzag", false, 0, 0, &forward_loss);
  }
  const fs::path metrics = dir / "metrics.jsonl", params2 = dir / "P2.h5";
  {
    const RunResult r = run_tool(dir, 2,
                                 std::string("train --steps 2 --seq-len 32") + kTrainModel + " --init-params " +
                                     quoted(params) + " --metrics " + quoted(metrics) + " --save-params " +
                                     quoted(params2),
                                 120);
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(params2));
  }
  const std::string m = slurp(metrics);
  const std::size_t at = m.find("\"loss\":");
  REQUIRE(at != std::string::npos);
  const double train_loss = std::strtod(m.c_str() + at + 7, nullptr);
  // Basis: the metrics file prints 6 significant digits (relative rounding <= 5e-6), plus the
  // rule's bound for each of the two fp32 runs against fp64.
  const double bound = 5e-6 * std::fabs(forward_loss) +
                       2 * (2 * std::fabs(first_ref.fp32.loss - first_ref.fp64.loss) +
                            8 * FLT_EPSILON * std::fabs(first_ref.fp64.loss));
  INFO("train --init-params first loss " << train_loss << ", forward loss " << forward_loss << ", bound " << bound
                                         << "\nmetrics:\n" << m);
  CHECK(std::fabs(train_loss - forward_loss) <= bound);
}

TEST_CASE("forward and train reject bad input cleanly on every rank", "[forward_tool]") {
  ScratchDir dir("forward_tool_bad");
  const LlamaConfig config = tiny_config();
  const UnitWeights weights = random_weights(config, 131);
  const fs::path out = dir / "out.h5", ckpt = dir / "ckpt.h5", in_path = dir / "in.h5";
  write_checkpoint(ckpt, config, weights);
  const Input good = random_tokens(2, 48, static_cast<int>(config.vocab_size), 505);
  write_input(in_path, good);
  auto forward_cmd = [&](const fs::path& c, const fs::path& i) {
    return "forward --checkpoint " + quoted(c) + " --input " + quoted(i) + " --output " + quoted(out);
  };
  // `forward` of checkpoint c on input i, on np ranks, fails cleanly, naming `needle`.
  auto expect_rejected = [&](int np, const fs::path& c, const fs::path& i, const std::string& needle) {
    const RunResult r = run_tool(dir, np, forward_cmd(c, i));
    expect_clean_failure(r, out, needle);
    return r;
  };
  // dir / name: the checkpoint of `weights`, damaged as `edit` says.
  auto checkpoint_with = [&](const std::string& name, const std::function<void(CheckpointEdits&)>& edit) {
    CheckpointEdits e;
    edit(e);
    write_checkpoint(dir / name, config, weights, e);
    return dir / name;
  };
  // dir / name: the input `good`, changed by `edit`.
  auto input_with = [&](const std::string& name, const std::function<void(Input&)>& edit) {
    Input bad = good;
    edit(bad);
    write_input(dir / name, bad);
    return dir / name;
  };

  SECTION("missing checkpoint file") { expect_rejected(2, dir / "nope.h5", in_path, "nope.h5"); }
  SECTION("checkpoint missing a parameter") {
    const fs::path c =
        checkpoint_with("missing_param.h5", [](CheckpointEdits& e) { e.skip_tensor = "model.layers.1.mlp.up_proj.weight"; });
    expect_rejected(2, c, in_path, "model.layers.1.mlp.up_proj.weight");
  }
  SECTION("parameter with the wrong shape") {
    const fs::path c = checkpoint_with("wrong_shape.h5", [](CheckpointEdits& e) {
      e.reshape_tensor = "model.layers.0.self_attn.k_proj.weight";
      e.new_shape = {16, 16};  // the config needs [kv_width 8, hidden 16]
    });
    const RunResult r = expect_rejected(2, c, in_path, "model.layers.0.self_attn.k_proj.weight");
    CHECK(r.stderr_text.find("[16, 16]") != std::string::npos);
  }
  SECTION("extra unknown parameter") {
    const fs::path c = checkpoint_with("extra_param.h5", [](CheckpointEdits& e) {
      e.extra_tensor = "model.layers.2.input_layernorm.weight";  // a third layer the config lacks
    });
    expect_rejected(2, c, in_path, "model.layers.2.input_layernorm.weight");
  }
  SECTION("missing config attribute") {
    const fs::path c = checkpoint_with("no_rope_theta.h5", [](CheckpointEdits& e) { e.skip_attribute = "rope_theta"; });
    expect_rejected(2, c, in_path, "rope_theta");
  }
  SECTION("token id equal to the vocabulary size") {
    const fs::path i = input_with("token_37.h5", [&](Input& bad) {
      // Row 1, token 0 (rank 0): no token's target, so the token check is the first to fire.
      bad.tokens[48] = static_cast<int32_t>(config.vocab_size);
    });
    expect_rejected(2, ckpt, i, "token id 37");
  }
  SECTION("negative token id") {
    const fs::path i = input_with("token_neg.h5", [](Input& bad) { bad.tokens[3] = -3; });
    expect_rejected(2, ckpt, i, "token id -3");
  }
  SECTION("target id outside the vocabulary") {
    const fs::path i = input_with("target_40.h5", [&](Input& bad) {
      bad.targets = whole_batch(good).targets;
      bad.targets[20] = 40;
    });
    expect_rejected(2, ckpt, i, "target id 40");
  }
  SECTION("tokens stored as float32") {
    const fs::path i = dir / "tokens_f32.h5";
    H5Writer(i).f32("tokens", {2, 48}, std::vector<float>(good.tokens.begin(), good.tokens.end()));
    const RunResult r = expect_rejected(2, ckpt, i, "'tokens'");
    CHECK(r.stderr_text.find("float32") != std::string::npos);
  }
  SECTION("tokens of rank 3") {
    const fs::path i = dir / "tokens_rank3.h5";
    H5Writer(i).i32("tokens", {2, 48, 1}, good.tokens);
    expect_rejected(2, ckpt, i, "'tokens'");
  }
  SECTION("seq 50 over 4 ranks") {
    const fs::path i = dir / "seq50.h5";
    write_input(i, random_tokens(2, 50, static_cast<int>(config.vocab_size), 606));
    expect_rejected(4, ckpt, i, "sequence length 50");
  }
  SECTION("train with --dp 3 on 2 ranks") {
    expect_clean_failure(run_tool(dir, 2,
                                  std::string("train --dp 3 --steps 1 --seq-len 32") + kTrainModel +
                                      " --save-params " + quoted(out)),
                         out, "--dp");
  }
  SECTION("train with a config file holding an unknown option") {
    const fs::path ini = dir / "run.ini";
    std::ofstream(ini) << "seq-len = 32\nsteps = 1\nbogus_option = 3\n";
    const RunResult r = run_tool(dir, 2, std::string("train --config ") + quoted(ini) + kTrainModel +
                                             " --save-params " + quoted(out));
    expect_clean_failure(r, out, "bogus_option");
    CHECK(r.stderr_text.find("run.ini") != std::string::npos);
  }
  SECTION("train of a model whose parameters and optimizer cannot fit in this node's memory") {
    // 7B parameters x 16 bytes over 2 ranks is about 50 GiB per rank: refused before any work,
    // on every rank (the machines this runs on have far less).
    const RunResult r = run_tool(dir, 2, "train --model 7b --steps 1 --seq-len 32 --save-params " + quoted(out));
    expect_clean_failure(r, out, "at rest");
  }
  SECTION("train --init-params of a different model shape") {
    // ckpt holds hidden 16; the run configures hidden 32.
    const RunResult r =
        run_tool(dir, 2,
                 "train --steps 1 --seq-len 32 --hidden_size 32 --intermediate_size 40 --num_hidden_layers 2"
                 " --num_attention_heads 4 --num_key_value_heads 2 --vocab_size 37 --init-params " +
                     quoted(ckpt) + " --save-params " + quoted(out));
    expect_clean_failure(r, out, "--init-params");
  }
}
