// test_device_model.cpp: the device model (src/model/transformer.h) and the device optimizer
// (src/train/optimizer.h) on every backend available here (cpu, cpu-reference, sim-gpu; cuda
// and hip when they register), in one process: whole parameters in device memory and attention
// over the process's own tokens (tests/device_model_support.h), no MPI. sim-gpu runs with random
// delays before every operation (ctest sets RINGWORLD_SIM_GPU_DELAY_US) and faults on any host
// access to device memory, so these runs prove the model, its workspaces and the optimizer keep
// to device memory and order their work on the compute stream.
//
//  - Against the fp64 reference model (ReferenceTransformer<double> on the same fp32 weights,
//    widened): the loss, the logits, each token's loss and every parameter gradient, with a
//    GQA model, packed documents, ignored targets, non-uniform loss weights and ragged FFN and
//    loss chunks. Tolerance: tests/test_support.h's rule, with the plain single-process fp32 run
//    (ReferenceTransformer<float>, host GEMMs on the cpu backend) as the naive fp32 result: at
//    most twice its error plus 8 ulps of the tensor's scale.
//  - sim-gpu gives the cpu backend's bits (the same kernels in the same order): loss, logits
//    and gradients.
//  - A short training run (two micro-batches per step, the gradient norm, clipping, AdamW, a
//    validation forward with per-token losses between steps) lowers the loss, repeats bit for
//    bit, and gives the same bits on sim-gpu as on cpu; its workspaces are allocated during the
//    first step and the first validation and never again, and on sim-gpu no release ever waits
//    for pending work.
//  - The prefetch contract FSDP relies on: before computing a unit the model names the next
//    unit it will gather, and gathers exactly that one next.
//  - The GPU kernels under the emulation (cuda-emu, hip-emu, where built; cuda and hip on a
//    GPU) take the first test (against fp64) like every backend, and a training run of their own: bit for bit run to
//    run, the loss going down, workspaces allocated once (their bits differ from cpu's: their
//    reductions add in fixed orders of their own).
// About 2 s in all without the emulated backends (sim-gpu with 50 us delays is most of it).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "device/sim/sim_gpu_backend.h"
#include "src/attention/attention_ops.h"
#include "src/data/global_batch.h"
#include "src/data/synthetic_source.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/reference_transformer.h"
#include "src/model/transformer.h"
#include "src/train/lwm_loss.h"
#include "src/train/optimizer.h"
#include "tests/device_model_support.h"
#include "tests/test_support.h"

using namespace rw;

namespace {

model::LlamaConfig config() { return test::tiny_llama(29, 16, 24, 2, 4, 2, 10000); }

model::TransformerOptions chunks() {
  model::TransformerOptions o;
  o.ffn_chunk_tokens = 36;   // 96 tokens: 36 + 36 + 24
  o.loss_chunk_tokens = 40;  // 40 + 40 + 16
  return o;
}

// 4 packed sequences of 24 tokens, one ignored target and a few loss weights changed.
data::LocalBatch batch_of(uint64_t seed, int sequences = 4) {
  data::SyntheticOptions so;
  so.seed = seed;
  so.seq_len = 24;
  so.global_sequences = sequences;
  so.vocab_size = 29;
  so.packed = true;
  data::LocalBatch b = data::slice_global_batch(data::synthetic_global_batch(so, 0), 1, 0, 1, 0, Layout::contiguous);
  b.targets[5] = -1;
  b.loss_weights[7] = 0.f;
  b.loss_weights[30] = 2.5f;
  b.loss_weights[61] = 0.25f;
  return b;
}

double weight_sum(const data::LocalBatch& b) {
  double s = 0;
  for (std::size_t i = 0; i < b.targets.size(); ++i)
    if (b.targets[i] >= 0) s += b.loss_weights[i];
  return s;
}

struct ModelRun {
  double loss = 0, loss_again = 0;
  std::vector<double> logits, token_losses;
  std::vector<std::vector<double>> grads;  // per unit
};

// The device model on `backend`: forward with logits, forward with token losses, forward+backward.
ModelRun run_device(device::Backend& backend, const std::vector<std::vector<float>>& weights,
                    const data::LocalBatch& batch, double scale, const model::LlamaConfig& c = config(),
                    model::Precision precision = model::Precision::fp32) {
  const device::ExecContext exec = device::ExecContext::on_default_stream(backend);
  test::DeviceLocalParams params(exec, c, weights);
  test::LocalAttentionOp attention(exec, true, {8, 8});
  model::TransformerOptions options = chunks();
  options.precision = precision;
  model::Transformer model(c, params, attention, exec, options);
  ModelRun r;
  std::vector<float> logits(static_cast<std::size_t>(batch.token_count()) * c.total_vocab_size());
  r.loss = model.forward(batch, logits.data());
  r.logits.assign(logits.begin(), logits.end());
  r.token_losses.resize(static_cast<std::size_t>(batch.token_count()));
  r.loss_again = model.forward(batch, nullptr, r.token_losses.data());
  params.zero_grads();
  model.forward_backward(batch, scale);
  for (const auto& g : params.grads) {
    const std::vector<float> host = test::DeviceLocalParams::read(g);
    r.grads.emplace_back(host.begin(), host.end());
  }
  return r;
}

// The reference model in T on the same weights (host memory; fp32 GEMMs through the cpu backend).
template <class T>
ModelRun run_reference(const std::vector<std::vector<float>>& weights, const data::LocalBatch& batch, double scale,
                       model::MatMul<T>& matmul, const model::LlamaConfig& c = config()) {
  model::LocalParams<T> params(c, 0);
  for (std::size_t u = 0; u < weights.size(); ++u) params.weights[u].assign(weights[u].begin(), weights[u].end());
  ReferenceAttentionOp<T> attention(true);
  model::ReferenceTransformer<T> model(c, params, attention, matmul, chunks());
  ModelRun r;
  std::vector<T> logits(static_cast<std::size_t>(batch.token_count()) * c.total_vocab_size());
  r.loss = model.forward(batch, logits.data());
  r.logits.assign(logits.begin(), logits.end());
  r.token_losses.resize(static_cast<std::size_t>(batch.token_count()));
  r.loss_again = model.forward(batch, nullptr, r.token_losses.data());
  model.forward_backward(batch, scale);
  for (const auto& g : params.grads) r.grads.emplace_back(g.begin(), g.end());
  return r;
}

// Random weights larger than the 0.02 initialisation (every path carries signal), norms near 1.
std::vector<std::vector<float>> random_weights(uint64_t seed, const model::LlamaConfig& c = config()) {
  const auto units = model::parameter_units(c);
  std::vector<std::vector<float>> w(units.size());
  for (std::size_t u = 0; u < units.size(); ++u) {
    w[u] = test::random_vector(static_cast<std::size_t>(units[u].count), seed + u, 0.4f);
    for (std::size_t t = 0; t < units[u].tensors.size(); ++t)
      if (units[u].tensors[t].is_norm)
        for (int64_t i = 0; i < units[u].tensors[t].count(); ++i) w[u][units[u].offsets[t] + i] += 1.f;
  }
  return w;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace

TEST_CASE("the device model matches the fp64 reference on every backend; sim-gpu gives cpu's bits",
          "[device_model]") {
  const auto weights = random_weights(41);
  const data::LocalBatch batch = batch_of(7);
  const double scale = 1.0 / weight_sum(batch);
  model::CpuMatMulDouble matmul64;
  auto cpu = device::create_backend("cpu");
  model::BackendMatMul matmul32(*cpu);
  const ModelRun gold = run_reference<double>(weights, batch, scale, matmul64);
  const ModelRun naive = run_reference<float>(weights, batch, scale, matmul32);
  // The references themselves: fp32 close to fp64 (a broken fp32 path would be far off).
  REQUIRE(std::fabs(naive.loss - gold.loss) <= 1e-4 * gold.loss);
  std::vector<ModelRun> runs;
  const std::vector<std::string> names = device::available_backend_names();
  REQUIRE(std::find(names.begin(), names.end(), "sim-gpu") != names.end());
  for (const std::string& name : names) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    const ModelRun r = run_device(*backend, weights, batch, scale);
    CHECK(std::fabs(r.loss - gold.loss) <= 2 * std::fabs(naive.loss - gold.loss) + 8 * FLT_EPSILON * gold.loss);
    CHECK(test::max_abs_error(r.logits, gold.logits) <= test::tolerance(naive.logits, gold.logits));
    CHECK(test::max_abs_error(r.token_losses, gold.token_losses) <= test::tolerance(naive.token_losses, gold.token_losses));
    CHECK(r.token_losses[5] == 0.0);  // ignored target
    CHECK(r.token_losses[7] == 0.0);  // zero weight
    double sum = 0;
    for (double x : r.token_losses) sum += x;
    CHECK(r.loss_again == sum);  // the per-token losses' sum in token order
    for (std::size_t u = 0; u < gold.grads.size(); ++u) {
      INFO("unit " << u);
      CHECK(test::max_abs_error(r.grads[u], gold.grads[u]) <= test::tolerance(naive.grads[u], gold.grads[u]));
    }
    if (name == "cpu" || name == "sim-gpu") runs.push_back(r);
  }
  REQUIRE(runs.size() == 2);
  CHECK(std::memcmp(&runs[0].loss, &runs[1].loss, sizeof(double)) == 0);
  CHECK(same_bits(runs[0].logits, runs[1].logits));
  CHECK(same_bits(runs[0].token_losses, runs[1].token_losses));
  for (std::size_t u = 0; u < runs[0].grads.size(); ++u) CHECK(same_bits(runs[0].grads[u], runs[1].grads[u]));
}

// bf16 precision (transformer.h): bf16 weights copy, GEMM and attention inputs; fp32 residual,
// statistics, accumulators and loss. Tolerance basis: bf16 keeps 8 significant bits, so each
// rounding to bf16 (nearest even) errs by at most u = 2^-8 relative. A tensor computed through
// D such roundings in series errs, to first order, by at most D u times its own scale when the
// ops between them do not amplify relative errors (the RMSNorms rescale every branch input to
// ~1, SiLU's and softmax's derivatives are below 1.1); counted on the longest path of this
// 2-layer model: per layer 9 (n1; q/k/v and their weights; the o_proj weight; n2; g/u and their
// weights; a; the down_proj weight), plus the embedding table and the head's nf and lm_head
// weight: D = 9 x 2 + 3 = 21 for the forward (loss, logits, per-token losses); the backward
// rounds as many again on its way down (dlogits, dout, da, dg/du and the weights they meet), so
// D = 42 for the gradients. Bound: max|R - G| <= D u max|G|. The fp32 rule of the first test
// (twice the naive fp32 error plus 8 ulps) is ~2^-16 of the scale: a bf16 run must fail it,
// which proves the bf16 path ran. Measured on cpu: err / (D u max|G|) = 0.25 for the logits,
// 0.04-0.16 for the gradients. The GPU kernels under emulation (cuda-emu, hip-emu) take the same
// bounds. About 3 s with the emulated backends.
namespace {

constexpr double kBf16UnitRoundoff = 1.0 / 256;  // 2^-8
constexpr double kForwardRoundings = 9 * 2 + 3, kBackwardRoundings = 2 * kForwardRoundings;

double bf16_tolerance(const std::vector<double>& gold, double roundings) {
  return roundings * kBf16UnitRoundoff * test::max_abs(gold);
}

}  // namespace

TEST_CASE("bf16 precision: the device model is within bf16's bound of fp64, and not within fp32's",
          "[device_model][bf16]") {
  const auto weights = random_weights(41);
  const data::LocalBatch batch = batch_of(7);
  const double scale = 1.0 / weight_sum(batch);
  model::CpuMatMulDouble matmul64;
  auto cpu = device::create_backend("cpu");
  model::BackendMatMul matmul32(*cpu);
  const ModelRun gold = run_reference<double>(weights, batch, scale, matmul64);
  const ModelRun naive = run_reference<float>(weights, batch, scale, matmul32);
  std::vector<ModelRun> runs;
  for (const std::string name : {"cpu", "sim-gpu"}) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    const ModelRun r = run_device(*backend, weights, batch, scale, config(), model::Precision::bf16);
    const double loss_tol = kForwardRoundings * kBf16UnitRoundoff * gold.loss;
    INFO("loss error " << std::fabs(r.loss - gold.loss) << " (bound " << loss_tol << ")");
    CHECK(std::fabs(r.loss - gold.loss) <= loss_tol);
    CHECK(std::fabs(r.loss - gold.loss) > 2 * std::fabs(naive.loss - gold.loss) + 8 * FLT_EPSILON * gold.loss);
    const double logits_err = test::max_abs_error(r.logits, gold.logits);
    INFO("logits error " << logits_err << ", bf16 bound " << bf16_tolerance(gold.logits, kForwardRoundings)
                         << ", fp32 bound " << test::tolerance(naive.logits, gold.logits));
    CHECK(logits_err <= bf16_tolerance(gold.logits, kForwardRoundings));
    CHECK(logits_err > test::tolerance(naive.logits, gold.logits));  // bf16 ran
    CHECK(test::max_abs_error(r.token_losses, gold.token_losses) <=
          bf16_tolerance(gold.token_losses, kForwardRoundings));
    CHECK(r.token_losses[5] == 0.0);
    CHECK(r.token_losses[7] == 0.0);
    for (std::size_t u = 0; u < gold.grads.size(); ++u) {
      const double err = test::max_abs_error(r.grads[u], gold.grads[u]);
      INFO("unit " << u << " gradient error " << err << ", bf16 bound "
                   << bf16_tolerance(gold.grads[u], kBackwardRoundings) << ", fp32 bound "
                   << test::tolerance(naive.grads[u], gold.grads[u]));
      CHECK(err <= bf16_tolerance(gold.grads[u], kBackwardRoundings));
      CHECK(err > test::tolerance(naive.grads[u], gold.grads[u]));
    }
    runs.push_back(r);
  }
  // sim-gpu runs cpu's kernels: cpu's bits in bf16 too.
  CHECK(std::memcmp(&runs[0].loss, &runs[1].loss, sizeof(double)) == 0);
  CHECK(same_bits(runs[0].logits, runs[1].logits));
  for (std::size_t u = 0; u < runs[0].grads.size(); ++u) CHECK(same_bits(runs[0].grads[u], runs[1].grads[u]));
  // fp32 stays fp32: the default run is not the bf16 run.
  const ModelRun fp32 = run_device(*cpu, weights, batch, scale);
  CHECK_FALSE(same_bits(fp32.logits, runs[0].logits));
  // The GPU kernels under the emulation (where built): the same bound (their own bits).
  const std::vector<std::string> names = device::available_backend_names();
  for (const char* name : {"cuda-emu", "hip-emu"}) {
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    const ModelRun r = run_device(*backend, weights, batch, scale, config(), model::Precision::bf16);
    CHECK(test::max_abs_error(r.logits, gold.logits) <= bf16_tolerance(gold.logits, kForwardRoundings));
    CHECK(test::max_abs_error(r.logits, gold.logits) > test::tolerance(naive.logits, gold.logits));
    for (std::size_t u = 0; u < gold.grads.size(); ++u)
      CHECK(test::max_abs_error(r.grads[u], gold.grads[u]) <= bf16_tolerance(gold.grads[u], kBackwardRoundings));
  }
}

namespace {

// LWM's dual vocabulary on the tiny model: 12 vision ids (29..40) after the 29 text ids.
model::LlamaConfig vision_config() {
  model::LlamaConfig c = config();
  c.vision_vocab_size = 12;
  return c;
}

bool is_vision_block(int sequence, int position) {
  return (sequence == 0 && position >= 6 && position < 16) || (sequence == 1 && position >= 2 && position < 10) ||
         (sequence == 2 && position >= 12);
}

// batch_of's sequences with a block of vision ids in three of the four (text -> vision,
// vision -> text and vision at the end), the targets following the tokens: inputs and targets
// of both kinds, and positions whose input and target differ in kind both ways.
data::LocalBatch vision_batch_of(uint64_t seed) {
  data::LocalBatch b = batch_of(seed);
  const int length = b.n_local;
  const int64_t n = b.token_count();
  // One rank, contiguous layout: a target inside a sequence is the next token (or ignored).
  for (int64_t i = 0; i < n; ++i)
    if (b.targets[i] >= 0 && (i + 1) % length != 0) REQUIRE(b.targets[i] == b.tokens[i + 1]);
  for (int64_t i = 0; i < n; ++i)
    if (is_vision_block(static_cast<int>(i / length), static_cast<int>(i % length)))
      b.tokens[i] = 29 + (b.tokens[i] * 5 + static_cast<int32_t>(i)) % 12;
  for (int64_t i = 0; i < n; ++i)
    if (b.targets[i] >= 0 && (i + 1) % length != 0) b.targets[i] = b.tokens[i + 1];
  return b;
}

// A row's cross-entropy with the head its target picks (written out here, in fp64).
double routed_ce(const double* row, int32_t target, int64_t text_vocab, int64_t total_vocab) {
  const int64_t lo = target >= text_vocab ? text_vocab : 0, hi = target >= text_vocab ? total_vocab : text_vocab;
  double mx = -1e300, sum = 0;
  for (int64_t j = lo; j < hi; ++j) mx = std::max(mx, row[j]);
  for (int64_t j = lo; j < hi; ++j) sum += std::exp(row[j] - mx);
  return mx + std::log(sum) - row[target];
}

bool row_is_zero(const std::vector<double>& g, int64_t row, int64_t width) {
  for (int64_t j = 0; j < width; ++j)
    if (g[static_cast<std::size_t>(row * width + j)] != 0.0) return false;
  return true;
}

}  // namespace

// The vision mask of LWM (id >= vocab_size) routes each position: its input's id picks the row
// of embed_tokens ‖ embed_vision, its target's id the head (lm_head or vision_head) whose columns
// alone its cross-entropy is over. Tolerances as in the first test (the naive fp32 run's error,
// twice, plus 8 ulps); the routing checks are exact (zeros, unchanged bits).
TEST_CASE("a vision model matches the fp64 reference on every backend; input picks the table, target the head",
          "[device_model][vision]") {
  const model::LlamaConfig vc = vision_config();
  const int64_t text_vocab = vc.vocab_size, total = vc.total_vocab_size(), h = vc.hidden_size;
  const auto weights = random_weights(43, vc);
  const data::LocalBatch batch = vision_batch_of(7);
  const int64_t n = batch.token_count();
  int vision_targets = 0, text_targets = 0, text_to_vision = 0, vision_to_text = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (batch.targets[i] < 0 || batch.loss_weights[i] == 0.f) continue;
    const bool in_vision = batch.tokens[i] >= text_vocab, out_vision = batch.targets[i] >= text_vocab;
    (out_vision ? vision_targets : text_targets)++;
    if (in_vision != out_vision) (out_vision ? text_to_vision : vision_to_text)++;
  }
  REQUIRE(vision_targets >= 10);
  REQUIRE(text_targets >= 10);
  REQUIRE(text_to_vision >= 2);
  REQUIRE(vision_to_text >= 1);

  const double scale = 1.0 / weight_sum(batch);
  model::CpuMatMulDouble matmul64;
  auto cpu = device::create_backend("cpu");
  model::BackendMatMul matmul32(*cpu);
  const ModelRun gold = run_reference<double>(weights, batch, scale, matmul64, vc);
  const ModelRun naive = run_reference<float>(weights, batch, scale, matmul32, vc);
  REQUIRE(std::fabs(naive.loss - gold.loss) <= 1e-4 * gold.loss);
  // The reference's loss per token is the routed cross-entropy of its own logits (the formula
  // here, not the host op): fp64 against fp64, a few ulps of the loss.
  for (int64_t i = 0; i < n; ++i) {
    INFO("token " << i << " input " << batch.tokens[i] << " target " << batch.targets[i]);
    const double want = batch.targets[i] < 0 ? 0.0
                                              : batch.loss_weights[i] * routed_ce(gold.logits.data() + i * total,
                                                                                  batch.targets[i], text_vocab, total);
    CHECK(std::fabs(gold.token_losses[i] - want) <= 1e-12 * (1 + std::fabs(want)));
  }
  for (const std::string& name : device::available_backend_names()) {
    INFO("backend " << name);
    auto backend = device::create_backend(name);
    const ModelRun r = run_device(*backend, weights, batch, scale, vc);
    CHECK(std::fabs(r.loss - gold.loss) <= 2 * std::fabs(naive.loss - gold.loss) + 8 * FLT_EPSILON * gold.loss);
    CHECK(test::max_abs_error(r.logits, gold.logits) <= test::tolerance(naive.logits, gold.logits));
    CHECK(test::max_abs_error(r.token_losses, gold.token_losses) <= test::tolerance(naive.token_losses, gold.token_losses));
    for (std::size_t u = 0; u < gold.grads.size(); ++u) {
      INFO("unit " << u);
      CHECK(test::max_abs_error(r.grads[u], gold.grads[u]) <= test::tolerance(naive.grads[u], gold.grads[u]));
    }
  }

  // The input picks the table: only the rows of ids that occur as inputs get a gradient, and
  // rows of both tables do.
  std::vector<bool> occurs(static_cast<std::size_t>(total), false);
  for (int32_t t : batch.tokens) occurs[static_cast<std::size_t>(t)] = true;
  int text_rows = 0, vision_rows = 0;
  for (int64_t r = 0; r < total; ++r) {
    const bool moved = !row_is_zero(gold.grads[0], r, h);
    INFO("embedding row " << r);
    if (moved) CHECK(occurs[static_cast<std::size_t>(r)]);
    if (moved) (r < text_vocab ? text_rows : vision_rows)++;
  }
  CHECK(text_rows >= 5);
  CHECK(vision_rows >= 5);

  // The target picks the head: with only text targets weighted the vision head gets no
  // gradient, with only vision targets the text head none (exact zeros, fp64 and device).
  const std::vector<model::ParamUnit> units = model::parameter_units(vc);
  const model::ParamUnit& head = units.back();
  REQUIRE(head.tensors[2].name == "vision_head.weight");
  for (bool keep_vision : {false, true}) {
    INFO((keep_vision ? "vision targets only" : "text targets only"));
    data::LocalBatch one_kind = batch;
    for (int64_t i = 0; i < n; ++i)
      if ((one_kind.targets[i] >= text_vocab) != keep_vision) one_kind.loss_weights[i] = 0.f;
    const ModelRun g = run_reference<double>(weights, one_kind, 1.0, matmul64, vc);
    const ModelRun d = run_device(*cpu, weights, one_kind, 1.0, vc);
    const std::size_t silent = keep_vision ? 1 : 2, active = keep_vision ? 2 : 1;  // tensor of the head unit
    for (const ModelRun* run : {&g, &d}) {
      const std::vector<double>& grad = run->grads.back();
      bool silent_zero = true, active_zero = true;
      for (int64_t i = 0; i < head.tensors[silent].count(); ++i) silent_zero &= grad[head.offsets[silent] + i] == 0.0;
      for (int64_t i = 0; i < head.tensors[active].count(); ++i) active_zero &= grad[head.offsets[active] + i] == 0.0;
      CHECK(silent_zero);
      CHECK_FALSE(active_zero);
    }
  }
  // A text target's loss does not depend on the vision head (a changed vision_head leaves each
  // text target's loss bit for bit; the vision targets' losses move).
  std::vector<std::vector<float>> changed = weights;
  for (int64_t i = 0; i < head.tensors[2].count(); ++i) changed.back()[head.offsets[2] + i] += 0.5f;
  const ModelRun moved = run_reference<double>(changed, batch, scale, matmul64, vc);
  int vision_moved = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (batch.targets[i] < 0 || batch.loss_weights[i] == 0.f) continue;
    INFO("token " << i);
    if (batch.targets[i] < text_vocab) CHECK(moved.token_losses[i] == gold.token_losses[i]);
    else vision_moved += moved.token_losses[i] != gold.token_losses[i];
  }
  CHECK(vision_moved == vision_targets);
}

// LWM's loss, 0.5 x mean vision CE + 0.5 x mean text CE, through the ordinary weighted mean with
// each weight scaled by its kind (train/lwm_loss.h), against the kinds' means summed here from the
// fp64 reference's unscaled per-token losses. Basis: the scaled weights are rounded to fp32 once
// (relative 2^-24 each), so 1e-6 relative bounds the difference of the two fp64 sums.
TEST_CASE("LWM's loss: half the mean vision CE plus half the mean text CE, through scaled weights",
          "[device_model][vision]") {
  const model::LlamaConfig vc = vision_config();
  const auto weights = random_weights(47, vc);
  model::CpuMatMulDouble matmul64;
  const data::LocalBatch mixed = vision_batch_of(9);
  data::LocalBatch text_only_targets = mixed;  // the vision targets ignored: 0.5 x text mean
  for (int64_t i = 0; i < mixed.token_count(); ++i)
    if (mixed.targets[i] >= vc.vocab_size) text_only_targets.targets[i] = -1;
  for (const data::LocalBatch* b : {&mixed, static_cast<const data::LocalBatch*>(&text_only_targets)}) {
    const int64_t n = b->token_count();
    const ModelRun plain = run_reference<double>(weights, *b, 1.0, matmul64, vc);
    double loss_sum[2] = {0, 0}, weight[2] = {0, 0};
    for (int64_t i = 0; i < n; ++i) {
      if (b->targets[i] < 0) continue;
      const int k = b->targets[i] >= vc.vocab_size ? 1 : 0;
      loss_sum[k] += plain.token_losses[i];
      weight[k] += b->loss_weights[i];
    }
    const double want = (weight[1] > 0 ? 0.5 * loss_sum[1] / weight[1] : 0.0) + 0.5 * loss_sum[0] / weight[0];
    const std::array<double, 2> kinds = train::kind_weight_sums(*b, vc);
    CHECK(kinds[0] == weight[0]);
    CHECK(kinds[1] == weight[1]);
    CHECK(train::lwm_loss({loss_sum[0], loss_sum[1]}, kinds) == want);
    data::LocalBatch scaled = *b;
    train::apply_lwm_loss_weights(scaled, vc, kinds);
    std::vector<double> token_losses(static_cast<std::size_t>(n));
    model::LocalParams<double> params(vc, 0);
    for (std::size_t u = 0; u < weights.size(); ++u) params.weights[u].assign(weights[u].begin(), weights[u].end());
    ReferenceAttentionOp<double> attention(true);
    model::ReferenceTransformer<double> model(vc, params, attention, matmul64, chunks());
    const double got = model.forward(scaled, nullptr, token_losses.data()) / (kinds[0] + kinds[1]);
    INFO("vision weight " << weight[1] << ", text weight " << weight[0]);
    CHECK(std::fabs(got - want) <= 1e-6 * want);
    // Not the plain weighted mean (the kinds' weights differ), unless there is one kind.
    if (weight[1] > 0) CHECK(std::fabs(got - (loss_sum[0] + loss_sum[1]) / (weight[0] + weight[1])) > 1e-3 * want);
  }
  // A text-only model: weights untouched (the loss is the plain mean, bit for bit as before).
  data::LocalBatch text = batch_of(9);
  const std::vector<float> before = text.loss_weights;
  train::apply_lwm_loss_weights(text, config(), train::kind_weight_sums(text, config()));
  CHECK(std::memcmp(before.data(), text.loss_weights.data(), before.size() * sizeof(float)) == 0);
  CHECK(train::kind_weight_sums(text, config())[1] == 0.0);
}

namespace {

struct TrainingRun {
  std::vector<double> losses, val_losses;
  std::vector<std::vector<double>> weights;
  int64_t allocations_after_warmup = 0, allocations_at_end = 0;
  long release_waits_after_warmup = -1, release_waits_at_end = -1;
  std::size_t live_bytes_after_warmup = 0, live_bytes_at_end = 0;
};

// Steps of training in one process: two micro-batches per step (the trainer's accumulation),
// the global norm, clipping at 1, AdamW; a validation forward (per-token losses, a larger batch)
// after steps 1 and 3. Workspace counts are taken after step 2 (step 1 and the first validation
// allocate), then at the end.
TrainingRun train_on(const std::string& name, int steps, model::Precision precision = model::Precision::fp32) {
  auto backend = device::create_backend(name);
  auto* sim = dynamic_cast<device::SimGpuBackend*>(backend.get());
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  test::DeviceLocalParams params(exec, config(), 11);
  test::LocalAttentionOp attention(exec, true, {8, 8});
  model::TransformerOptions options = chunks();
  options.precision = precision;
  model::Transformer model(config(), params, attention, exec, options);
  train::Optimizer optimizer(exec);
  train::AdamWConfig adamw;
  const data::LocalBatch val = batch_of(1000, 6);
  TrainingRun r;
  for (int step = 1; step <= steps; ++step) {
    const data::LocalBatch batch = batch_of(100 + step);
    const double scale = 1.0 / weight_sum(batch);
    params.zero_grads();
    double loss = 0;
    for (int first = 0; first < batch.n_sequences; first += 2)
      loss += model.forward_backward(data::sequences_of(batch, first, 2), scale);
    r.losses.push_back(loss * scale);
    const double norm = std::sqrt(optimizer.grad_sum_squares(params.shards()));
    REQUIRE(optimizer.adamw_step(params.shards(), adamw, 3e-2, step, train::clip_multiplier(norm, 1.0)));
    if (step == 1 || step == 3) {
      std::vector<double> token_losses(static_cast<std::size_t>(val.token_count()));
      r.val_losses.push_back(model.forward(val, nullptr, token_losses.data()));
    }
    if (step == 2) {
      r.allocations_after_warmup = model.workspace_allocations();
      if (sim) r.release_waits_after_warmup = sim->stats().release_waits;
      if (sim) r.live_bytes_after_warmup = sim->stats().live_device_bytes;
    }
  }
  r.allocations_at_end = model.workspace_allocations();
  if (sim) r.release_waits_at_end = sim->stats().release_waits;
  if (sim) r.live_bytes_at_end = sim->stats().live_device_bytes;
  for (const auto& w : params.weights) {
    const std::vector<float> host = test::DeviceLocalParams::read(w);
    r.weights.emplace_back(host.begin(), host.end());
  }
  return r;
}

}  // namespace

TEST_CASE("training on the device lowers the loss, repeats bit for bit, gives cpu's bits on sim-gpu, allocates once",
          "[device_model]") {
  const int steps = 8;
  const TrainingRun cpu = train_on("cpu", steps), simulated = train_on("sim-gpu", steps),
                    simulated_again = train_on("sim-gpu", steps);
  INFO("loss " << cpu.losses.front() << " -> " << cpu.losses.back() << " (log vocab " << std::log(29.0) << ")");
  CHECK(std::fabs(cpu.losses.front() - std::log(29.0)) < 0.1);  // an untrained model is near uniform
  CHECK(cpu.losses.back() < 0.9 * cpu.losses.front());
  CHECK(cpu.val_losses[1] < cpu.val_losses[0]);
  for (const TrainingRun* other : {&simulated, &simulated_again}) {
    CHECK(same_bits(cpu.losses, other->losses));
    CHECK(same_bits(cpu.val_losses, other->val_losses));
    for (std::size_t u = 0; u < cpu.weights.size(); ++u) CHECK(same_bits(cpu.weights[u], other->weights[u]));
  }
  // Steady state: nothing allocated or released after the first step and validation.
  CHECK(cpu.allocations_after_warmup > 0);
  CHECK(cpu.allocations_at_end == cpu.allocations_after_warmup);
  CHECK(simulated.allocations_at_end == simulated.allocations_after_warmup);
  CHECK(simulated.live_bytes_at_end == simulated.live_bytes_after_warmup);
  CHECK(simulated.release_waits_after_warmup == 0);
  CHECK(simulated.release_waits_at_end == 0);
}

// bf16 training (8 steps, as above) follows fp32 training: each step's loss within the bf16
// forward bound of the first bf16 test (21 roundings of u = 2^-8: 8% of the loss; the weights
// themselves stay fp32 masters, and AdamW's normalised update moves each weight by at most ~lr
// whatever the gradient's rounding, so the runs stay within first-order distance of each other
// over a few steps), lowers the loss, repeats bit for bit and gives cpu's bits on sim-gpu.
// About 1 s.
TEST_CASE("bf16 training follows fp32 training, repeats bit for bit, gives cpu's bits on sim-gpu",
          "[device_model][bf16]") {
  const int steps = 8;
  const TrainingRun fp32 = train_on("cpu", steps), bf16 = train_on("cpu", steps, model::Precision::bf16),
                    simulated = train_on("sim-gpu", steps, model::Precision::bf16);
  for (int i = 0; i < steps; ++i) {
    INFO("step " << i + 1 << " loss fp32 " << fp32.losses[i] << " bf16 " << bf16.losses[i]);
    CHECK(std::fabs(bf16.losses[i] - fp32.losses[i]) <= kForwardRoundings * kBf16UnitRoundoff * fp32.losses[i]);
  }
  CHECK(bf16.losses.back() < 0.9 * bf16.losses.front());
  CHECK_FALSE(same_bits(bf16.losses, fp32.losses));
  CHECK(same_bits(bf16.losses, simulated.losses));
  CHECK(same_bits(bf16.val_losses, simulated.val_losses));
  for (std::size_t u = 0; u < bf16.weights.size(); ++u) CHECK(same_bits(bf16.weights[u], simulated.weights[u]));
  CHECK(bf16.allocations_at_end == bf16.allocations_after_warmup);
  CHECK(simulated.release_waits_at_end == 0);
}

// The GPU kernels (device/cuda/): under the SIMT emulation, behind sim-gpu's strict memory and
// streams (cuda-emu, hip-emu), and on a real GPU where one is present (cuda, hip): the same
// training, on each of these backends available here. Their reductions add in
// orders of their own (fixed blocks, warps in order), so the bits differ from cpu's; what must
// hold is the determinism a GPU run needs (bit for bit run to run, whatever the emulated
// schedule), the loss going down as on cpu, and the steady-state workspaces. The first step's
// loss (the forward on the initial weights) is compared with cpu's by the fp32 rule of the
// first test: its error against fp64 is at most a few times the naive fp32 run's, bounded here
// by 1e-4 relative (the references' own check above). Three steps: ~2 s per backend.
TEST_CASE("training on the GPU backends (emulated here) repeats bit for bit and allocates once", "[device_model]") {
  const std::vector<std::string> names = device::available_backend_names();
  const int steps = 3;
  TrainingRun cpu;
  bool have_cpu = false;
  for (const char* name : {"cuda-emu", "hip-emu", "cuda", "hip"}) {
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;  // not built, or no device
    INFO("backend " << name);
    if (!have_cpu) cpu = train_on("cpu", steps), have_cpu = true;
    const TrainingRun a = train_on(name, steps), b = train_on(name, steps);
    CHECK(same_bits(a.losses, b.losses));
    CHECK(same_bits(a.val_losses, b.val_losses));
    for (std::size_t u = 0; u < a.weights.size(); ++u) CHECK(same_bits(a.weights[u], b.weights[u]));
    CHECK(std::fabs(a.losses.front() - cpu.losses.front()) <= 1e-4 * cpu.losses.front());
    CHECK(a.losses.back() < a.losses.front());
    CHECK(a.val_losses[1] < a.val_losses[0]);
    CHECK(a.allocations_after_warmup > 0);
    CHECK(a.allocations_at_end == a.allocations_after_warmup);
    CHECK(a.live_bytes_at_end == a.live_bytes_after_warmup);  // 0 == 0 without sim-gpu's statistics
    if (a.release_waits_after_warmup >= 0) {  // sim-gpu's statistics (the emulated backends)
      CHECK(a.release_waits_after_warmup == 0);
      CHECK(a.release_waits_at_end == 0);
    }
  }
}

TEST_CASE("the model names the next unit it gathers before computing the current one", "[device_model]") {
  auto backend = device::create_backend("sim-gpu");
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  test::DeviceLocalParams params(exec, config(), 3);
  test::LocalAttentionOp attention(exec, true, {8, 8});
  model::Transformer model(config(), params, attention, exec, chunks());
  const data::LocalBatch batch = batch_of(5);
  const int last = static_cast<int>(config().num_hidden_layers) + 1;  // the head's unit
  for (bool backward : {false, true}) {
    INFO((backward ? "forward_backward" : "forward"));
    params.calls.clear();
    if (backward) model.forward_backward(batch, 1.0);
    else model.forward(batch, nullptr);
    std::vector<std::string> expected;
    auto unit = [&](int u, int next) {
      expected.push_back("g" + std::to_string(u));
      if (next >= 0) expected.push_back("p" + std::to_string(next));
    };
    for (int u = 0; u < last; ++u) unit(u, u + 1);  // embedding and layers, forward
    unit(last, backward ? last - 1 : -1);              // the head, then the last layer's backward
    if (backward)
      for (int u = last - 1; u >= 1; --u) unit(u, u > 1 ? u - 1 : -1);
    CHECK(params.calls == expected);
  }
}
