// test_planner.cpp: the planner's models (src/plan/): parameter counts, how memory scales with
// the grid, the smallest fitting ring, the ring-overlap condition, FLOP counts against the code
// they describe, the device table and the token-count parser; the inference plan (plan
// --inference): LWM's 512 GiB KV cache, KV shards, a small case worked by hand, the smallest
// ring. The memory prediction against measured resident memory is
// tests/integration/test_planner.cpp.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "src/attention/attention_ops.h"
#include "src/common/input_error.h"
#include "src/common/transfer_limits.h"
#include "src/data/global_batch.h"
#include "src/data/synthetic_source.h"
#include "src/model/local_params.h"
#include "src/model/matmul.h"
#include "src/model/reference_transformer.h"
#include "src/plan/device_table.h"
#include "src/plan/inference_model.h"
#include "src/plan/inference_report.h"
#include "src/plan/memory_model.h"
#include "src/plan/plan_report.h"
#include "src/plan/step_time_model.h"
#include "src/plan/token_count.h"
#include "src/plan/transfer_plan.h"
#include "src/train/trainer.h"
#include "tests/device_model_support.h"
#include "tests/test_support.h"

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

TEST_CASE("a vision model counts its vision embedding and head; the loss chunk holds both heads' logits",
          "[planner][vision]") {
  TrainShape s = llama7b(4096, 1);
  const MemoryPrediction text = predict_memory(s, 0);
  s.model.vision_vocab_size = 8448;  // LWM's vision vocabulary
  // Two more [8448, 4096] tensors: embed_vision (unit 0) and vision_head (the head unit).
  CHECK(s.model.parameter_count() == 6738415616LL + 2LL * 8448 * 4096);
  const auto units = rw::model::parameter_units(s.model);
  CHECK(units.front().tensors.back().name == "model.embed_vision.weight");
  CHECK(units.back().tensors.back().name == "vision_head.weight");
  const MemoryPrediction vision = predict_memory(s, 0);
  CHECK(vision.weight_bytes == 4.0 * (6738415616.0 + 2.0 * 8448 * 4096));
  CHECK(vision.total_bytes() > text.total_bytes());
}

// The memory model's workspace items (residual, dx, saved tensors, scratch, batch, gradient
// buffer) are what the device model allocates (Transformer::workspace_bytes after a training
// step), in fp32 and with --precision bf16 (TrainShape::bf16), up to the workspace's alignment of
// every carved buffer to 256 bytes (at most 255 bytes for each of the 3 saved tensors per layer,
// the 20 scratch buffers and the 6 arrays). In bf16 the model's own weight copy is left out: the
// planner counts FSDP's bf16 gather, which makes it unnecessary (transformer.h).
TEST_CASE("the memory model's workspace is what the device model allocates, in fp32 and bf16", "[planner][bf16]") {
  const model::LlamaConfig config = test::tiny_llama(29, 16, 24, 2, 4, 2, 10000);
  data::SyntheticOptions so;
  so.seq_len = 24;
  so.global_sequences = 4;
  so.vocab_size = 29;
  const data::LocalBatch batch =
      data::slice_global_batch(data::synthetic_global_batch(so, 0), 1, 0, 1, 0, Layout::contiguous);
  double fp32_bytes = 0;
  for (bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16" : "fp32"));
    auto backend = device::create_backend("cpu");
    const device::ExecContext exec = device::ExecContext::on_default_stream(*backend);
    test::DeviceLocalParams params(exec, config, 3);
    test::LocalAttentionOp attention(exec, true, {8, 8});
    model::TransformerOptions to;
    to.ffn_chunk_tokens = 36;
    to.loss_chunk_tokens = 40;
    to.precision = bf16 ? model::Precision::bf16 : model::Precision::fp32;
    model::Transformer model(config, params, attention, exec, to);
    model.forward_backward(batch, 1.0);
    int64_t largest_unit = 0;
    for (const auto& u : model::parameter_units(config)) largest_unit = std::max(largest_unit, u.count);
    const double allocated = double(model.workspace_bytes()) - (bf16 ? 2.0 * double(largest_unit) : 0.0);
    TrainShape shape;
    shape.model = config;
    shape.seq_len = 24;
    shape.sequences_per_group = 4;
    shape.ffn_chunk_tokens = 36;
    shape.loss_chunk_tokens = 40;
    shape.bf16 = bf16;
    const MemoryPrediction p = predict_memory(shape, 0);
    double predicted = 0;
    for (const MemoryItem& item : p.phases.front().items)
      if (item.name != "all-gathered embedding") predicted += item.n_bytes;
    const double slack = 255.0 * (3 * double(config.num_hidden_layers) + 20 + 6);
    INFO("allocated " << allocated << " bytes, predicted " << predicted);
    CHECK(allocated >= predicted);
    CHECK(allocated <= predicted + slack);
    if (!bf16) fp32_bytes = allocated;
    else CHECK(allocated < fp32_bytes);  // bf16 is smaller (here mostly fp32: residual, dx, saved)
  }
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
  model::ReferenceTransformer<double> transformer(config, params, attention, matmul, options);
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
  for (const std::string name : {"a100-40gb", "a100-80gb", "h100", "h200", "mi250x", "mi300x"}) {
    INFO(name);
    const DeviceSpec d = find_device(name);
    CHECK(d.fp32_tflops > 0);
    CHECK(d.tf32_tflops >= d.fp32_tflops);
    CHECK(d.bf16_tflops >= d.tf32_tflops);
    CHECK(d.memory_gib > 0);
    CHECK(d.link_gb_per_s > 0);
    CHECK(d.peak_tflops(Precision::bf16) == d.bf16_tflops);
    // A GPU node: 8 ranks, a network slower than the links inside the node, a stated source.
    CHECK(d.ranks_per_node == 8);
    CHECK(d.inter_node_gb_per_s > 0);
    CHECK(d.inter_node_gb_per_s < d.link_gb_per_s);
    CHECK(!d.inter_node_basis.empty());
  }
  CHECK(find_device("h200").memory_gib > find_device("h100").memory_gib);
  // A100 datasheet: 40 and 80 GB, 312 TFLOPS bf16 dense, NVLink 600 GB/s (300 each way).
  CHECK(find_device("a100-40gb").memory_gib == 40);
  CHECK(find_device("a100-80gb").memory_gib == 80);
  CHECK(find_device("a100-80gb").bf16_tflops == 312);
  CHECK(find_device("a100-80gb").link_gb_per_s == 300);
  CHECK(find_device("a100-80gb").memory_gb_per_s > find_device("a100-40gb").memory_gb_per_s);
  CHECK(find_device("cpu").reserve_mib > 0);
  CHECK(find_device("cpu").ranks_per_node == 0);  // every rank on this node unless told otherwise
  CHECK(is_custom(find_device("custom")));
  try {
    find_device("a100");
    FAIL("no error for an unknown device");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("a100-40gb") != std::string::npos);
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

namespace {

PlanRequest h100_request(TrainShape shape) {
  PlanRequest q;
  q.shape = shape;
  q.model_name = "model 7b";
  q.device = find_device("h100");
  q.peak_flops_per_s = q.device.fp32_tflops * 1e12;
  q.peak_basis = "datasheet";
  q.capacity_bytes = q.device.memory_gib * kGiB;
  q.capacity_basis = "datasheet";
  q.link_bytes_per_s = q.device.link_gb_per_s * 1e9;
  q.inter_node_bytes_per_s = q.device.inter_node_gb_per_s * 1e9;
  q.inter_node_basis = q.device.inter_node_basis;
  q.ranks_per_node = q.device.ranks_per_node;
  q.reserve_bytes = q.device.reserve_mib * 1024 * 1024;
  return q;
}

}  // namespace

TEST_CASE("the report states the fit, the smallest ring and the overlap verdict", "[planner]") {
  PlanRequest q = h100_request(llama7b(1 << 20, 64));
  const std::string text = plan_report(q);
  CHECK(text.find("predicted peak memory per rank") != std::string::npos);
  CHECK(text.find(": fits") != std::string::npos);
  CHECK(text.find("smallest ring that fits (dp 1 kept): sp = 32") != std::string::npos);
  CHECK(text.find("forward : compute") != std::string::npos);
  q.capacity_bytes = 10 * kGiB;
  CHECK(plan_report(q).find("DOES NOT FIT") != std::string::npos);
}

TEST_CASE("fits means within the memory left after the headroom", "[planner]") {
  PlanRequest q = h100_request(llama7b(1 << 20, 64));
  const double total = predict_memory(q.shape, q.reserve_bytes).total_bytes();
  // Capacity between the prediction and the prediction plus 10%: fits only without headroom.
  q.capacity_bytes = total * 1.05;
  q.headroom = 0.10;
  PlanResult r = evaluate_plan(q);
  CHECK(r.usable_bytes == Approx(total * 1.05 * 0.9).epsilon(1e-12));
  CHECK_FALSE(r.fits_memory);
  CHECK_FALSE(r.fits());
  CHECK(plan_report(r).find("DOES NOT FIT") != std::string::npos);
  q.headroom = 0;
  r = evaluate_plan(q);
  CHECK(r.fits());
  CHECK(plan_report(r).find("usable (") != std::string::npos);
  // The smallest ring honours the headroom too: its prediction fits the usable memory.
  q.headroom = 0.25;
  q.capacity_bytes = 80 * kGiB;
  r = evaluate_plan(q);
  REQUIRE(r.smallest_ring > 0);
  CHECK(r.smallest_ring_bytes <= 0.75 * 80 * kGiB);
  TrainShape smaller = q.shape;
  const std::vector<int> sizes = possible_ring_sizes(smaller, kMaxRingSearched);
  const auto it = std::find(sizes.begin(), sizes.end(), r.smallest_ring);
  REQUIRE(it != sizes.begin());
  smaller.sp = *(it - 1);
  CHECK(predict_memory(smaller, q.reserve_bytes).total_bytes() > 0.75 * 80 * kGiB);
}

TEST_CASE("rings longer than a node cross nodes and run at the inter-node rate", "[planner]") {
  const NodeLinks links{8, 450e9, 50e9};
  // 64 ranks of 8 per node, one ring: 8 nodes, every node boundary and the wrap-around cross.
  LinkUse u = link_use(llama7b(1 << 20, 64), links);
  CHECK(u.nodes == 8);
  CHECK(u.ring_hops == 64);
  CHECK(u.crossing_hops == 8);
  CHECK(u.rings_crossing == 1);
  CHECK(u.ring_bytes_per_s == 50e9);
  CHECK(u.fsdp_bytes_per_s == 50e9);
  // dp 8 x sp 8: each ring inside its node; the FSDP collectives still span nodes.
  u = link_use(llama7b(1 << 20, 8, 8), links);
  CHECK(u.crossing_hops == 0);
  CHECK(u.rings_crossing == 0);
  CHECK(u.ring_bytes_per_s == 450e9);
  CHECK(u.fsdp_bytes_per_s == 50e9);
  // One node: nothing leaves it.
  u = link_use(llama7b(1 << 20, 8), links);
  CHECK(u.nodes == 1);
  CHECK(u.ring_bytes_per_s == 450e9);
  CHECK(u.fsdp_bytes_per_s == 450e9);
  // 6 ranks per node, rings of 4 over 12 ranks: ring 1 (positions 4-7) straddles nodes 0 and 1.
  u = link_use(llama7b(1 << 12, 4, 3), NodeLinks{6, 450e9, 50e9});
  CHECK(u.rings_crossing == 1);
  CHECK(u.crossing_hops == 2);
  CHECK(u.ring_bytes_per_s == 50e9);
  // 0 ranks per node: all on one.
  CHECK(link_use(llama7b(1 << 20, 64), NodeLinks{0, 450e9, 50e9}).nodes == 1);

  // The step time uses the inter-node link for a crossing ring: the forward threshold
  // c* = F (8 kv + 8) / (4 h share B) with B the inter-node 50 GB/s.
  PlanRequest q = h100_request(llama7b(1 << 20, 64));
  const PlanResult r = evaluate_plan(q);
  CHECK(r.time.link_bytes_per_s == 50e9);
  CHECK(r.time.fsdp_link_bytes_per_s == 50e9);
  CHECK(r.time.ring.fwd_min_block_tokens == Approx(67e12 * (8 * 4096 + 8) / (4 * 4096 * 0.5 * 50e9)).epsilon(1e-12));
  CHECK(plan_report(r).find("1 of 1 ring(s) cross nodes (8 of 64 hops)") != std::string::npos);
  q.ranks_per_node = 64;  // a (hypothetical) node of 64: NVLink throughout
  CHECK(evaluate_plan(q).time.link_bytes_per_s == 450e9);
}

TEST_CASE("the planner knows which transfers exceed one MPI or HDF5 call and how they split", "[planner]") {
  // Issue 14: LWM's 128K stage, 4M tokens per step over 32 ranks (sp 32, 32 sequences per
  // group): K|V per hop = 2 x 32 x 4096 tokens x 4096 x 4 B = 2^37 / 32 = 4 GiB: 4 MPI messages.
  TrainShape s = llama7b(1 << 17, 32);
  s.sequences_per_group = 32;
  TransferPlan t = plan_transfers(s);
  REQUIRE(t.items.size() >= 3);
  CHECK(t.items[0].name.find("ring K|V") != std::string::npos);
  CHECK(t.items[0].n_bytes == double(int64_t(1) << 32));
  CHECK(t.items[0].calls == 4);
  CHECK(t.items[t.largest].n_bytes == double(int64_t(1) << 32));
  // 128 ranks: exactly 1 GiB per hop, one message.
  s.sp = 128;
  CHECK(plan_transfers(s).items[0].calls == 1);
  // The limits are parameters: a 1 MiB limit splits a 1 GiB message into 1024.
  CHECK(plan_transfers(s, 1 << 20, 1 << 20).items[0].calls == 1024);
  // FSDP: the 7b layer unit (202,383,360 floats, the largest) over 2 ranks moves 2 x 101,191,680
  // floats (772 MiB) per all-gather: one call under 1 GiB; under a 64 MiB limit, calls of 2 x
  // 8,388,608 floats: ceil(101,191,680 / 8,388,608) = 13.
  TrainShape two = llama7b(4096, 2);
  TransferPlan f = plan_transfers(two);
  const TransferItem* gather = nullptr;
  for (const TransferItem& item : f.items)
    if (item.name.find("all-gather") != std::string::npos) gather = &item;
  REQUIRE(gather != nullptr);
  CHECK(gather->n_bytes == 2 * 101191680.0 * 4);
  CHECK(gather->calls == 1);
  int checked = 0;
  for (const TransferItem& item : plan_transfers(two, 64 << 20, 64 << 20).items)
    if (item.name.find("all-gather") != std::string::npos || item.name.find("reduce-scatter") != std::string::npos) {
      CHECK(item.calls == 13);
      ++checked;
    }
  CHECK(checked == 2);
  // The report names the splitting.
  PlanRequest q = h100_request(llama7b(1 << 17, 32));
  q.shape.sequences_per_group = 32;
  const std::string text = plan_report(q);
  CHECK(text.find("largest MPI transfer of a step: 4.00 GiB (ring K|V payload, per hop): split into 4 calls of <= 1.00 GiB") !=
        std::string::npos);
}

TEST_CASE("a reduce-scatter split into pieces adds its piece buffer to the memory model", "[planner]") {
  // Units of more than 1 GiB per call: the 7b layer unit (202M floats, 809 MB padded) on 1 rank
  // fits one call; a model with a 4x wider FFN does not.
  TrainShape s = llama7b(4096, 1);
  auto has_piece_buffer = [](const MemoryPrediction& m) {
    for (const MemoryPhase& phase : m.phases)
      for (const MemoryItem& item : phase.items)
        if (item.name.find("piece buffer") != std::string::npos) return true;
    return false;
  };
  CHECK_FALSE(has_piece_buffer(predict_memory(s, 0)));
  s.model.intermediate_size *= 4;
  const MemoryPrediction m = predict_memory(s, 0);
  CHECK(has_piece_buffer(m));
  for (const MemoryPhase& phase : m.phases)
    for (const MemoryItem& item : phase.items)
      if (item.name.find("piece buffer") != std::string::npos) CHECK(item.n_bytes == double(kMaxBytesPerMpiCall));
}

TEST_CASE("plan --json holds the report's figures", "[planner]") {
  PlanRequest q = h100_request(llama7b(1 << 20, 64));
  const PlanResult r = evaluate_plan(q);
  const nlohmann::json j = nlohmann::json::parse(plan_json(r));
  CHECK(j["fits"].get<bool>() == r.fits());
  CHECK(j["memory"]["total_bytes"].get<double>() == r.memory.total_bytes());
  CHECK(j["memory"]["usable_bytes"].get<double>() == r.usable_bytes);
  CHECK(j["memory"]["headroom"].get<double>() == 0.10);
  CHECK(j["memory"]["smallest_fitting_sp"].get<int>() == r.smallest_ring);
  CHECK(j["run"]["ranks"].get<int>() == 64);
  CHECK(j["model"]["parameters"].get<int64_t>() == 6738415616LL);
  CHECK(j["topology"]["ring_hops_crossing_nodes"].get<int>() == 8);
  CHECK(j["step"]["step_s"].get<double>() == r.time.step_s());
  CHECK(j["transfers"].size() == r.transfers.items.size());
  CHECK(j["transfers"][0]["calls"].get<double>() == r.transfers.items[0].calls);
}

// ---- plan --inference (src/plan/inference_model.h) ----

namespace {

InferenceShape lwm_1m(int ranks) {
  InferenceShape s;
  s.model = model::preset_config("7b");  // LWM-Text-1M has LLaMA-2 7B's shape (rope_theta aside)
  s.model.rope_theta = 5e7;
  s.context_tokens = int64_t(1) << 20;
  s.ranks = ranks;
  s.weight_bytes_per_element = s.kv_bytes_per_element = 2;  // bf16
  return s;
}

InferenceRequest h100_inference(const InferenceShape& s) {
  InferenceRequest q;
  q.shape = s;
  q.device = find_device("h100");
  q.precision = Precision::bf16;
  q.peak_flops_per_s = q.device.bf16_tflops * 1e12;
  q.capacity_bytes = q.device.memory_gib * kGiB;
  q.memory_bytes_per_s = q.device.memory_gb_per_s * 1e9;
  q.link_bytes_per_s = q.device.link_gb_per_s * 1e9;
  q.inter_node_bytes_per_s = q.device.inter_node_gb_per_s * 1e9;
  q.link_latency_s = q.device.link_latency_us * 1e-6;
  q.inter_node_latency_s = q.device.inter_node_latency_us * 1e-6;
  q.ranks_per_node = q.device.ranks_per_node;
  q.reserve_bytes = q.device.reserve_mib * 1024 * 1024;
  return q;
}

}  // namespace

TEST_CASE("inference plan: LWM-Text-1M at 1M tokens needs 512 GiB of bf16 KV cache, split evenly over the ring", "[planner]") {
  // 32 layers x 32 kv heads x 128 head_dim x 2 (K, V) x 2 bytes x 2^20 tokens = 2^39 bytes.
  const InferenceShape s = lwm_1m(16);
  CHECK(kv_bytes_per_token_per_layer(s) == 2.0 * 32 * 128 * 2);
  const InferenceMemory m = predict_inference_memory(s, 0);
  CHECK(m.kv_cache_total_bytes == 512 * kGiB);
  // A shard per rank: total / N when N divides the tokens, else the largest shard (ceil).
  for (int ranks : {1, 2, 8, 16, 64}) {
    CAPTURE(ranks);
    const InferenceMemory at = predict_inference_memory(lwm_1m(ranks), 0);
    CHECK(at.kv_cache_total_bytes == 512 * kGiB);
    CHECK(at.kv_cache_bytes == at.kv_cache_total_bytes / ranks);
  }
  const InferenceMemory three = predict_inference_memory(lwm_1m(3), 0);
  CHECK(three.kv_cache_bytes == double((int64_t(1) << 20) / 3 + 1) * 32 * 2 * 4096 * 2);
  // fp32 doubles it; GQA with 8 kv heads divides it by 4.
  InferenceShape f = s;
  f.kv_bytes_per_element = 4;
  CHECK(predict_inference_memory(f, 0).kv_cache_total_bytes == 1024 * kGiB);
  InferenceShape g = s;
  g.model.num_key_value_heads = 8;
  CHECK(predict_inference_memory(g, 0).kv_cache_total_bytes == 128 * kGiB);
  // Every rank holds the whole model: 6,738,415,616 parameters x 2 bytes, whatever N.
  CHECK(m.weight_bytes == 2.0 * 6738415616.0);
  CHECK(predict_inference_memory(lwm_1m(64), 0).weight_bytes == m.weight_bytes);
}

TEST_CASE("inference plan: a small case worked by hand", "[planner]") {
  InferenceShape s;
  s.model.vocab_size = 256;
  s.model.hidden_size = 64;
  s.model.intermediate_size = 172;
  s.model.num_hidden_layers = 2;
  s.model.num_attention_heads = 4;  // head_dim 16
  s.model.num_key_value_heads = 2;  // kv_width 32
  s.context_tokens = 1000;
  s.ranks = 4;  // 250 tokens per rank
  s.weight_bytes_per_element = s.kv_bytes_per_element = 2;
  s.validate();

  // Parameters: embedding 256 x 64 = 16384; a layer: norms 2 x 64 = 128, q 64 x 64 = 4096,
  // k and v 32 x 64 = 2048 each, o 4096, gate, up and down 172 x 64 = 11008 each: 45440;
  // head: norm 64 + lm_head 16384 = 16448. 16384 + 2 x 45440 + 16448 = 123712.
  REQUIRE(s.model.parameter_count() == 123712);
  const InferenceMemory m = predict_inference_memory(s, 0);
  CHECK(m.weight_bytes == 123712.0 * 2);
  // Shards over 4: 16384 / 4 = 4096, 45440 / 4 = 11360 (twice), 16448 / 4 = 4112: 30928 elements.
  CHECK(m.weight_shard_bytes == 30928.0 * 2);
  // K and V per token and layer: 2 x 2 kv heads x 16 x 2 bytes = 128; 250 tokens x 2 layers.
  CHECK(m.kv_cache_bytes == 250.0 * 2 * 128);
  CHECK(m.kv_cache_total_bytes == 1000.0 * 2 * 128);
  // Prefill working set, fp32, n = 250: x 4 x 250 x 64 = 64000; n1, q, k, v 4 x (2 x 250 x 64
  // + 2 x 250 x 32) = 192000; attention output and lse 4 x (250 x 64 + 250 x 4) = 68000; ring,
  // 2 slots of K|V fp32 and pos|seg int32: 2 x (4 x 2 x 250 x 32 + 4 x 2 x 250) = 132000; FFN
  // chunk of 250 rows (gate, up, output): 4 x 250 x (2 x 172 + 64) = 408000 (more than the head
  // chunk's 4 x 250 x (256 + 64) = 320000); the prompt shard 12 x 250 = 3000. Sum 867000.
  CHECK(m.prefill_working_bytes() == 867000.0);
  CHECK(m.prefill_peak_bytes() == 247424.0 + 61856.0 + 64000.0 + 867000.0);
  CHECK(m.total_bytes() == m.prefill_peak_bytes());

  // Decode at 1 TFLOP/s, 1 GB/s of memory, 1 GB/s links of 1 us latency.
  const double F = 1e12, BW = 1e9;
  const DecodePrediction d = predict_decode(s, 1000, F, BW, {1e9, 1e-6});
  // Weights read: every one but the embedding table, one row of it: (123712 - 16384 + 64) x 2
  // = 214784 bytes: 214.784 us (its 214016 FLOPs, 0.2 us, are hidden).
  CHECK(d.weight_read_bytes == 214784.0);
  // The KV shard: 2 layers x 250 tokens x 128 bytes = 64000 bytes: 64 us.
  CHECK(d.kv_read_bytes == 64000.0);
  // Per layer a partial result of 4 heads x (16 + 1) fp32 = 272 bytes; recursive doubling on 4
  // ranks: 2 steps of 1 us and 3 messages at 1 GB/s (0.816 us): 2.816 us, x 2 layers = 5.632 us.
  CHECK(d.allgather_message_bytes == 272.0);
  CHECK(d.allgather_steps == 2);
  CHECK(d.sent_bytes_per_token == 2.0 * 3 * 272);
  // Tolerances: a handful of double operations on exact inputs, relative error ~1e-15.
  CHECK(d.weights_s == Approx(214.784e-6).epsilon(1e-12));
  CHECK(d.attention_s == Approx(64e-6).epsilon(1e-12));
  CHECK(d.allgather_s == Approx(5.632e-6).epsilon(1e-12));
  CHECK(d.seconds() == Approx(284.416e-6).epsilon(1e-12));

  // Prefill at 1 TFLOP/s over 1 GB/s ring links. Dense per token: 2 layers x (4 x 64^2 +
  // 4 x 64 x 32 + 6 x 64 x 172 = 90624) + 2 x 64 x 256 = 214016, x 250 tokens = 53.504 MFLOP:
  // 53.504 us. Ring (zigzag): every step's compute is 4 x 64 x 250^2 / 2 = 8 MFLOP, 8 us; steps
  // 0-2 send the next shard, 250 x (2 x 32 x 4 + 8) = 66000 bytes, 66 us. Per layer 3 x 66 + 8
  // = 206 us of which 32 compute: 2 layers give 64 us of attention and 348 us exposed.
  const PrefillPrediction p = predict_prefill(s, F, 1e9);
  CHECK(p.dense_flops_per_rank == 53504000.0);
  CHECK(p.dense_s == Approx(53.504e-6).epsilon(1e-12));
  CHECK(p.attention_compute_s == Approx(64e-6).epsilon(1e-12));
  CHECK(p.ring_exposed_s == Approx(348e-6).epsilon(1e-12));
  CHECK(p.seconds() == Approx(465.504e-6).epsilon(1e-12));
  // Attention FLOPs per rank: 2 layers x 4 x 64 x (1000 x 1001 / 2) / 4 ranks.
  CHECK(p.attention_flops_per_rank == 2.0 * 4 * 64 * 500500 / 4);
}

TEST_CASE("inference plan: prefill counts what the training forward counts", "[planner]") {
  // The paper's forward (train's MFU count) has causal attention 4 s^2 h / 2 per layer; the
  // prefill's, summed over the ring, 4 h s (s + 1) / 2: equal up to (s + 1) / s.
  const InferenceShape s = lwm_1m(16);
  const PrefillPrediction p = predict_prefill(s, 1e15, 1e11);
  const double seq = double(s.context_tokens), h = 4096, layers = 32;
  const double paper_attention = paper_forward_flops(s.model, 1, seq) - 24.0 * seq * h * h * layers;
  CHECK(p.attention_flops_per_rank * 16 == Approx(paper_attention * (seq + 1) / seq).epsilon(1e-9));
  // Dense: the forward half of step_flops per token (4 h^2 + 4 h kv + 6 h i per layer, 2 h vocab).
  TrainShape t = llama7b(1 << 20, 16);
  const double forward_per_token = 32 * (4 * h * h + 4 * h * h + 6 * h * 11008) + 2 * h * 32000;
  CHECK(p.dense_flops_per_rank == forward_per_token * double(t.local_tokens()));
}

TEST_CASE("inference plan: decode traffic per layer does not grow with the context; the KV read does", "[planner]") {
  InferenceShape s = lwm_1m(8);
  const DecodeLinks links{50e9, 10e-6};
  s.context_tokens = 4096;
  const DecodePrediction short_ctx = predict_decode(s, s.cache_tokens(), 1e15, 3e12, links);
  s.context_tokens = 131072;
  const DecodePrediction long_ctx = predict_decode(s, s.cache_tokens(), 1e15, 3e12, links);
  CHECK(short_ctx.sent_bytes_per_token == long_ctx.sent_bytes_per_token);
  CHECK(short_ctx.allgather_s == long_ctx.allgather_s);
  CHECK(short_ctx.weight_read_bytes == long_ctx.weight_read_bytes);
  CHECK(long_ctx.kv_read_bytes == 32 * short_ctx.kv_read_bytes);
  // One rank: nothing sent, no all-gather.
  s.ranks = 1;
  const DecodePrediction alone = predict_decode(s, s.cache_tokens(), 1e15, 3e12, links);
  CHECK(alone.sent_bytes_per_token == 0);
  CHECK(alone.allgather_s == 0);
}

TEST_CASE("inference plan: the smallest ring that holds it is the first N that fits", "[planner]") {
  const InferenceRequest q = h100_inference(lwm_1m(16));
  const InferenceResult r = evaluate_inference(q);
  REQUIRE(r.smallest_ring > 1);
  auto fits_with = [&](int ranks) {
    InferenceRequest at = q;
    at.shape.ranks = ranks;
    return evaluate_inference(at).fits;
  };
  CHECK(fits_with(r.smallest_ring));
  CHECK_FALSE(fits_with(r.smallest_ring - 1));
  // 512 GiB of KV cache alone needs more than 512 / 72 usable GiB: at least 8 H100s.
  CHECK(r.smallest_ring >= 8);
  CHECK(r.smallest_ring_nodes == (r.smallest_ring + 7) / 8);
  // A device smaller than the model: no ring holds it (every rank holds the whole model).
  InferenceRequest small = q;
  small.capacity_bytes = 8 * kGiB;
  const InferenceResult none = evaluate_inference(small);
  CHECK(none.smallest_ring == 0);
  CHECK_FALSE(none.fits);
  // --json holds the same figures.
  const nlohmann::json j = nlohmann::json::parse(inference_json(r));
  CHECK(j["memory"]["kv_cache_total_bytes"].get<double>() == 512 * kGiB);
  CHECK(j["memory"]["kv_cache_bytes"].get<double>() == 32 * kGiB);
  CHECK(j["memory"]["smallest_fitting_ranks"].get<int>() == r.smallest_ring);
  CHECK(j["decode"]["seconds_per_token"].get<double>() == r.decode.seconds());
  CHECK(j["prefill"]["seconds"].get<double>() == r.prefill.seconds());
  CHECK(j["fits"].get<bool>() == r.fits);
}

TEST_CASE("inference plan: bad shapes are refused with a message", "[planner]") {
  auto refuses = [](InferenceShape s, const std::string& words) {
    try {
      s.validate();
    } catch (const InputError& e) {
      return std::string(e.what()).find(words) != std::string::npos;
    }
    return false;
  };
  const InferenceShape ok = lwm_1m(4);
  CHECK_NOTHROW(ok.validate());
  InferenceShape s = ok;
  s.context_tokens = 0;
  CHECK(refuses(s, "at least one token"));
  s = ok;
  s.ranks = 0;
  CHECK(refuses(s, "--ranks"));
  s = ok;
  s.new_tokens = -1;
  CHECK(refuses(s, "--max-new-tokens"));
  s = ok;
  s.context_tokens = int64_t(1) << 31;
  CHECK(refuses(s, "2^31 - 1"));
  s = ok;
  s.model.num_key_value_heads = 5;  // does not divide 32 heads
  CHECK_THROWS_AS(s.validate(), InputError);
}
