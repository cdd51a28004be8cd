// test_generation.cpp: generation on the ring (src/infer/generator.h) under mpirun, on the ring
// of every rank and on a ring of one, every layout, GQA, prompts of lengths no layout divides.
//  - At every decode step the cached logits equal a full recompute without cache: the fp64
//    reference model (reference_transformer.h) over the whole sequence so far, last position.
//    Tolerance: 1e-4 of the logits' scale, the rule of test_training.cpp for a 2-layer fp32
//    model (fp32 rounding ~1e-7 per op, amplified by reductions of a few hundred terms); a
//    wrong cache row, position, mask or merge is off by the logits' own scale.
//  - Greedy tokens are identical on every ring size and layout.
//  - bf16 (generate --precision bf16): the logits within bf16's bound of the fp64 model and not
//    within the fp32 bound above (bf16 ran); greedy tokens identical on every ring size and
//    layout; the KV cache's keys and values take half the bytes.
//  - sim-gpu (device memory the host cannot touch, kernels run late on worker threads, random
//    delays when RINGWORLD_SIM_GPU_DELAY_US is set) gives the cpu's logits bit for bit, in fp32
//    and in bf16.
//  - Vision out (src/infer/vision_generation.h) on a tiny random vision model: LWM's token
//    structure, the same tokens on a ring of one and of every rank, guidance at s = 1 (s = 0)
//    equal to the prompt's (the unconditional) sequence alone; needle answers from a vision
//    model come from its text columns.
//  - Decoding moves no weights (every FSDP unit stays gathered) and its bytes per token do
//    not depend on the context length: layers x (ring - 1) x heads x (head_dim + 1) floats.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "device/backend.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"
#include "device/cpu/attention_reference.h"
#include "src/attention/attention_ops.h"
#include "src/infer/generator.h"
#include "src/infer/needle_generate.h"
#include "src/infer/sampling.h"
#include "src/infer/vision_generation.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/reference_transformer.h"
#include "src/train/fsdp_params.h"
#include "tests/test_support.h"

using namespace rw;

namespace {

// GQA: 4 query heads over 2 K/V heads of 8.
model::LlamaConfig generation_config() { return test::tiny_llama(37, 32, 40, 2, 4, 2, 10000); }

// The last position's logits of the fp64 model over the whole sequence.
std::vector<double> gold_next_logits(const model::LlamaConfig& config, const std::vector<int32_t>& tokens,
                                     uint64_t seed) {
  model::LocalParams<double> params(config, seed);
  ReferenceAttentionOp<double> attention(true);
  model::CpuMatMulDouble matmul;
  model::ReferenceTransformer<double> gold(config, params, attention, matmul);
  data::LocalBatch b;
  const int n = static_cast<int>(tokens.size());
  b.n_sequences = 1;
  b.n_local = n;
  b.tokens = tokens;
  b.targets.assign(n, -1);
  b.loss_weights.assign(n, 0.f);
  b.segment_ids.assign(n, 0);
  for (int i = 0; i < n; ++i) b.positions.push_back(i);
  std::vector<double> logits(static_cast<std::size_t>(n) * config.vocab_size);
  gold.forward(b, logits.data());
  return std::vector<double>(logits.end() - config.vocab_size, logits.end());
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

struct GenerationRun {
  std::vector<int32_t> tokens;                 // generated, greedy
  std::vector<std::vector<float>> logits;      // at every step
  infer::GenerationStats stats;
  train::FsdpParams::Stats fsdp_after_first_step, fsdp_end;
};

GenerationRun generate_greedy(const model::LlamaConfig& config, mpi::ProcessGrid& grid, Layout layout,
                              const std::vector<int32_t>& prompt, int new_tokens, uint64_t seed,
                              const std::string& device_name = "cpu",
                              model::Precision precision = model::Precision::fp32) {
  auto backend = device::make_backend(device_name);
  const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
  train::FsdpOptions fo = train::fsdp_options_for(precision);  // bf16: the bf16 working copy
  fo.gather_buffers = static_cast<int>(model::parameter_units(config).size());  // resident weights
  train::FsdpParams params(config, grid, exec, fo);
  params.initialize(seed);
  infer::GeneratorOptions go;
  go.layout = layout;
  go.tiling = {4, 4};  // several tiles per shard even on short prompts
  go.precision = precision;
  infer::Generator gen(config, params, grid, exec, go);
  GenerationRun run;
  const std::vector<float>* logits = &gen.start(prompt, new_tokens);
  for (int s = 0; s < new_tokens; ++s) {
    run.logits.push_back(*logits);
    run.tokens.push_back(gen.agree_token(argmax(*logits)));
    if (s == 0) run.fsdp_after_first_step = params.stats();
    if (s + 1 < new_tokens) logits = &gen.append(run.tokens.back());
  }
  run.stats = gen.stats();
  run.fsdp_end = params.stats();
  return run;
}

}  // namespace

TEST_CASE("cached decoding on the ring equals a full fp64 recompute at every step", "[generation]") {
  const model::LlamaConfig config = generation_config();
  const uint64_t seed = 11;
  const int new_tokens = 5;
  auto self = mpi::ProcessGrid::self();
  mpi::ProcessGrid ring(1, mpi::world_size());
  std::mt19937 rng(3);
  for (int prompt_len : {1, 2, 7, 13}) {
    std::vector<int32_t> prompt(static_cast<std::size_t>(prompt_len));
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % config.vocab_size);
    std::vector<int32_t> first_tokens;
    for (Layout layout : {Layout::contiguous, Layout::striped, Layout::zigzag}) {
      for (mpi::ProcessGrid* grid : {self.get(), &ring}) {
        INFO("prompt " << prompt_len << ", " << layout_name(layout) << ", ring of " << grid->size());
        const GenerationRun run = generate_greedy(config, *grid, layout, prompt, new_tokens, seed);
        std::vector<int32_t> sequence = prompt;
        for (int s = 0; s < new_tokens; ++s) {
          INFO("step " << s);
          const std::vector<double> gold = gold_next_logits(config, sequence, seed);
          CHECK(test::max_abs_error(run.logits[s], gold) <= 1e-4 * test::max_abs(gold));
          sequence.push_back(run.tokens[s]);
        }
        if (first_tokens.empty()) first_tokens = run.tokens;
        CHECK(run.tokens == first_tokens);  // greedy output: the same for every ring size and layout
        // Weights: gathered once in the first step, never moved again.
        CHECK(run.fsdp_end.gathers_cached - run.fsdp_after_first_step.gathers_cached ==
              run.fsdp_end.gathers - run.fsdp_after_first_step.gathers);
        CHECK(run.stats.decode_steps == new_tokens);
        CHECK(run.stats.prefill_tokens == prompt_len - 1);
      }
    }
  }
}

// bf16 decoding. Tolerance basis (the rule of unit/test_device_model.cpp's bf16 test): each
// rounding to bf16 errs by at most u = 2^-8 relative, and a tensor computed through D roundings
// in series errs to first order by at most D u of its scale (RMSNorm rescales every branch
// input; softmax and SiLU do not amplify). On this 2-layer model's longest path: per layer 9
// (n1; q, k, v and their weights; the o_proj weight; n2; g, u and their weights; a; the
// down_proj weight), plus the embedding table, nf and the lm_head weight: D = 21. The KV cache
// holds the same bf16 k and v the attention reads (no extra rounding); softmax statistics,
// partial outputs and their log-sum-exp merge are fp32. Bound: max|R - G| <= 21 u max|G|.
// About 1 s on 4 ranks.
TEST_CASE("bf16 decoding: within bf16's bound of fp64 and not fp32's, the same tokens on every ring, half the cache",
          "[generation][bf16]") {
  const model::LlamaConfig config = generation_config();
  const uint64_t seed = 11;
  const int new_tokens = 4;
  constexpr double kBf16UnitRoundoff = 1.0 / 256, kRoundings = 9 * 2 + 3;
  auto self = mpi::ProcessGrid::self();
  mpi::ProcessGrid ring(1, mpi::world_size());
  std::mt19937 rng(5);
  std::vector<int32_t> prompt(9);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % config.vocab_size);
  std::vector<int32_t> first_tokens;
  for (Layout layout : {Layout::contiguous, Layout::zigzag}) {
    for (mpi::ProcessGrid* grid : {self.get(), &ring}) {
      INFO(layout_name(layout) << ", ring of " << grid->size());
      const GenerationRun run =
          generate_greedy(config, *grid, layout, prompt, new_tokens, seed, "cpu", model::Precision::bf16);
      std::vector<int32_t> sequence = prompt;
      for (int s = 0; s < new_tokens; ++s) {
        const std::vector<double> gold = gold_next_logits(config, sequence, seed);
        const double err = test::max_abs_error(run.logits[s], gold);
        INFO("step " << s << ": error " << err << ", bf16 bound " << kRoundings * kBf16UnitRoundoff * test::max_abs(gold));
        CHECK(err <= kRoundings * kBf16UnitRoundoff * test::max_abs(gold));
        CHECK(err > 1e-4 * test::max_abs(gold));  // outside the fp32 bound: bf16 ran
        sequence.push_back(run.tokens[s]);
      }
      if (first_tokens.empty()) first_tokens = run.tokens;
      CHECK(run.tokens == first_tokens);
      // The bf16 weights: gathered once in the first step, never moved again.
      CHECK(run.fsdp_end.gathers_cached - run.fsdp_after_first_step.gathers_cached ==
            run.fsdp_end.gathers - run.fsdp_after_first_step.gathers);
      CHECK(run.fsdp_end.gathers > run.fsdp_after_first_step.gathers);
      // The cache: rows x (2 layers x K and V x kv_heads x head_dim elements + int32 pos and seg).
      const GenerationRun fp32 = generate_greedy(config, *grid, layout, prompt, new_tokens, seed);
      const std::size_t elems = 2 * static_cast<std::size_t>(config.num_hidden_layers) *
                                static_cast<std::size_t>(config.num_key_value_heads * config.head_dim());
      REQUIRE(fp32.stats.kv_cache_bytes % (elems * 4 + 8) == 0);
      const std::size_t rows = fp32.stats.kv_cache_bytes / (elems * 4 + 8);
      CHECK(rows >= 1);
      CHECK(run.stats.kv_cache_bytes == rows * (elems * 2 + 8));
    }
  }
}

TEST_CASE("decode bytes per token do not depend on the context length", "[generation]") {
  const model::LlamaConfig config = generation_config();
  mpi::ProcessGrid ring(1, mpi::world_size());
  const int world = ring.size();
  std::vector<std::size_t> per_token;
  for (int prompt_len : {6, 60}) {
    std::vector<int32_t> prompt(static_cast<std::size_t>(prompt_len), 3);
    const GenerationRun run = generate_greedy(config, ring, Layout::zigzag, prompt, 4, 7);
    per_token.push_back(run.stats.decode_bytes_sent / static_cast<std::size_t>(run.stats.decode_steps));
  }
  const std::size_t merge = static_cast<std::size_t>(config.num_hidden_layers) * (world - 1) *
                            static_cast<std::size_t>(config.num_attention_heads) * (config.head_dim() + 1) *
                            sizeof(float);
  const std::size_t agree = ring.rank() == 0 ? sizeof(uint64_t) * (world - 1) : 0;
  CHECK(per_token[0] == merge + agree);
  CHECK(per_token[1] == per_token[0]);
}

TEST_CASE("generation on sim-gpu equals cpu bit for bit", "[generation]") {
  const model::LlamaConfig config = generation_config();
  mpi::ProcessGrid ring(1, mpi::world_size());
  const std::vector<int32_t> prompt = {5, 9, 2, 33, 17, 8, 1, 30, 12};
  for (model::Precision precision : {model::Precision::fp32, model::Precision::bf16}) {
    INFO(model::precision_name(precision));
    const GenerationRun cpu = generate_greedy(config, ring, Layout::zigzag, prompt, 4, 13, "cpu", precision);
    const GenerationRun sim = generate_greedy(config, ring, Layout::zigzag, prompt, 4, 13, "sim-gpu", precision);
    CHECK(sim.tokens == cpu.tokens);
    for (std::size_t s = 0; s < cpu.logits.size(); ++s) CHECK(sim.logits[s] == cpu.logits[s]);
  }
}

namespace {

// The fp64 decode over a synthetic cache: each layer's keys and values start as
// Generator::start_synthetic's (positions 0..context-1, synthetic_kv_value), every decoded
// token's K (RoPE applied, as the model passes it) and V join them, and the one query row
// attends them all (causal by position).
class SyntheticCacheAttention : public model::AttentionOp<double> {
 public:
  SyntheticCacheAttention(const model::LlamaConfig& config, int64_t context, uint64_t seed)
      : width_(config.num_key_value_heads * config.head_dim()) {
    for (int l = 0; l < config.num_hidden_layers; ++l) {
      k_.emplace_back();
      v_.emplace_back();
      for (int64_t p = 0; p < context; ++p)
        for (int64_t e = 0; e < width_; ++e) {
          k_.back().push_back(infer::synthetic_kv_value(seed, l, 0, p, e));
          v_.back().push_back(infer::synthetic_kv_value(seed, l, 1, p, e));
        }
    }
    for (int64_t p = 0; p < context; ++p) pos_.push_back(static_cast<int32_t>(p));
  }
  void forward(int layer, const model::AttentionShape& s, const double* q, const double* k, const double* v,
               const int32_t* pos, const int32_t* seg, double* out, double* lse) override {
    REQUIRE((s.batch == 1 && s.n_local == 1 && seg[0] == 0));
    auto& keys = k_[static_cast<std::size_t>(layer)];
    auto& values = v_[static_cast<std::size_t>(layer)];
    keys.insert(keys.end(), k, k + width_);
    values.insert(values.end(), v, v + width_);
    if (layer == 0) pos_.push_back(pos[0]);
    const std::vector<int32_t> segs(pos_.size(), 0);
    const device::AttnShape shape{1, 1, static_cast<int>(pos_.size()), s.heads, s.kv_heads, s.head_dim};
    std::fill(out, out + static_cast<std::size_t>(s.heads) * s.head_dim, 0.0);
    std::fill(lse, lse + s.heads, -std::numeric_limits<double>::infinity());
    device::reference::attn_fwd_step<double, double>(shape, {pos, seg, pos_.data(), segs.data(), true},
                                                     1.0 / std::sqrt(double(s.head_dim)), q, keys.data(),
                                                     values.data(), out, lse);
  }
  void backward(int, const model::AttentionShape&, const double*, const double*, const double*, const int32_t*,
                const int32_t*, const double*, const double*, const double*, double*, double*, double*) override {
    FAIL("no backward in decoding");
  }

 private:
  int64_t width_;
  std::vector<std::vector<double>> k_, v_;
  std::vector<int32_t> pos_;
};

}  // namespace

// Generator::start_synthetic is perf/bench_inference.cpp's entry (a cache as if a long prompt
// had been prefilled). Checked: every decode step's logits against the fp64 model attending the
// same synthetic K/V (tolerance: the rule of the first test case), on the ring of every rank and
// a ring of one, every layout, context lengths no layout divides; and the tokens per rank equal
// those after a real prefill of the same length (the same placement). About 1 s.
TEST_CASE("decoding from a synthetic cache equals the fp64 model over the same keys and values", "[generation]") {
  const model::LlamaConfig config = generation_config();
  const uint64_t weight_seed = 5, kv_seed = 77;
  const int new_tokens = 4;
  auto self = mpi::ProcessGrid::self();
  mpi::ProcessGrid ring(1, mpi::world_size());
  for (int64_t context : {0, 1, 9, 50}) {
    // The fp64 logits of every step, decoding the tokens 3, 1, 4, 1.
    const std::vector<int32_t> tokens = {3, 1, 4, 1};
    std::vector<std::vector<double>> gold;
    {
      model::LocalParams<double> params(config, weight_seed);
      SyntheticCacheAttention attention(config, context, kv_seed);
      model::CpuMatMulDouble matmul;
      model::ReferenceTransformer<double> model(config, params, attention, matmul);
      for (int s = 0; s < new_tokens; ++s) {
        data::LocalBatch b;
        b.n_sequences = 1;
        b.n_local = 1;
        b.tokens = {tokens[static_cast<std::size_t>(s)]};
        b.targets = {-1};
        b.loss_weights = {0.f};
        b.segment_ids = {0};
        b.positions = {static_cast<int32_t>(context + s)};
        gold.emplace_back(static_cast<std::size_t>(config.vocab_size));
        model.forward(b, gold.back().data());
      }
    }
    for (Layout layout : {Layout::contiguous, Layout::striped, Layout::zigzag}) {
      for (mpi::ProcessGrid* grid : {self.get(), &ring}) {
        INFO("context " << context << ", " << layout_name(layout) << ", ring of " << grid->size());
        auto backend = device::make_backend("cpu");
        const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
        train::FsdpOptions fo;
        fo.gather_buffers = static_cast<int>(model::parameter_units(config).size());
        train::FsdpParams params(config, *grid, exec, fo);
        params.initialize(weight_seed);
        infer::GeneratorOptions go;
        go.layout = layout;
        go.tiling = {4, 4};
        infer::Generator gen(config, params, *grid, exec, go);
        gen.start_synthetic(context, new_tokens, kv_seed);
        CHECK(gen.length() == context);
        for (int s = 0; s < new_tokens; ++s) {
          INFO("step " << s);
          const std::vector<float>& logits = gen.append(tokens[static_cast<std::size_t>(s)]);
          CHECK(test::max_abs_error(logits, gold[static_cast<std::size_t>(s)]) <=
                1e-4 * test::max_abs(gold[static_cast<std::size_t>(s)]));
          if (s == 0) {
            // The placement of a real prefill of the same context (and its first decode step).
            infer::Generator real(config, params, *grid, exec, go);
            std::vector<int32_t> prompt(static_cast<std::size_t>(context), 2);
            prompt.push_back(tokens[0]);
            real.start(prompt, new_tokens);
            CHECK(gen.tokens_per_rank() == real.tokens_per_rank());
          }
        }
        const auto& held = gen.tokens_per_rank();
        CHECK(std::accumulate(held.begin(), held.end(), int64_t{0}) == context + new_tokens);
        CHECK(gen.stats().decode_steps == new_tokens);
        CHECK(gen.length() == context + new_tokens);
      }
    }
  }
}

namespace {

// Text ids 0..19; vision: codes 0..11, <eof> 12, <eov> 13, two spare ids.
model::LlamaConfig vision_config() {
  model::LlamaConfig c = test::tiny_llama(20, 32, 40, 2, 4, 2, 10000);
  c.vision_vocab_size = 16;
  return c;
}
const vision::VisionVocab kVisionVocab{20, 12, 16};

struct VisionModel {
  std::unique_ptr<device::Backend> backend;
  device::ExecContext exec;
  std::unique_ptr<train::FsdpParams> params;
  VisionModel(const model::LlamaConfig& config, mpi::ProcessGrid& grid, uint64_t seed)
      : backend(device::make_backend("cpu")), exec(device::ExecContext::on_default_stream(*backend)) {
    train::FsdpOptions fo;
    fo.gather_buffers = static_cast<int>(model::parameter_units(config).size());
    params = std::make_unique<train::FsdpParams>(config, grid, exec, fo);
    params->initialize(seed);
  }
};

infer::VisionGenerationOptions vision_options(double scale) {
  infer::VisionGenerationOptions o;
  o.frames = 2;
  o.codes_per_frame = 5;
  o.cfg_scale = scale;
  o.sampling.temperature = 1.0;
  o.sampling.top_k = 8;
  o.sampling.seed = 21;
  return o;
}

const std::vector<int32_t> kCondPrompt = {1, 7, 3, 9, 4, 15, 2}, kUncondPrompt = {1, 15};

std::vector<int32_t> guided_tokens(mpi::ProcessGrid& grid, double scale) {
  const model::LlamaConfig config = vision_config();
  VisionModel m(config, grid, 31);
  infer::GeneratorOptions go;
  go.tiling = {4, 4};
  infer::Generator cond(config, *m.params, grid, m.exec, go), uncond(config, *m.params, grid, m.exec, go);
  infer::GeneratorStream c(cond), u(uncond);
  return infer::generate_vision(c, u, kCondPrompt, kUncondPrompt, kVisionVocab, vision_options(scale),
                                [&](int32_t t) { return cond.agree_token(t); }, grid.rank() == 0)
      .tokens;
}

// One sequence alone: the structure forced, codes sampled from its own code columns.
std::vector<int32_t> one_sequence_tokens(mpi::ProcessGrid& grid, const std::vector<int32_t>& prompt, double scale) {
  const model::LlamaConfig config = vision_config();
  VisionModel m(config, grid, 31);
  infer::GeneratorOptions go;
  go.tiling = {4, 4};
  infer::Generator gen(config, *m.params, grid, m.exec, go);
  const infer::VisionGenerationOptions o = vision_options(scale);
  const int64_t total = infer::vision_generation_tokens(o.frames, o.codes_per_frame);
  infer::Sampler sampler(o.sampling);
  const std::vector<float>* logits = &gen.start(prompt, total);
  std::vector<int32_t> tokens;
  for (int64_t step = 0; step < total; ++step) {
    int32_t t = infer::forced_vision_token(kVisionVocab, o.frames, o.codes_per_frame, step);
    if (t < 0) t = kVisionVocab.code_id(gen.agree_token(sampler.next(logits->data() + 20, 12)));
    tokens.push_back(t);
    if (step + 1 < total) logits = &gen.append(t);
  }
  return tokens;
}

}  // namespace

// A few dozen decode steps of a 2-layer model: well under a second.
TEST_CASE("guided vision generation on the ring: LWM's structure, any ring size, s = 1 and s = 0 one sequence",
          "[generation][vision]") {
  auto self = mpi::ProcessGrid::self();
  mpi::ProcessGrid ring(1, mpi::world_size());
  const std::vector<int32_t> tokens = guided_tokens(ring, 2.5);
  REQUIRE(tokens.size() == 12);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    INFO("token " << i);
    if (i == 5) CHECK(tokens[i] == kVisionVocab.eof_id());
    else if (i == 11) CHECK(tokens[i] == kVisionVocab.eov_id());
    else CHECK((tokens[i] >= 20 && tokens[i] < 20 + 12));  // a code, never <eof>, <eov> or a spare id
  }
  CHECK(guided_tokens(*self, 2.5) == tokens);  // the ring of every rank = a ring of one
  CHECK(guided_tokens(ring, 1.0) == one_sequence_tokens(ring, kCondPrompt, 1.0));
  CHECK(guided_tokens(ring, 0.0) == one_sequence_tokens(ring, kUncondPrompt, 0.0));
}

// Before the fix the greedy answer was the argmax over text and vision columns: with 256 random
// vision columns beside 64 text ones, the argmax lands on a vision id. About a second.
TEST_CASE("needle generation answers from the text columns of a vision model", "[generation][needle]") {
  model::LlamaConfig config = test::tiny_llama(64, 32, 40, 2, 4, 2, 10000);
  config.vision_vocab_size = 256;
  mpi::ProcessGrid ring(1, mpi::world_size());
  VisionModel m(config, ring, 5);
  infer::GeneratorOptions go;
  go.tiling = {8, 8};
  infer::Generator gen(config, *m.params, ring, m.exec, go);
  infer::NeedleEvalOptions o;
  o.lengths = {48};
  o.depths = {50};
  o.trials = 2;
  o.passkey.vocab_size = 64;
  std::vector<infer::NeedleAnswer> answers;
  infer::generate_passkey_needles(gen, o, &answers, nullptr);
  REQUIRE(answers.size() == 2);
  for (const infer::NeedleAnswer& a : answers) {
    REQUIRE(!a.answer_tokens.empty());
    for (int32_t t : a.answer_tokens) CHECK((t >= 0 && t < 64));
  }
}
