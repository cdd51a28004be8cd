// gpu_train_bench.cpp: training-step throughput of the device model (src/model/transformer.h)
// on one device, without MPI, HDF5 or Boost (perf/gpu/check.sh step 5; it builds in the GPU
// machine's standalone build, perf/gpu/standalone/, and here against the cpu and sim-gpu
// backends, tests: gpu_train_bench_smoke).
//
// One step, as the trainer does it on one rank with one micro-batch: zero the gradients, the
// model's forward + backward over one sequence of --tokens tokens (the loss's mean), the global
// gradient norm (one fp64 reduction read back), AdamW with clipping at 1 on every weight (the
// backend's adamw kernel: the arithmetic of src/train/optimizer.h, whose collective half needs
// MPI and is not linked here), and with bf16 the refresh of the bf16 working copy.
//   parameters  perf/gpu/local_model.h: whole units in device memory, fp32 masters, grads and
//               moments; bf16 copy with --precision bf16
//   attention   the backend's attention kernels over the whole sequence (a ring of one rank:
//               no transfers; gpu_ring_bench measures those), causal. --attn fused (default)
//               selects the fused bf16 kernels (RINGWORLD_GPU_ATTN_FWD/_BWD=fused) on the GPU
//               backends; --attn reference their tile-GEMM path
// What differs from `ringworld train` on one rank: no data loader (random tokens, one
// document), no FSDP collectives (a grid of one has none to overlap), no checkpoint or metrics
// I/O, no validation.
//
// FLOPs (model FLOPs, for MFU; recomputation in the backward is not counted, as PaLM's MFU):
//   6 N_gemm T  +  12 L T^2 d_model / 2  (causal attention)  per step of T tokens, where
//   N_gemm = the weights every token meets in a GEMM: per layer q, k, v, o, gate, up, down, and
//   the lm_head (not the embedding table: a lookup; not the norms: elementwise);
//   attention: forward 4 T^2 d_head heads per layer (Q K^T and P V, 2 flops per multiply-add),
//   halved when causal (the useful half: what FlashAttention-2's benchmarks count), backward 2x
//   forward, so fwd+bwd = 3 x 2 T^2 d_model = 6 T^2 d_model per layer (PaLM's 12 L T^2 d_model
//   without the causal half).
// MFU = model FLOP/s / peak; peak = --peak-tflops (989: H100/H200 dense bf16, datasheet; the
// fp32 run is held to the same bf16 peak, so its MFU says what bf16 gains).
//
// Checks (exit 1 if one fails):
//   reference   before timing, a tiny model (2 layers, hidden 128, 2 heads of 64 and 1 kv head:
//               GQA, and a head size the fused attention kernels take; packed documents, ragged
//               chunks) on the same backend, precision and attention kernels against
//               src/model/reference_transformer in fp64: loss and every gradient. Tolerance:
//               D u max|G| with D the roundings on the longest path (test_device_model.cpp's
//               basis: 9 per layer and 3 for the forward, twice that for the gradients), plus the
//               fused kernels' bf16 P (1 per layer forward) and dS (1 more per layer backward):
//               D = 23 forward, 48 gradients; u = 2^-8 for bf16; for fp32 each of those steps is
//               also a sum of up to k terms (k = 128, the longest dot product), u = (k + 2) 2^-24.
//   init loss   the first step's loss (of the first token count: later ones start from the
//               weights the earlier steps updated, and are only checked finite) is finite and within 8% (the bf16 forward bound above:
//               21 roundings of 2^-8) of its expected value at initialisation: the logits are
//               w . n with w ~ N(0, 0.02^2) and |n|^2 = hidden (the final RMSNorm, weight 1), so
//               Gaussian with variance s^2 = 0.02^2 hidden, and the cross-entropy over V columns
//               is ln V + s^2 / 2 (log of a sum of V lognormals, to O(1/V)).
//
// Output: '#' comment lines, a header row, a units row, one row per token count (perf/README.md's
// format); --json FILE the same rows as JSON (written after each row, atomically).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "device/backend.h"
#include "device/exec_context.h"
#include "perf/gpu/local_model.h"
#include "src/attention/attention_ops.h"
#include "perf/gpu/bench_cli.h"
#include "src/common/input_error.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/param_init.h"
#include "src/model/precision.h"
#include "src/model/reference_transformer.h"
#include "src/model/transformer.h"

using namespace rw;

namespace {

struct Options {
  std::string backend = "cuda";
  std::string precision = "bf16";
  std::string attn = "fused";
  std::string json;
  bool quick = false;
  std::vector<int> tokens = {16384};
  int layers = 16, hidden = 2048, intermediate = 5632, heads = 16, kv_heads = 16, vocab = 32000;
  int steps = 3, warmup = 1;
  int ffn_chunk = 4096, loss_chunk = 2048;
  double peak_tflops = 989.0;
  double budget_s = 0;  // > 0: stop timing steps of a size once they would pass this (at least one)
  bool check = true;
};

double parse_number(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || v < 0)
    throw InputError(name + " expects a non-negative number, not '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw InputError("option " + a + " needs a value");
      return argv[++i];
    };
    auto one = [&]() { return perf::parse_int_list(value()).at(0); };
    if (a == "--backend") o.backend = value();
    else if (a == "--precision") o.precision = value();
    else if (a == "--attn") o.attn = value();
    else if (a == "--json") o.json = value();
    else if (a == "--quick") o.quick = true;
    else if (a == "--tokens") o.tokens = perf::parse_int_list(value());
    else if (a == "--layers") o.layers = one();
    else if (a == "--hidden") o.hidden = one();
    else if (a == "--intermediate") o.intermediate = one();
    else if (a == "--heads") o.heads = one();
    else if (a == "--kv-heads") o.kv_heads = one();
    else if (a == "--vocab") o.vocab = one();
    else if (a == "--steps") o.steps = one();
    else if (a == "--warmup") o.warmup = static_cast<int>(parse_number(a, value()));
    else if (a == "--ffn-chunk") o.ffn_chunk = one();
    else if (a == "--loss-chunk") o.loss_chunk = one();
    else if (a == "--peak-tflops") o.peak_tflops = parse_number(a, value());
    else if (a == "--budget-s") o.budget_s = parse_number(a, value());
    else if (a == "--no-check") o.check = false;
    else if (a == "--help") {
      std::printf(
          "gpu_train_bench [--backend cuda|hip|cpu|sim-gpu|...] [--precision bf16|fp32] [--attn fused|reference]\n"
          "                [--tokens LIST] [--layers L] [--hidden H] [--intermediate I] [--heads N] [--kv-heads N]\n"
          "                [--vocab V] [--steps N] [--warmup N] [--ffn-chunk N] [--loss-chunk N]\n"
          "                [--peak-tflops P] [--budget-s S] [--json FILE] [--quick] [--no-check]\n"
          "defaults: a ~1B LLaMA (16 layers, hidden 2048, FFN 5632, 16 heads, vocab 32000), 16384 tokens,\n"
          "bf16, 1 warm-up + 3 timed steps. --quick: a tiny model (the smoke test).\n");
      std::exit(0);
    } else {
      throw InputError("unknown option " + a + " (--help lists them)");
    }
  }
  if (o.attn != "fused" && o.attn != "reference") throw InputError("--attn takes fused or reference");
  if (o.quick) {
    o.tokens = {64, 96};
    o.layers = 2;
    o.hidden = 128;  // 2 heads of 64: the fused attention's smallest head size
    o.intermediate = 96;
    o.heads = 2;
    o.kv_heads = 1;
    o.vocab = 61;
    o.steps = 2;
    o.ffn_chunk = 40;
    o.loss_chunk = 24;
  }
  return o;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// One batch of `sequences` x n tokens; `documents` documents per sequence (segment ids, positions
// restart at each), random tokens, next-token targets (the last of each document ignored).
data::LocalBatch random_batch(int sequences, int n, int documents, int vocab, uint64_t seed) {
  data::LocalBatch b;
  b.n_sequences = sequences;
  b.n_local = n;
  const std::size_t count = static_cast<std::size_t>(sequences) * n;
  b.tokens.resize(count);
  b.targets.resize(count);
  b.positions.resize(count);
  b.segment_ids.resize(count);
  b.loss_weights.assign(count, 1.f);
  uint64_t state = seed;
  for (std::size_t i = 0; i < count; ++i) b.tokens[i] = static_cast<int32_t>(splitmix(state) % vocab);
  const int doc_len = (n + documents - 1) / documents;
  for (int s = 0; s < sequences; ++s)
    for (int i = 0; i < n; ++i) {
      const std::size_t at = static_cast<std::size_t>(s) * n + i;
      b.segment_ids[at] = i / doc_len;
      b.positions[at] = i % doc_len;
      const bool last = i + 1 == n || (i + 1) / doc_len != i / doc_len;
      b.targets[at] = last ? -1 : b.tokens[at + 1];
    }
  return b;
}

double weight_sum(const data::LocalBatch& b) {
  double s = 0;
  for (std::size_t i = 0; i < b.targets.size(); ++i)
    if (b.targets[i] >= 0) s += b.loss_weights[i];
  return s;
}

model::LlamaConfig config_of(const Options& o) {
  model::LlamaConfig c;
  c.vocab_size = o.vocab;
  c.hidden_size = o.hidden;
  c.intermediate_size = o.intermediate;
  c.num_hidden_layers = o.layers;
  c.num_attention_heads = o.heads;
  c.num_key_value_heads = o.kv_heads;
  c.validate();
  return c;
}

// The weights every token meets in a GEMM (see the header comment).
double gemm_parameters(const model::LlamaConfig& c) {
  const double h = double(c.hidden_size), kv = double(c.kv_width()), f = double(c.intermediate_size);
  const double per_layer = h * h /*q*/ + 2 * h * kv /*k, v*/ + h * h /*o*/ + 3 * h * f /*gate, up, down*/;
  return per_layer * double(c.num_hidden_layers) + h * double(c.total_vocab_size()) /*lm_head*/;
}

double model_flops(const model::LlamaConfig& c, double tokens) {
  const double attention = 12.0 * double(c.num_hidden_layers) * tokens * tokens * double(c.hidden_size) * 0.5;
  return 6.0 * gemm_parameters(c) * tokens + attention;
}

// The benchmark's initial weights: norms 1, every other weight uniform with the standard
// deviation of the project's initialisation (param_init.h: normal(0, 0.02)), from a hash of
// (unit, index). Not param_init.h's normal values: their Box-Muller costs ~10x more per element,
// seconds of the training step's 60 s at 1B parameters; the loss at initialisation depends on
// the variance only (the logits are sums of `hidden` terms: Gaussian either way).
void init_unit(int unit, const model::ParamUnit& spec, std::vector<float>& host) {
  const double half_width = model::kInitStd * std::sqrt(3.0);  // uniform on [-a, a): variance a^2 / 3
  for (std::size_t t = 0; t < spec.tensors.size(); ++t) {
    const int64_t begin = spec.offsets[t], end = begin + spec.tensors[t].count();
    const bool norm = spec.tensors[t].is_norm;
#pragma omp parallel for schedule(static)
    for (int64_t i = begin; i < end; ++i) {
      uint64_t state = (uint64_t(unit) << 40) ^ uint64_t(i);
      const double uniform = (splitmix(state) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
      host[static_cast<std::size_t>(i)] = norm ? 1.f : static_cast<float>(half_width * (2 * uniform - 1));
    }
  }
}

// ---- the reference check (tiny model, fp64) ----

struct CheckResult {
  double worst = 0;  // max over loss and gradients of error / tolerance
  bool ok = false;
  std::string detail;
};

CheckResult reference_check(device::Backend& be, model::Precision precision) {
  model::LlamaConfig c;
  c.vocab_size = 29;
  c.hidden_size = 128;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  const auto units = model::parameter_units(c);
  // Weights larger than the initialisation (every path carries signal: uniform with the spread of
  // test_device_model.cpp's 0.4 at hidden 16, scaled to keep the activations' size), norms near 1.
  const double spread = 0.4 * std::sqrt(16.0 / double(c.hidden_size));
  std::vector<std::vector<float>> w(units.size());
  uint64_t state = 4242;
  for (std::size_t u = 0; u < units.size(); ++u) {
    w[u].resize(static_cast<std::size_t>(units[u].count));
    for (float& x : w[u]) x = static_cast<float>(spread * ((splitmix(state) >> 11) * (2.0 / 9007199254740992.0) - 1.0));
    for (std::size_t t = 0; t < units[u].tensors.size(); ++t)
      if (units[u].tensors[t].is_norm)
        for (int64_t i = 0; i < units[u].tensors[t].count(); ++i) w[u][units[u].offsets[t] + i] += 1.f;
  }
  const data::LocalBatch batch = random_batch(2, 48, 2, 29, 77);
  const double scale = 1.0 / weight_sum(batch);
  model::TransformerOptions options;
  options.ffn_chunk_tokens = 36;  // ragged chunks: 96 = 36 + 36 + 24
  options.loss_chunk_tokens = 40;
  // fp64 reference.
  model::LocalParams<double> ref_params(c, 0);
  for (std::size_t u = 0; u < w.size(); ++u) ref_params.weights[u].assign(w[u].begin(), w[u].end());
  ReferenceAttentionOp<double> ref_attention(true);
  model::CpuMatMulDouble matmul64;
  model::ReferenceTransformer<double> reference(c, ref_params, ref_attention, matmul64, options);
  const double gold_loss = reference.forward_backward(batch, scale);
  // The device model.
  const device::ExecContext exec = device::ExecContext::on_default_stream(be);
  perf::LocalDeviceParams params(exec, c, precision == model::Precision::bf16, w);
  perf::LocalAttention attention(exec, true);
  options.precision = precision;
  model::Transformer device_model(c, params, attention, exec, options);
  const double loss = device_model.forward_backward(batch, scale);

  const double d_fwd = 10 * 2 + 3, d_bwd = 2 * d_fwd + 2;
  const double u = precision == model::Precision::bf16 ? 1.0 / 256 : (128 + 2) / 16777216.0;
  CheckResult r;
  std::ostringstream why;
  auto consider = [&](const char* what, double err, double tol) {
    const double ratio = tol > 0 ? err / tol : (err == 0 ? 0.0 : INFINITY);
    if (!(ratio <= r.worst)) {
      r.worst = ratio;
      why.str("");
      why << what << ": error " << err << ", tolerance " << tol;
    }
  };
  consider("loss", std::fabs(loss - gold_loss), d_fwd * u * std::fabs(gold_loss));
  for (std::size_t k = 0; k < units.size(); ++k) {
    const std::vector<float> g = params.download_grad(static_cast<int>(k));
    double err = 0, scale_g = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double e = std::fabs(double(g[i]) - ref_params.grads[k][i]);
      err = std::isfinite(e) ? std::max(err, e) : INFINITY;
      scale_g = std::max(scale_g, std::fabs(ref_params.grads[k][i]));
    }
    consider(("unit " + std::to_string(k) + " gradient").c_str(), err, d_bwd * u * scale_g);
  }
  r.ok = r.worst <= 1.0;
  r.detail = why.str();
  return r;
}

// ---- the benchmark ----

struct Row {
  long tokens = 0;
  int steps = 0;
  double median_ms = 0, min_ms = 0, tokens_per_s = 0, tflops = 0, mfu = 0;
  double model_ms = 0, optimizer_ms = 0;  // medians of the step's parts: forward+backward, the rest
  double model_flops = 0;  // per step (the formula above)
  double first_loss = 0, expected_loss = 0, last_loss = 0;
  bool loss_ok = false;
};

std::string json_text(const Options& o, const model::LlamaConfig& c, double params, const CheckResult& check,
                      const std::vector<Row>& rows) {
  std::ostringstream js;
  js.precision(8);
  js << "{\n  \"bench\": \"gpu_train_bench\",\n  \"backend\": \"" << o.backend << "\",\n  \"precision\": \""
     << o.precision << "\",\n  \"attn\": \"" << o.attn << "\",\n  \"quick\": " << (o.quick ? "true" : "false")
     << ",\n  \"model\": {\"layers\": " << c.num_hidden_layers << ", \"hidden\": " << c.hidden_size
     << ", \"intermediate\": " << c.intermediate_size << ", \"heads\": " << c.num_attention_heads
     << ", \"kv_heads\": " << c.num_key_value_heads << ", \"vocab\": " << c.vocab_size
     << ", \"parameters\": " << static_cast<long long>(params)
     << ", \"gemm_parameters\": " << static_cast<long long>(gemm_parameters(c)) << "},\n"
     << "  \"flop_formula\": \"6 N_gemm T + 12 L T^2 d_model / 2 (causal attention: fwd 4 T^2 d_model / 2, bwd 2x)\",\n"
     << "  \"peak_tflops\": " << o.peak_tflops << ",\n"
     << "  \"reference_check\": {\"run\": " << (o.check ? "true" : "false") << ", \"ok\": "
     << (check.ok || !o.check ? "true" : "false") << ", \"err_over_tol\": "
     << (std::isfinite(check.worst) ? check.worst : -1.0) << "},\n  \"rows\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    js << "    {\"tokens\": " << r.tokens << ", \"steps\": " << r.steps
       << ", \"model_flops\": " << static_cast<long long>(std::llround(r.model_flops)) << ", \"median_ms\": " << r.median_ms
       << ", \"min_ms\": " << r.min_ms << ", \"model_ms\": " << r.model_ms
       << ", \"optimizer_ms\": " << r.optimizer_ms << ", \"tokens_per_s\": " << r.tokens_per_s << ", \"tflops\": " << r.tflops
       << ", \"mfu\": " << r.mfu << ", \"first_loss\": " << (std::isfinite(r.first_loss) ? r.first_loss : -1.0)
       << ", \"expected_loss\": " << r.expected_loss
       << ", \"last_loss\": " << (std::isfinite(r.last_loss) ? r.last_loss : -1.0)
       << ", \"loss_ok\": " << (r.loss_ok ? "true" : "false") << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  js << "  ]\n}\n";
  return js.str();
}

Row bench_tokens(const Options& o, const model::LlamaConfig& c, perf::LocalDeviceParams& params,
                 perf::LocalAttention& attention, const device::ExecContext& exec, model::Precision precision,
                 int tokens, bool at_init) {
  model::TransformerOptions options;
  options.ffn_chunk_tokens = o.ffn_chunk;
  options.loss_chunk_tokens = o.loss_chunk;
  options.precision = precision;
  model::Transformer m(c, params, attention, exec, options);
  const data::LocalBatch batch = random_batch(1, tokens, 1, static_cast<int>(c.vocab_size), 1000 + tokens);
  const double scale = 1.0 / weight_sum(batch);
  Row r;
  r.tokens = tokens;
  const double s2 = 0.02 * 0.02 * double(c.hidden_size);
  r.expected_loss = at_init ? std::log(double(c.vocab_size)) + s2 / 2 : -1.0;
  std::vector<double> times, model_times, optimizer_times;
  const double start = now_s();
  for (int step = 1; step <= o.warmup + o.steps; ++step) {
    const double t0 = now_s();
    params.zero_grads();
    const double loss = m.forward_backward(batch, scale) * scale;  // reads the loss: a sync point
    const double t_model = now_s();
    const double norm = std::sqrt(params.grad_sum_squares());
    const double multiplier = std::isfinite(norm) && norm > 1.0 ? 1.0 / norm : 1.0;
    params.adamw_step(1e-4, step, multiplier);
    exec.backend->synchronize(*exec.compute);
    const double seconds = now_s() - t0;
    if (step == 1) r.first_loss = loss;
    r.last_loss = loss;
    if (step > o.warmup) {
      times.push_back(seconds);
      model_times.push_back(t_model - t0);
      optimizer_times.push_back(t0 + seconds - t_model);
    }
    const double elapsed = now_s() - start, per_step = elapsed / step;
    if (o.budget_s > 0 && !times.empty() && elapsed + per_step > o.budget_s) break;
  }
  r.steps = static_cast<int>(times.size());
  const double median = perf::median(times);
  r.model_ms = perf::median(model_times) * 1e3;
  r.optimizer_ms = perf::median(optimizer_times) * 1e3;
  r.median_ms = median * 1e3;
  r.min_ms = *std::min_element(times.begin(), times.end()) * 1e3;
  r.tokens_per_s = tokens / median;
  r.model_flops = model_flops(c, tokens);
  r.tflops = r.model_flops / median / 1e12;
  r.mfu = r.tflops / o.peak_tflops;
  r.loss_ok = std::isfinite(r.first_loss) && std::isfinite(r.last_loss) &&
              (!at_init || std::fabs(r.first_loss - r.expected_loss) <= 0.08 * r.expected_loss);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const model::Precision precision = model::parse_precision(o.precision);
    const device::BackendInfo* info = device::find_backend(o.backend);
    if (!info) throw InputError("unknown backend '" + o.backend + "'");
    if (!info->available()) {
      std::printf("# gpu_train_bench: backend %s is not available here: %s\n", o.backend.c_str(),
                  info->unavailable_reason ? info->unavailable_reason().c_str() : "(no reason given)");
      return 77;
    }
    // The attention kernels of the GPU backends (device/cuda/README.md); the cpu backends ignore it.
    if (o.attn == "fused") {
      setenv("RINGWORLD_GPU_ATTN_FWD", "fused", 1);
      setenv("RINGWORLD_GPU_ATTN_BWD", "fused", 1);
    } else {
      setenv("RINGWORLD_GPU_ATTN_FWD", "reference", 1);
      setenv("RINGWORLD_GPU_ATTN_BWD", "reference", 1);
    }
    auto be = device::create_backend(o.backend);
    const model::LlamaConfig c = config_of(o);
    std::printf("# gpu_train_bench on %s, %s, attention %s%s\n", o.backend.c_str(), o.precision.c_str(),
                o.attn.c_str(), o.quick ? " (--quick: smoke-test sizes)" : "");
    std::printf("# model: %s\n", c.describe().c_str());
    std::printf("# step: zero grads, forward+backward (one sequence, causal), grad norm, AdamW (+ bf16 copy);\n"
                "# fwd+bwd = zero grads + forward+backward, optimizer = the rest (medians of the parts)\n");
    std::printf("# flops: 6 N_gemm T + 12 L T^2 d_model / 2 (N_gemm %.4g); MFU against %.0f TFLOP/s\n",
                gemm_parameters(c), o.peak_tflops);
    std::fflush(stdout);

    CheckResult check;
    if (o.check) {
      check = reference_check(*be, precision);
      std::printf("# reference check (tiny model vs fp64, loss and gradients): %s, worst err/tol %.3g%s%s\n",
                  check.ok ? "ok" : "FAILED", check.worst, check.detail.empty() ? "" : " at ", check.detail.c_str());
      std::fflush(stdout);
    }

    const device::ExecContext exec = device::ExecContext::on_default_stream(*be);
    const double t_init = now_s();
    const auto units = model::parameter_units(c);
    perf::LocalDeviceParams params(exec, c, precision == model::Precision::bf16,
                                   [&](int u, std::vector<float>& host) { init_unit(u, units[u], host); });
    std::printf("# parameters: %lld (%.2f GB of device memory with grads and moments), initialised in %.1f s\n",
                static_cast<long long>(params.parameter_count()), params.device_bytes() / 1e9, now_s() - t_init);
    perf::LocalAttention attention(exec, true);

    std::printf("%7s %5s %10s %10s %10s %10s %10s %8s %6s %10s %10s %10s %5s\n", "tokens", "steps", "median", "min",
                "fwd+bwd", "optimizer", "rate", "model", "mfu", "loss_1", "expected", "loss_last", "ok");
    std::printf("%7s %5s %10s %10s %10s %10s %10s %8s %6s %10s %10s %10s %5s\n", "count", "count", "ms", "ms", "ms",
                "ms", "tokens/s", "TFLOP/s", "ratio", "nats", "nats", "nats", "-");
    std::fflush(stdout);
    std::vector<Row> rows;
    bool ok = check.ok || !o.check;
    perf::write_text_atomically(o.json, json_text(o, c, double(params.parameter_count()), check, rows));
    for (int tokens : o.tokens) {
      const Row r = bench_tokens(o, c, params, attention, exec, precision, tokens, rows.empty());
      rows.push_back(r);
      ok = ok && r.loss_ok;
      std::printf("%7ld %5d %10.2f %10.2f %10.2f %10.2f %10.0f %8.2f %6.3f %10.4f %10.4f %10.4f %5s\n", r.tokens,
                  r.steps, r.median_ms, r.min_ms, r.model_ms, r.optimizer_ms, r.tokens_per_s, r.tflops, r.mfu, r.first_loss, r.expected_loss, r.last_loss,
                  r.loss_ok ? "yes" : "NO");
      std::fflush(stdout);
      perf::write_text_atomically(o.json, json_text(o, c, double(params.parameter_count()), check, rows));
    }
    std::printf("# %s\n", ok ? "all checks passed" : "A CHECK FAILED (see above)");
    return ok ? 0 : 1;
  } catch (const InputError& e) {
    std::fprintf(stderr, "gpu_train_bench: %s\n", e.what());
    return 2;
  }
}
