// test_planner.cpp: the planner's models (src/plan/): parameter counts, how memory scales with
// the grid, the smallest fitting ring, the ring-overlap condition, FLOP counts against the code
// they describe, the device table and the token-count parser. The memory prediction against
// measured resident memory is tests/integration/test_planner.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "src/attention/attention_ops.h"
#include "src/common/input_error.h"
#include "src/data/global_batch.h"
#include "src/data/synthetic_source.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/transformer.h"
#include "src/plan/device_table.h"
#include "src/plan/memory_model.h"
#include "src/plan/plan_report.h"
#include "src/plan/step_time_model.h"
#include "src/plan/token_count.h"
#include "src/train/trainer.h"

using namespace rw;
using namespace rw::plan;

namespace {

TrainShape llama7b(int64_t seq_len, int sp, int dp = 1) {
  TrainShape s;
  s.model = model::preset_config("7b");
  s.seq_len = seq_len;
  s.sp = sp;
  s.dp = dp;
  return s;
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

TEST_CASE("the 7b preset has LLaMA-2-7B's parameter count", "[planner]") {
  // Llama-2-7b-hf: 6,738,415,616 parameters (32 layers of 202,383,360, untied 32000 x 4096
  // embedding and lm_head, final norm).
  const TrainShape s = llama7b(4096, 1);
  CHECK(s.model.parameter_count() == 6738415616LL);
  const MemoryPrediction m = predict_memory(s, 0);
  // One rank holds everything: 4 fp32 arrays (weights, grads, AdamW m, v) and a decay flag byte.
  CHECK(m.weight_bytes == 4.0 * 6738415616.0);
  CHECK(m.at_rest_bytes() == 17.0 * 6738415616.0);
}

TEST_CASE("bytes per rank halve when the ranks double", "[planner]") {
  const int n_units = 32 + 2;
  for (int ranks : {1, 2, 8, 64, 512}) {
    const MemoryPrediction a = predict_memory(llama7b(1 << 20, ranks), 0);
    const MemoryPrediction b = predict_memory(llama7b(1 << 20, 2 * ranks), 0);
    // Shards are ceil(count / ranks): 2 ceil(c / 2r) - ceil(c / r) is 0 or 1 element per unit.
    const double excess = 2 * b.at_rest_bytes() - a.at_rest_bytes();
    CHECK(excess >= 0);
    CHECK(excess <= 17.0 * n_units);
    // Saved activations are per local token: exactly half (seq_len / sp stays an integer).
    CHECK(2 * b.saved_activation_bytes == a.saved_activation_bytes);
    CHECK(b.total_bytes() < a.total_bytes());
  }
}

TEST_CASE("dp groups shard the parameters but not the activations", "[planner]") {
  const MemoryPrediction one = predict_memory(llama7b(1 << 16, 8, 1), 0);
  const MemoryPrediction four = predict_memory(llama7b(1 << 16, 8, 4), 0);
  CHECK(four.saved_activation_bytes == one.saved_activation_bytes);
  CHECK(four.at_rest_bytes() < one.at_rest_bytes() / 3.99);
}

TEST_CASE("the peak is the phase with the most live bytes, and it contains everything saved", "[planner]") {
  const MemoryPrediction m = predict_memory(llama7b(1 << 20, 64), 0);
  REQUIRE(m.phases.size() >= 8);
  for (const MemoryPhase& p : m.phases) CHECK(p.n_bytes() <= m.peak.n_bytes());
  CHECK(m.peak.name.find("backward") != std::string::npos);
  // 32 layers x (input and attention output [N, 4096] + lse [N, 32]) fp32, N = 2^20 / 64.
  const double n = double(1 << 20) / 64;
  CHECK(m.saved_activation_bytes == 32 * 4 * (2 * n * 4096 + n * 32));
  CHECK(m.total_bytes() == m.reserve_bytes + m.at_rest_bytes() + m.batch_bytes + m.peak.n_bytes());
}

TEST_CASE("the smallest fitting ring fits, the next smaller one does not, and it is monotone", "[planner]") {
  const double reserve = 1 * kGiB;
  int previous = 1;
  // More memory never needs a larger ring.
  int last_ring = 1 << 30;
  for (double gib : {24.0, 40.0, 80.0, 141.0, 192.0, 1024.0}) {
    const int ring = smallest_fitting_ring(llama7b(1 << 20, 1), gib * kGiB, reserve, 1 << 19);
    REQUIRE(ring > 0);
    CHECK(ring <= last_ring);
    last_ring = ring;
    TrainShape at = llama7b(1 << 20, ring);
    CHECK(predict_memory(at, reserve).total_bytes() <= gib * kGiB);
    const std::vector<int> sizes = possible_ring_sizes(at, 1 << 19);
    const auto it = std::find(sizes.begin(), sizes.end(), ring);
    REQUIRE(it != sizes.end());
    if (it != sizes.begin()) {
      at.sp = *(it - 1);
      CHECK(predict_memory(at, reserve).total_bytes() > gib * kGiB);
    }
  }
  // Longer sequences never need a smaller ring (powers of two: every ring size divides them).
  for (int64_t seq = 1 << 14; seq <= (int64_t(1) << 24); seq *= 2) {
    const int ring = smallest_fitting_ring(llama7b(seq, 1), 80 * kGiB, reserve, 1 << 22);
    REQUIRE(ring > 0);
    CHECK(ring >= previous);
    previous = ring;
  }
  // Nothing fits when the at-rest state alone exceeds the memory (the ring does not shard it
  // enough below this size and the search is bounded).
  CHECK(smallest_fitting_ring(llama7b(1 << 20, 1), 1 * kGiB, reserve, 8) == 0);
}

TEST_CASE("possible ring sizes follow the layout's divisibility", "[planner]") {
  TrainShape s = llama7b(24, 1);
  s.layout = Layout::zigzag;  // 2 sp chunks: sp divides 12
  CHECK(possible_ring_sizes(s, 100) == std::vector<int>{1, 2, 3, 4, 6, 12});
  s.layout = Layout::striped;
  CHECK(possible_ring_sizes(s, 100) == std::vector<int>{1, 2, 3, 4, 6, 8, 12, 24});
  CHECK(possible_ring_sizes(s, 5) == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("ring communication hides exactly where c >= F * bytes / (k h share B) says", "[planner]") {
  // hidden = kv = 128 (no GQA): forward bytes per token 2 * 128 * 4 (K, V fp32) + 2 * 4 (pos,
  // seg) = 1032, compute per step 4 h * (c^2 / 2) (causal zigzag) => c* = F * 1032 / (2 * 128 B).
  // With F / B = 256 FLOP per byte, c* = 1032 tokens: the flip is at an integer c.
  TrainShape s;
  s.model.hidden_size = 128;
  s.model.num_attention_heads = 2;
  s.model.num_key_value_heads = 2;
  s.model.intermediate_size = 256;
  s.model.vocab_size = 64;
  s.sp = 2;
  const double link = 100e9, flops = 256 * link;
  auto at = [&](int64_t c) {
    s.seq_len = 2 * c;  // sp 2: c tokens per rank
    s.validate();
    return predict_step_time(s, flops, link).ring;
  };
  CHECK(at(1024).fwd_min_block_tokens == Approx(1032).epsilon(1e-12));
  CHECK_FALSE(at(1024).fwd_hidden());
  CHECK(at(1032).fwd_hidden());  // equal: compute == transfer hides
  CHECK(at(1032).fwd_step_compute_s == Approx(at(1032).fwd_step_transfer_s).epsilon(1e-12));
  CHECK(at(1040).fwd_hidden());
  // Backward: 10 h per pair, K, V, pos, seg and the fp32 dK|dV (2 * 128 * 4 more bytes):
  // c* = F * 2056 / (5 * 128 * B) = 822.4 tokens.
  CHECK(at(1032).bwd_min_block_tokens == Approx(256.0 * 2056 / 640).epsilon(1e-12));
  CHECK_FALSE(at(820).bwd_hidden());
  CHECK(at(824).bwd_hidden());
  // contiguous: the slowest rank computes whole block pairs, the threshold halves.
  s.layout = Layout::contiguous;
  CHECK(at(1032).fwd_min_block_tokens == Approx(516).epsilon(1e-12));
  // A hidden ring exposes no transfer but the backward's last dK|dV hop home.
  s.layout = Layout::zigzag;
  s.seq_len = 1 << 16;
  const StepTimePrediction t = predict_step_time(s, flops, link);
  REQUIRE(t.ring.fwd_hidden());
  REQUIRE(t.ring.bwd_hidden());
  const double n = double(s.seq_len) / 2;
  const double dkv_bytes_per_token = 2 * 128 * 4;  // dK, dV fp32
  CHECK(t.ring_exposed_s == Approx(double(s.model.num_hidden_layers) * n * dkv_bytes_per_token / link).epsilon(1e-9));
}

TEST_CASE("the paper FLOP count is train's, the executed dense count is what the model runs", "[planner]") {
  const model::LlamaConfig c7 = model::preset_config("7b");
  CHECK(3 * paper_forward_flops(c7, 4, 32768) == 3 * train::forward_flops(c7, 4, 32768, true));

  // Count the GEMM FLOPs the fp64 transformer executes in one forward_backward and compare
  // with the planner's dense count (one rank: dp = sp = 1).
  struct CountingMatMul : model::MatMul<double> {
    model::CpuMatMulDouble inner;
    double flops = 0;
    void operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                    const double* b, int64_t ldb, double beta, double* c, int64_t ldc) override {
      flops += 2.0 * double(m) * double(n) * double(k);
      inner(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
  };
  model::LlamaConfig config;
  config.vocab_size = 40;
  config.hidden_size = 16;
  config.intermediate_size = 24;
  config.num_hidden_layers = 3;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  data::SyntheticOptions opts;
  opts.seq_len = 20;
  opts.global_sequences = 2;
  opts.vocab_size = 40;
  const data::LocalBatch batch =
      data::slice_global_batch(data::synthetic_global_batch(opts, 0), 1, 0, 1, 0, Layout::contiguous);
  model::LocalParams<double> params(config, 3);
  ReferenceAttentionOp<double> attention(true);
  CountingMatMul matmul;
  model::TransformerOptions options;
  options.ffn_chunk_tokens = 7;
  options.loss_chunk_tokens = 6;
  model::Transformer<double> transformer(config, params, attention, matmul, options);
  transformer.forward_backward(batch, 1.0);

  TrainShape s;
  s.model = config;
  s.seq_len = 20;
  s.sequences_per_group = 2;
  s.layout = Layout::contiguous;
  CHECK(step_flops(s).dense_flops_per_rank == matmul.flops);
}

TEST_CASE("attention FLOPs: 14 h per visible pair, a share 1/sp per rank", "[planner]") {
  TrainShape s = llama7b(1 << 12, 4);
  const double pairs = double(1 << 12) * double((1 << 12) + 1) / 2;
  CHECK(step_flops(s).attention_flops_per_rank == 32 * 14 * 4096.0 * pairs / 4);
}

TEST_CASE("device table: datasheet figures present, precisions ordered, unknown names refused", "[planner]") {
  for (const std::string name : {"h100", "h200", "mi250x", "mi300x"}) {
    const DeviceSpec d = find_device(name);
    CHECK(d.fp32_tflops > 0);
    CHECK(d.tf32_tflops >= d.fp32_tflops);
    CHECK(d.bf16_tflops >= d.tf32_tflops);
    CHECK(d.memory_gib > 0);
    CHECK(d.link_gb_per_s > 0);
    CHECK(d.peak_tflops(Precision::bf16) == d.bf16_tflops);
  }
  CHECK(find_device("h200").memory_gib > find_device("h100").memory_gib);
  CHECK(find_device("cpu").reserve_mib > 0);
  try {
    find_device("a100");
    FAIL("no error for an unknown device");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("h100") != std::string::npos);
  }
  CHECK(parse_precision("tf32") == Precision::tf32);
  CHECK_THROWS_AS(parse_precision("fp8"), InputError);
}

TEST_CASE("token counts take K/M/G suffixes and refuse anything else", "[planner]") {
  CHECK(parse_token_count("4096", "--seq-len") == 4096);
  CHECK(parse_token_count("32K", "--seq-len") == 32768);
  CHECK(parse_token_count("32k", "--seq-len") == 32768);
  CHECK(parse_token_count("1M", "--seq-len") == 1048576);
  CHECK(parse_token_count("2G", "--seq-len") == (int64_t(2) << 30));
  for (const char* bad : {"", "K", "1.5M", "-1", "0", "12X", "1MK", " 1"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_token_count(bad, "--seq-len"), InputError);
  }
  CHECK(format_token_count(1 << 20) == "1M");
  CHECK(format_token_count(3 << 10) == "3K");
  CHECK(format_token_count(1000) == "1000");
}

TEST_CASE("the report states the fit, the smallest ring and the overlap verdict", "[planner]") {
  PlanRequest q;
  q.shape = llama7b(1 << 20, 64);
  q.model_name = "model 7b";
  q.device = find_device("h100");
  q.peak_flops_per_s = q.device.fp32_tflops * 1e12;
  q.peak_basis = "datasheet";
  q.capacity_bytes = q.device.memory_gib * kGiB;
  q.capacity_basis = "datasheet";
  q.link_bytes_per_s = q.device.link_gb_per_s * 1e9;
  q.reserve_bytes = q.device.reserve_mib * 1024 * 1024;
  const std::string text = plan_report(q);
  CHECK(text.find("predicted peak memory per rank") != std::string::npos);
  CHECK(text.find(": fits") != std::string::npos);
  CHECK(text.find("smallest ring that fits (dp 1 kept): sp = 32") != std::string::npos);
  CHECK(text.find("forward : compute") != std::string::npos);
  q.capacity_bytes = 10 * kGiB;
  CHECK(plan_report(q).find("DOES NOT FIT") != std::string::npos);
}
