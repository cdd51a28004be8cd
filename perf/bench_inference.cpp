// bench_inference: generation on the ring (src/infer/generator.h) against limits measured in the
// same run. Run under mpirun, one thread per rank:
//   mpirun -np 2 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 bench_inference [--quick] ...
//
// The model: a small LLaMA (default hidden 256, 4 heads of 64, 2 layers, FFN 688, vocab 256),
// weights resident as `ringworld generate` keeps them (every FSDP unit gathered once).
// Tables (printed by rank 0; per-rank times reduced to their max over ranks):
//   prefill   per prompt length S (--prefill-seq): Generator::start on a prompt of S + 1 tokens
//             (S prefilled on the ring, GenerationStats::prefill_s; the first decode step is not
//             counted) against the training forward on the same batch: model::Transformer over
//             a RingAttentionOp with the same layout and tiles, forward_without_head (every layer,
//             no lm_head: the prefill computes no logits for the prompt either). Each rep times
//             both, interleaved; medians over reps. ratio = prefill tokens/s / training forward
//             tokens/s (target ~1: the same kernels; the prefill adds the K/V copies into the
//             cache). plan_ms: `ringworld plan --inference`'s prefill time (src/plan/
//             inference_model.h) for the same model, context and ring on device "cpu" (its
//             sgemm rate measured here as the plan measures it); measured/plan beside it.
//   decode    per context length C (--decode-context): ms per new token on the ring of every
//             rank, from a cache filled by Generator::start_synthetic (random K/V of C tokens
//             placed as the prefill places them: prefilling 128K tokens on CPU cores would take
//             hours), greedy tokens agreed by rank 0 as `generate` does. bound_ms: the same
//             decode step on a ring of ONE rank (ProcessGrid::self()) holding what this rank
//             holds (C / ranks tokens): the step without the merge's communication; every rank
//             runs its own at once (the cores and memory as busy as in the ring run). Each rep
//             times --decode-tokens steps of the ring, then of the bound, interleaved; medians
//             over reps. ratio = ms / bound_ms (target: <= 1.3 at 2 ranks). sent bytes per
//             token (the largest rank's: merge all-gathers and the token's agreement) and per
//             layer, and their ratio to the first row (target: 1 at every context: the merge
//             moves heads x (head_dim + 1) floats per layer whatever the context). plan_ms:
//             the plan's decode time per token at that cache length, and measured/plan.
// --precision fp32|bf16 (as `ringworld generate`): bf16 weights copy, activations and KV cache
// for the generation and the training forward alike; the plan then counts 2-byte weights and
// cache. Both tables carry the precision; the decode table the ring run's KV cache per rank.
// Warm-ups: a short prefill and training forward; two decode steps before each timed series.
// Timed reps stop at --reps or when one more would exceed --budget-s (at least one).
#include <cblas.h>
#include <omp.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device/backend.h"
#include "device/cpu/blas_kernel_select.h"
#include "device/exec_context.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "perf/bench_common.h"
#include "src/attention/attention_ops.h"
#include "src/attention/layout.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/infer/generator.h"
#include "src/model/transformer.h"
#include "src/plan/device_table.h"
#include "src/plan/inference_model.h"
#include "src/train/fsdp_params.h"

namespace po = boost::program_options;
using namespace rw;
using namespace rw::perf;

namespace {

constexpr double kTargetDecodeRatio = 1.3;  // issue 12: decode within 1.3x the local bound at 2 ranks
constexpr int kTargetRanks = 2;
constexpr double kPrefillTolerance = 0.1;   // "ratio ~1": within 10% of the training forward
constexpr int kWarmupPrefillTokens = 1024;
constexpr int kWarmupDecodeSteps = 2;

struct Options {
  std::string prefill_seq_text = "4096,16384";
  std::string decode_context_text = "4096,8192,16384,32768,65536,131072";
  int hidden = 256, heads = 4, kv_heads = 4, layers = 2, intermediate = 688, vocab = 256;
  std::string layout_text = "zigzag";
  std::string precision_text = "fp32";
  int block = 256;
  int reps = 5;
  int decode_tokens = 8;
  double budget_s = 60;  // per case: timed reps of both sides (3 reps of the 16K prefill on a busy 2-core VM)
  double timeout_s = 900;
  bool quick = false, json = false, no_plan = false;
};

struct Spread {
  double min = 0, avg = 0, max = 0;
};
Spread spread(double value) {
  return {mpi::allreduce_min(value), mpi::allreduce_sum(value) / mpi::world_size(), mpi::allreduce_max(value)};
}

// Rank 0's value on every rank.
double from_root(double value) {
  return mpi::allreduce_max(mpi::world_rank() == 0 ? value : -std::numeric_limits<double>::infinity());
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// The same pseudo-random prompt on every rank.
std::vector<int32_t> make_prompt(int64_t n, int64_t vocab) {
  std::vector<int32_t> prompt(static_cast<std::size_t>(n));
  uint64_t z = 12345;
  for (auto& t : prompt) {
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    t = static_cast<int32_t>((z >> 33) % static_cast<uint64_t>(vocab));
  }
  return prompt;
}

// The training forward's batch for the first n tokens of `prompt` on this rank of the ring: the
// layout's local tokens (n must split over the ring in that layout), as Generator::start builds
// its prefill batch.
data::LocalBatch training_batch(const std::vector<int32_t>& prompt, int64_t n, Layout layout, int ranks, int rank) {
  data::LocalBatch b;
  b.n_sequences = 1;
  for (int64_t i : local_token_indices(layout, n, ranks, rank)) {
    b.tokens.push_back(prompt[static_cast<std::size_t>(i)]);
    b.targets.push_back(-1);
    b.positions.push_back(static_cast<int32_t>(i));
    b.segment_ids.push_back(0);
    b.loss_weights.push_back(0.f);
  }
  b.n_local = static_cast<int>(b.tokens.size());
  return b;
}

// One series of decode steps: seconds on this rank for `steps` appends with greedy tokens
// agreed by rank 0 of the generator's grid (as `ringworld generate` does).
double time_decode(infer::Generator& gen, int32_t* token, int steps, mpi::ProcessGrid& sync) {
  sync.barrier();
  const double t0 = wall_seconds();
  for (int s = 0; s < steps; ++s) *token = gen.agree_token(argmax(gen.append(*token)));
  return wall_seconds() - t0;
}

std::string met(bool ok) { return ok ? "met" : "MISSED"; }

}  // namespace

int main(int argc, char** argv) {
  rw::device::cpu::select_blas_kernel(argc, argv);  // before MPI: may re-exec with OPENBLAS_CORETYPE
  mpi::Runtime mpi_runtime(argc, argv);
  const int rank = mpi::world_rank(), n_ranks = mpi::world_size();
  const bool is_root = rank == 0;

  Options o;
  std::vector<int> prefill_seqs, decode_contexts;
  Layout layout = Layout::zigzag;
  model::Precision precision = model::Precision::fp32;
  model::LlamaConfig config;
  std::string error;
  po::options_description desc("bench_inference options (run under mpirun -np N)");
  desc.add_options()
      ("help", "this text")
      ("prefill-seq", po::value(&o.prefill_seq_text)->default_value(o.prefill_seq_text),
       "prompt lengths of the prefill table (tokens prefilled), comma separated")
      ("decode-context", po::value(&o.decode_context_text)->default_value(o.decode_context_text),
       "context lengths of the decode table (synthetic cache), comma separated")
      ("hidden", po::value(&o.hidden)->default_value(o.hidden), "model hidden size")
      ("heads", po::value(&o.heads)->default_value(o.heads), "query heads")
      ("kv-heads", po::value(&o.kv_heads)->default_value(o.kv_heads), "key/value heads")
      ("layers", po::value(&o.layers)->default_value(o.layers), "decoder layers")
      ("intermediate", po::value(&o.intermediate)->default_value(o.intermediate), "FFN size")
      ("vocab", po::value(&o.vocab)->default_value(o.vocab), "vocabulary size")
      ("layout", po::value(&o.layout_text)->default_value(o.layout_text), "prefill layout: contiguous | striped | zigzag")
      ("block", po::value(&o.block)->default_value(o.block), "attention tile (query and key rows)")
      ("precision", po::value(&o.precision_text)->default_value(o.precision_text),
       "fp32 | bf16: bf16 weights copy, activations and KV cache (half its bytes); fp32 residual, softmax statistics, "
       "partial-output merge and logits")
      ("reps", po::value(&o.reps)->default_value(o.reps), "timed reps per case (after a warm-up)")
      ("decode-tokens", po::value(&o.decode_tokens)->default_value(o.decode_tokens), "decode steps per timed rep")
      ("budget-s", po::value(&o.budget_s)->default_value(o.budget_s),
       "seconds of timed reps per case: no further rep once one more would exceed it")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s), "ring transfer stall timeout, s")
      ("no-plan", po::bool_switch(&o.no_plan), "skip the plan's predictions")
      ("quick", po::bool_switch(&o.quick), "small sizes, one rep (smoke test)")
      ("json", po::bool_switch(&o.json), "JSON Lines instead of tables");
  bool show_help = false;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
    show_help = vm.count("help") > 0;
    if (o.quick) {
      o.prefill_seq_text = "1024";
      o.decode_context_text = "1024,4096";
      o.reps = 1;
      o.decode_tokens = 4;
    }
    prefill_seqs = parse_int_list(o.prefill_seq_text, "prefill-seq");
    decode_contexts = parse_int_list(o.decode_context_text, "decode-context");
    layout = parse_layout(o.layout_text);
    precision = model::parse_precision(o.precision_text);
    config.hidden_size = o.hidden;
    config.num_attention_heads = o.heads;
    config.num_key_value_heads = o.kv_heads;
    config.num_hidden_layers = o.layers;
    config.intermediate_size = o.intermediate;
    config.vocab_size = o.vocab;
    config.validate();
    if (o.block <= 0 || o.reps <= 0 || o.decode_tokens <= 0)
      throw InputError("--block, --reps and --decode-tokens must be positive");
    for (int s : prefill_seqs) check_ring_split(layout, s, n_ranks);
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (show_help) {
    if (is_root) std::cout << desc << "\n";
    return 0;
  }
  if (!error.empty()) {
    if (is_root) std::fprintf(stderr, "bench_inference: error: %s (see --help)\n", error.c_str());
    return 2;
  }

  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  const double t_start = wall_seconds(), cpu_start_s = process_cpu_seconds();
  const double load_start = load_average_1min();
  const SystemCpu machine_start = system_cpu();
  const Report report(o.json, is_root);
  const int cores = available_cores();
  report.comment("bench_inference: generation on the ring (prefill vs the training forward; decode vs the local bound)");
  report.comment(format("cpu: %s; %d rank(s) x 1 thread; %d core(s) available to rank 0 (hardware_concurrency %u)",
                        cpu_model_name().c_str(), n_ranks, cores, std::thread::hardware_concurrency()));
  if (n_ranks > cores)
    report.comment(format("OVERSUBSCRIBED: %d ranks on %d cores: the ratios here say nothing", n_ranks, cores));
  report.comment(format("openblas: %s kernels (%s)", openblas_core_name().c_str(), openblas_config().c_str()));
  if (!openblas_fallback_warning().empty()) report.comment(openblas_fallback_warning());
  const char* precision_text = model::precision_name(precision);
  report.comment("model: " + config.describe() + format("; %s prefill layout, tiles %dx%d, %s, weights resident",
                                                        layout_name(layout).c_str(), o.block, o.block, precision_text));

  auto backend = device::create_backend("cpu");
  if (precision == model::Precision::bf16 && !backend->capabilities().bf16_storage) {  // as generate refuses it
    if (is_root)
      std::fprintf(stderr, "bench_inference: error: --precision bf16: the cpu backend has no bf16 storage; use --precision fp32\n");
    return 2;
  }
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  mpi::ProcessGrid grid(1, n_ranks, o.timeout_s);
  auto self = mpi::ProcessGrid::self();
  train::FsdpOptions fo = train::fsdp_options_for(precision);  // bf16: the bf16 working copy, gathered
  fo.gather_buffers = static_cast<int>(model::parameter_units(config).size());  // resident, as generate keeps them
  train::FsdpParams params(config, grid, exec, fo);
  params.initialize(1);
  infer::GeneratorOptions go;
  go.layout = layout;
  go.tiling = {o.block, o.block};
  go.precision = precision;
  const int64_t bytes_per_element = precision == model::Precision::bf16 ? 2 : 4;

  // ---- the plan's figures for device "cpu" (as `ringworld plan --inference --device cpu`) ----
  const plan::DeviceSpec cpu_spec = plan::find_device("cpu");
  double plan_flops = 0;
  if (!o.no_plan) {
    // The plan measures one process's sgemm rate when it runs (plan_command.cpp): rank 0 alone here.
    plan_flops = from_root(is_root ? backend->measure_gemm_gflops(1024, 5, 1) * 1e9 : 0.0);
    report.comment(format("plan: device cpu, %s weights and KV cache, peak %.1f GFLOP/s (sgemm n=1024, 1 thread, "
                          "rank 0 alone, measured now), efficiency 1, memory bandwidth %.0f GB/s, link %.1f GB/s, "
                          "latency %.2f us (the device table's)",
                          precision_text, plan_flops * 1e-9, cpu_spec.memory_gb_per_s, cpu_spec.link_gb_per_s,
                          cpu_spec.link_latency_us));
  }
  auto plan_shape = [&](int64_t context, int ranks) {
    plan::InferenceShape s;
    s.model = config;
    s.context_tokens = context;
    s.new_tokens = 0;
    s.ranks = ranks;
    s.layout = layout;
    s.weight_bytes_per_element = bytes_per_element;
    s.kv_bytes_per_element = bytes_per_element;
    s.validate();
    return s;
  };

  // ---- prefill vs the training forward ----
  Table prefill("prefill", {{"seq", "tokens"}, {"ranks", "-"}, {"layout", "-"}, {"precision", "-"}, {"reps", "-"},
                            {"prefill_ms", "ms"},
                            {"train_fwd_ms", "ms"}, {"prefill_tok_s", "tokens/s"}, {"train_tok_s", "tokens/s"},
                            {"ratio", "prefill/train"}, {"ratio_best", "prefill/train"}, {"plan_ms", "ms"}, {"vs_plan", "measured/plan"}});
  prefill.comment("prefill: Generator::start's prefill of seq tokens (GenerationStats::prefill_s; K/V copied into the "
                  "cache), max over ranks");
  prefill.comment("train_fwd: model::Transformer::forward_without_head over a RingAttentionOp on the same batch "
                  "(same layout and tiles), max over ranks, from a barrier");
  prefill.comment("interleaved per rep (alternating which goes first), medians over reps; ratio = prefill_tok_s / train_tok_s (target ~1: within "
                  + format("%.0f%%", 100 * kPrefillTolerance) + "; the same kernels); ratio_best: from the fastest rep of each");
  prefill.comment("plan_ms: plan --inference's prefill time (dense + attention + exposed ring) for this model, seq and "
                  "ring on device cpu");
  double worst_prefill_dev = 0;
  {
    infer::Generator gen(config, params, grid, exec, go);
    RingOptions ro;
    ro.causal = true;
    ro.tiling = go.tiling;
    RingAttentionOp ring_op(exec, grid.ring(), ro);
    model::TransformerOptions training_options;
    training_options.precision = precision;
    model::Transformer training(config, params, ring_op, exec, training_options);
    // Warm-up: a short prefill and a training forward (thread pools, MPI connections, workspaces).
    {
      const int64_t warm = std::min<int64_t>(kWarmupPrefillTokens, *std::max_element(prefill_seqs.begin(), prefill_seqs.end()));
      const int64_t w = std::max<int64_t>(2 * n_ranks, warm / (2 * n_ranks) * (2 * n_ranks));
      const std::vector<int32_t> p = make_prompt(w + 1, config.vocab_size);
      gen.start(p, 1);
      training.forward_without_head(training_batch(p, w, layout, n_ranks, rank));
      backend->synchronize(*exec.compute);
    }
    for (int seq : prefill_seqs) {
      const std::vector<int32_t> prompt = make_prompt(seq + 1, config.vocab_size);
      const data::LocalBatch batch = training_batch(prompt, seq, layout, n_ranks, rank);
      std::vector<double> pre_s, train_s;
      double spent_s = 0;
      while (another_run(static_cast<int>(pre_s.size()), o.reps, spent_s, o.budget_s)) {
        auto time_prefill = [&] {
          grid.barrier();
          gen.start(prompt, 1);
          pre_s.push_back(mpi::allreduce_max(gen.stats().prefill_s));
        };
        auto time_training = [&] {
          grid.barrier();
          const double t0 = wall_seconds();
          training.forward_without_head(batch);
          backend->synchronize(*exec.compute);
          train_s.push_back(mpi::allreduce_max(wall_seconds() - t0));
        };
        // Alternating which goes first, so neither always follows the other.
        if (pre_s.size() % 2 == 0) time_prefill(), time_training();
        else time_training(), time_prefill();
        spent_s += pre_s.back() + train_s.back();
      }
      const double p_s = median(pre_s), t_s = median(train_s);
      const double ratio = t_s / p_s;  // = (seq / p_s) / (seq / t_s)
      const double ratio_best = *std::min_element(train_s.begin(), train_s.end()) / *std::min_element(pre_s.begin(), pre_s.end());
      worst_prefill_dev = std::max(worst_prefill_dev, std::fabs(ratio - 1));
      double plan_s = std::numeric_limits<double>::quiet_NaN();
      if (!o.no_plan) plan_s = plan::predict_prefill(plan_shape(seq, n_ranks), plan_flops, cpu_spec.link_gb_per_s * 1e9).seconds();
      prefill.add_row({Cell::integer(seq), Cell::integer(n_ranks), Cell::text(layout_name(layout)), Cell::text(precision_text),
                       Cell::integer(static_cast<long long>(pre_s.size())), Cell::number(p_s * 1e3, 1),
                       Cell::number(t_s * 1e3, 1), Cell::number(seq / p_s, 0), Cell::number(seq / t_s, 0),
                       Cell::number(ratio, 3), Cell::number(ratio_best, 3), Cell::number(plan_s * 1e3, 1), Cell::number(p_s / plan_s, 2)});
    }
  }
  report.table(prefill);

  // ---- decode vs the local bound ----
  Table decode("decode", {{"context", "tokens"}, {"ranks", "-"}, {"precision", "-"}, {"local", "tokens"}, {"reps", "-"},
                          {"steps", "tokens"}, {"ms_per_token", "ms"}, {"bound_ms", "ms"}, {"ratio", "x_bound"},
                          {"ratio_best", "x_bound"}, {"attn_ms", "ms"}, {"merge_ms", "ms"}, {"bound_attn_ms", "ms"},
                          {"sent_per_token", "bytes"}, {"sent_per_layer", "bytes"}, {"bytes_ratio", "x_first"},
                          {"cache_bytes", "bytes"},
                          {"fill_s", "s"}, {"plan_ms", "ms"}, {"vs_plan", "measured/plan"}});
  decode.comment("ms_per_token: Generator::append + rank 0's greedy token agreed (agree_token), on the ring of every "
                 "rank, from a cache of `context` synthetic tokens (Generator::start_synthetic)");
  decode.comment("bound_ms: the same steps on a ring of one rank (ProcessGrid::self()) holding this rank's `local` "
                 "tokens, every rank at once: the step without the merge's communication");
  decode.comment("per rep: steps tokens of each, interleaved (alternating which goes first); max over ranks of the rep's time / steps; medians over reps; "
                 "ratio = ms_per_token / bound_ms (target <= " + format("%.1f", kTargetDecodeRatio) + " at " +
                 std::to_string(kTargetRanks) + " ranks); ratio_best: the same from the fastest rep of each (the least "
                 "disturbed, on a shared machine)");
  decode.comment("attn_ms, merge_ms: the ring run's decode attention per token (all layers; CachedAttentionStats): the "
                 "local shard's attention and the merge (all-gather, log-sum-exp merge); bound_attn_ms: the bound's local "
                 "attention; max over ranks, over every timed rep");
  decode.comment("sent_per_token: bytes this rank sent per token (merge all-gathers of heads x (head_dim+1) floats per "
                 "layer, and the token's agreement on rank 0), max over ranks; sent_per_layer = that / layers");
  decode.comment("bytes_ratio: sent_per_layer / the first row's (target 1: independent of the context); fill_s: "
                 "start_synthetic's fill of the ring's cache (max over ranks)");
  decode.comment("cache_bytes: the ring run's KV cache per rank (keys and values in the precision's type, int32 positions "
                 "and segment ids), max over ranks");
  decode.comment("plan_ms: plan --inference's decode time per token with `context` tokens cached, device cpu");
  {
    // The merge's communication alone: the all-gather of one partial (heads x (head_dim + 1)
    // floats) over the grid, nothing else running; per call, max over ranks, median of 5 x 200.
    const std::size_t block = static_cast<std::size_t>(config.num_attention_heads * (config.head_dim() + 1));
    std::vector<float> mine(block, 1.f), all(block * static_cast<std::size_t>(n_ranks));
    std::vector<double> per_call;
    for (int rep = 0; rep < 6; ++rep) {
      grid.barrier();
      const double t0 = wall_seconds();
      for (int i = 0; i < 200; ++i) grid.allgather(mine.data(), block, all.data(), "bench: bare merge all-gather");
      const double s = mpi::allreduce_max((wall_seconds() - t0) / 200);
      if (rep > 0) per_call.push_back(s);  // rep 0 warms up
    }
    report.comment(format("bare merge all-gather (%zu floats per rank, %d ranks, nothing else running): %.1f us per call, "
                          "%.3f ms per token for %lld layers",
                          block, n_ranks, median(per_call) * 1e6,
                          median(per_call) * 1e3 * static_cast<double>(config.num_hidden_layers),
                          static_cast<long long>(config.num_hidden_layers)));
  }
  double worst_decode_ratio_best = 0;
  double worst_decode_ratio = 0, first_per_layer = 0, worst_bytes_dev = 0;
  for (int context : decode_contexts) {
    std::vector<double> ring_s, bound_s;
    double fill_s = 0, per_layer = 0, per_token = 0, attn_s = 0, merge_s = 0, bound_attn_s = 0, cache_bytes = 0;
    int64_t local = 0;
    {
      const int64_t new_tokens = kWarmupDecodeSteps + static_cast<int64_t>(o.reps) * o.decode_tokens;
      infer::Generator ring_gen(config, params, grid, exec, go);
      ring_gen.start_synthetic(context, new_tokens, 7);
      fill_s = mpi::allreduce_max(ring_gen.stats().prefill_s);
      cache_bytes = mpi::allreduce_max(static_cast<double>(ring_gen.stats().kv_cache_bytes));
      local = ring_gen.tokens_per_rank()[static_cast<std::size_t>(grid.rank())];
      infer::Generator bound_gen(config, params, *self, exec, go);
      bound_gen.start_synthetic(local, new_tokens, 7);
      int32_t ring_token = 1, bound_token = 1;
      time_decode(ring_gen, &ring_token, kWarmupDecodeSteps, grid);
      time_decode(bound_gen, &bound_token, kWarmupDecodeSteps, grid);
      const infer::GenerationStats before = ring_gen.stats();
      const infer::CachedAttentionStats ring_attn0 = ring_gen.attention_stats(), bound_attn0 = bound_gen.attention_stats();
      const int64_t bound_steps0 = bound_gen.stats().decode_steps;
      double spent_s = 0;
      while (another_run(static_cast<int>(ring_s.size()), o.reps, spent_s, o.budget_s)) {
        auto time_ring = [&] {
          ring_s.push_back(mpi::allreduce_max(time_decode(ring_gen, &ring_token, o.decode_tokens, grid)));
        };
        auto time_bound = [&] {
          bound_s.push_back(mpi::allreduce_max(time_decode(bound_gen, &bound_token, o.decode_tokens, grid)));
        };
        if (ring_s.size() % 2 == 0) time_ring(), time_bound();
        else time_bound(), time_ring();
        spent_s += ring_s.back() + bound_s.back();
      }
      const infer::GenerationStats& after = ring_gen.stats();
      const double steps = static_cast<double>(after.decode_steps - before.decode_steps);
      attn_s = mpi::allreduce_max((ring_gen.attention_stats().local_attention_s - ring_attn0.local_attention_s) / steps);
      merge_s = mpi::allreduce_max((ring_gen.attention_stats().merge_s - ring_attn0.merge_s) / steps);
      bound_attn_s = mpi::allreduce_max((bound_gen.attention_stats().local_attention_s - bound_attn0.local_attention_s) /
                                        static_cast<double>(bound_gen.stats().decode_steps - bound_steps0));
      per_token = mpi::allreduce_max(static_cast<double>(after.decode_bytes_sent - before.decode_bytes_sent) / steps);
      per_layer = per_token / static_cast<double>(config.num_hidden_layers);
    }
    const double token_s = median(ring_s) / o.decode_tokens, bound_s_per_token = median(bound_s) / o.decode_tokens;
    const double ratio = token_s / bound_s_per_token;
    const double ratio_best = *std::min_element(ring_s.begin(), ring_s.end()) / *std::min_element(bound_s.begin(), bound_s.end());
    if (n_ranks == kTargetRanks) {
      worst_decode_ratio = std::max(worst_decode_ratio, ratio);
      worst_decode_ratio_best = std::max(worst_decode_ratio_best, ratio_best);
    }
    if (first_per_layer == 0) first_per_layer = per_layer;
    const double bytes_ratio = per_layer / first_per_layer;
    worst_bytes_dev = std::max(worst_bytes_dev, std::fabs(bytes_ratio - 1));
    double plan_s = std::numeric_limits<double>::quiet_NaN();
    if (!o.no_plan)
      plan_s = plan::predict_decode(plan_shape(context, n_ranks), context, plan_flops, cpu_spec.memory_gb_per_s * 1e9,
                                    {cpu_spec.link_gb_per_s * 1e9, cpu_spec.link_latency_us * 1e-6})
                   .seconds();
    const auto local_max = static_cast<long long>(mpi::allreduce_max(static_cast<double>(local)));
    decode.add_row({Cell::integer(context), Cell::integer(n_ranks), Cell::text(precision_text), Cell::integer(local_max),
                    Cell::integer(static_cast<long long>(ring_s.size())), Cell::integer(o.decode_tokens),
                    Cell::number(token_s * 1e3, 3), Cell::number(bound_s_per_token * 1e3, 3), Cell::number(ratio, 3),
                    Cell::number(ratio_best, 3), Cell::number(attn_s * 1e3, 3), Cell::number(merge_s * 1e3, 3), Cell::number(bound_attn_s * 1e3, 3),
                    Cell::number(per_token, 0), Cell::number(per_layer, 0), Cell::number(bytes_ratio, 3),
                    Cell::number(cache_bytes, 0),
                    Cell::number(fill_s, 2), Cell::number(plan_s * 1e3, 3), Cell::number(token_s / plan_s, 2)});
  }
  report.table(decode);

  // ---- targets and noise ----
  if (!prefill_seqs.empty())
    report.comment(format("prefill vs training forward: worst |ratio - 1| = %.3f (target <= %.2f: %s)", worst_prefill_dev,
                          kPrefillTolerance, met(worst_prefill_dev <= kPrefillTolerance).c_str()));
  if (n_ranks == kTargetRanks && !decode_contexts.empty())
    report.comment(format("decode vs local bound at %d ranks: worst ratio %.3f (target <= %.2f: %s); from the least "
                          "disturbed reps: %.3f (%s)",
                          kTargetRanks, worst_decode_ratio, kTargetDecodeRatio,
                          met(worst_decode_ratio <= kTargetDecodeRatio).c_str(), worst_decode_ratio_best,
                          met(worst_decode_ratio_best <= kTargetDecodeRatio).c_str()));
  else
    report.comment(format("decode target not applicable (needs %d ranks)", kTargetRanks));
  if (!decode_contexts.empty())
    report.comment(format("decode bytes per token per layer: worst |ratio to the first context - 1| = %.3g (target 0: %s)",
                          worst_bytes_dev, met(worst_bytes_dev == 0).c_str()));
  const double wall_s = wall_seconds() - t_start;
  const double own_cpu_s = process_cpu_seconds() - cpu_start_s;
  const Spread cpu_use = spread(own_cpu_s / wall_s);
  const double all_ranks_cpu_s = mpi::allreduce_sum(own_cpu_s);
  report.comment(format("total %.1f s", mpi::allreduce_max(wall_s)));
  report.comment(format("noise: each rank used %.0f-%.0f%% of its core over the run (MPI waits spin, so well below "
                        "100%% means other processes took cores); load average %.2f at start, %.2f at end (rank 0)",
                        100 * cpu_use.min, 100 * cpu_use.max, load_start, load_average_1min()));
  report.comment("noise: " + machine_noise(machine_start, system_cpu(), all_ranks_cpu_s));
  return 0;
}
