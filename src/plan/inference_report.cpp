// inference_report.cpp: see inference_report.h.
#include "src/plan/inference_report.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "src/plan/plan_report.h"
#include "src/plan/report_text.h"
#include "src/plan/token_count.h"

namespace rw::plan {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;


std::string count_text(int64_t n) {
  const std::string short_form = format_token_count(n);
  return short_form == std::to_string(n) ? short_form : std::to_string(n) + " (" + short_form + ")";
}

std::string element_name(double bytes) { return bytes == 2 ? "bf16" : bytes == 4 ? "fp32" : format_text("%.0f-byte", bytes); }

// The smallest ring that holds the run, in words: "16 x h100 (2 nodes of 8)".
std::string ring_text(const InferenceResult& r) {
  const InferenceRequest& q = r.request;
  if (r.smallest_ring == 0) return "none up to " + std::to_string(kMaxInferenceRing) + " ranks";
  std::string out = std::to_string(r.smallest_ring) + " x " + q.device.name;
  if (r.smallest_ring_nodes > 1) out += format_text(" (%d nodes of %d)", r.smallest_ring_nodes, q.ranks_per_node);
  return out;
}

DecodePrediction decode_at(const InferenceRequest& q, int64_t cache_tokens, const DecodeLinks& links) {
  return predict_decode(q.shape, cache_tokens, q.peak_flops_per_s * q.efficiency, q.memory_bytes_per_s, links);
}

}  // namespace

InferenceResult evaluate_inference(const InferenceRequest& q) {
  InferenceResult r;
  r.request = q;
  const InferenceShape& s = q.shape;
  r.usable_bytes = q.capacity_bytes * (1 - q.headroom);
  r.memory = predict_inference_memory(s, q.reserve_bytes);
  r.fits = r.memory.total_bytes() <= r.usable_bytes;
  r.smallest_ring = smallest_fitting_inference_ring(s, r.usable_bytes, q.reserve_bytes, kMaxInferenceRing);
  if (r.smallest_ring > 0) {
    InferenceShape at = s;
    at.ranks = r.smallest_ring;
    r.smallest_ring_bytes = predict_inference_memory(at, q.reserve_bytes).total_bytes();
    r.smallest_ring_nodes = q.ranks_per_node > 0 ? (r.smallest_ring + q.ranks_per_node - 1) / q.ranks_per_node : 1;
  }
  // One ring of N ranks: a TrainShape of dp 1 x sp N says which links it crosses.
  TrainShape ring;
  ring.sp = s.ranks;
  r.links = link_use(ring, {q.ranks_per_node, q.link_bytes_per_s, q.inter_node_bytes_per_s});
  const bool crosses = r.links.grid_spans_nodes();
  r.decode_links = {r.links.fsdp_bytes_per_s, crosses ? std::max(q.link_latency_s, q.inter_node_latency_s) : q.link_latency_s};
  r.prefill = predict_prefill(s, q.peak_flops_per_s * q.efficiency, r.links.ring_bytes_per_s);
  r.decode = decode_at(q, s.cache_tokens(), r.decode_links);
  // Decode time grows (nearly) linearly with the cache: K tokens take K x the mean of the
  // first's and the last's.
  r.generation_s = r.prefill.seconds();
  if (s.new_tokens > 0)
    r.generation_s += double(s.new_tokens) * 0.5 *
                      (decode_at(q, s.context_tokens + 1, r.decode_links).seconds() + r.decode.seconds());
  return r;
}

std::string inference_report(const InferenceResult& r) {
  const InferenceRequest& q = r.request;
  const InferenceShape& s = q.shape;
  const model::LlamaConfig& m = s.model;
  const InferenceMemory& mem = r.memory;
  const double flops_per_s = q.peak_flops_per_s * q.efficiency;
  std::string out;
  out += "ringworld plan --inference: " + q.model_name + ": " + m.describe() + "\n";
  out += format_text("  run      context %s tokens prefilled, %lld new token(s): a KV cache of %s tokens over a ring of %d rank(s)\n",
                count_text(s.context_tokens).c_str(), static_cast<long long>(s.new_tokens),
                count_text(s.cache_tokens()).c_str(), s.ranks);
  out += format_text("           %lld prompt tokens and up to %lld cached tokens per rank; %s layout for the prefill\n",
                static_cast<long long>(s.prompt_tokens_per_rank()), static_cast<long long>(s.cache_tokens_per_rank()),
                layout_name(s.layout).c_str());
  out += "  device   " + q.device.name + ": " + q.device.description + "\n";
  out += format_text("           peak %.4g TFLOP/s %s (%s) x efficiency %.2f; memory %s per rank (%s)\n",
                q.peak_flops_per_s / 1e12, precision_name(q.precision).c_str(), q.peak_basis.c_str(), q.efficiency,
                format_bytes(q.capacity_bytes).c_str(), q.capacity_basis.c_str());
  out += format_text("           memory bandwidth %.0f GB/s (%s)\n", q.memory_bytes_per_s / 1e9, q.memory_bandwidth_basis.c_str());
  out += format_text("           links each way: %.1f GB/s within a node, %.1f GB/s between nodes (%s)\n",
                q.link_bytes_per_s / 1e9, q.inter_node_bytes_per_s / 1e9, q.inter_node_basis.c_str());
  out += format_text("           latency per message: %.2f us within a node, %.2f us between nodes (%s)\n",
                q.link_latency_s * 1e6, q.inter_node_latency_s * 1e6, q.latency_basis.c_str());
  out += format_text("           %d rank(s) per node: %d node(s); %s\n", r.links.ranks_per_node, r.links.nodes,
                s.ranks == 1 ? "a ring of one rank (nothing travels)"
                : r.links.grid_spans_nodes() ? "the ring crosses nodes: its steps and all-gathers at the inter-node rate"
                                             : "the ring within a node");
  out += format_text("  precision: %s: weights and KV cache %.0f bytes per element, as `generate --precision %s` "
                "stores them (--precision %s); activations and ring messages fp32 (generate's bf16 moves K/V in bf16: "
                "an upper bound)\n",
                precision_name(q.precision).c_str(), s.weight_bytes_per_element,
                q.precision == Precision::bf16 ? "bf16" : "fp32",
                q.precision == Precision::bf16 ? "fp32: generate's default" : "bf16 for LWM's figure");

  out += "\nmemory per rank (every rank holds the whole model; the KV cache is split over the ring)\n";
  out += bytes_line(format_text("weights: the whole model, gathered and kept (%lld parameters x %.0f B)",
                     static_cast<long long>(m.parameter_count()), s.weight_bytes_per_element),
              mem.weight_bytes);
  out += bytes_line(format_text("weights: this rank's FSDP shards (1/%d of every unit)", s.ranks), mem.weight_shard_bytes);
  const double per_token_layer = kv_bytes_per_token_per_layer(s);
  out += bytes_line(format_text("KV cache: %lld tokens x %lld layers x 2 (K, V) x %lld kv_width x %.0f B", 
                     static_cast<long long>(s.cache_tokens_per_rank()), static_cast<long long>(m.num_hidden_layers),
                     static_cast<long long>(m.kv_width()), s.kv_bytes_per_element),
              mem.kv_cache_bytes);
  out += "  the prefill's working set at the last layer (its KV shard then: " +
         format_bytes(mem.kv_cache_prefill_bytes) + "; the training forward without what training saves)\n";
  for (const MemoryItem& item : mem.prefill_items) out += bytes_line(item.name, item.n_bytes);
  out += bytes_line("prefill working set, total", mem.prefill_working_bytes());
  out += "  reserve: " + q.device.reserve_basis + "\n";
  out += bytes_line("runtime and libraries", mem.reserve_bytes);
  out += format_text("  peak of the prefill %s; of the decoding %s\n", format_bytes(mem.prefill_peak_bytes()).c_str(),
                format_bytes(mem.decode_peak_bytes()).c_str());
  out += format_text("  predicted peak memory per rank: %s of %s usable (%s less %.0f%% headroom; %s): %.0f%%: %s\n",
                format_bytes(mem.total_bytes()).c_str(), format_bytes(r.usable_bytes).c_str(),
                format_bytes(q.capacity_bytes).c_str(), 100 * q.headroom, q.capacity_basis.c_str(),
                r.usable_bytes > 0 ? 100.0 * mem.total_bytes() / r.usable_bytes : 0.0, r.fits ? "fits" : "DOES NOT FIT");
  out += format_text("  KV cache, whole context: %s of %s (%s per token per layer); per rank %s = total / %d%s\n",
                format_bytes(mem.kv_cache_total_bytes).c_str(), element_name(s.kv_bytes_per_element).c_str(),
                format_bytes(per_token_layer).c_str(), format_bytes(mem.kv_cache_bytes).c_str(), s.ranks,
                s.cache_tokens() % s.ranks == 0 ? "" : " (rounded up: the largest shard)");
  out += format_text("  smallest ring of %s that holds it: %s%s\n", q.device.name.c_str(), ring_text(r).c_str(),
                r.smallest_ring > 0 ? (", " + format_bytes(r.smallest_ring_bytes) + " per rank").c_str() : "");
  out += format_text("  summary: %s at %s tokens needs %s of %s KV cache: %s\n", q.model_name.c_str(),
                format_token_count(s.cache_tokens()).c_str(), format_bytes(mem.kv_cache_total_bytes).c_str(),
                element_name(s.kv_bytes_per_element).c_str(), ring_text(r).c_str());

  const PrefillPrediction& p = r.prefill;
  out += format_text("\nprefill: the training ring forward of %s tokens (at %.4g TFLOP/s per rank; memory-bound work not counted)\n",
                count_text(s.context_tokens).c_str(), flops_per_s / 1e12);
  out += format_text("  FLOPs per rank: dense %.3e + attention %.3e\n", p.dense_flops_per_rank, p.attention_flops_per_rank);
  out += "  dense GEMMs                       " + seconds_text(p.dense_s) + "\n";
  out += "  attention compute (slowest rank)  " + seconds_text(p.attention_compute_s) + "\n";
  out += format_text("  ring transfers not hidden         %s  (over %.1f GB/s)\n", seconds_text(p.ring_exposed_s).c_str(),
                r.links.ring_bytes_per_s / 1e9);
  out += format_text("  prefill time: %s; %.0f tokens/s\n", seconds_text(p.seconds()).c_str(),
                double(s.context_tokens) / p.seconds());

  const DecodePrediction& d = r.decode;
  out += format_text("\ndecode, per new token with %s tokens cached (%lld on the largest shard; at %.0f GB/s, %.4g TFLOP/s)\n",
                count_text(s.cache_tokens()).c_str(), static_cast<long long>(d.cache_tokens_per_rank),
                q.memory_bytes_per_s / 1e9, flops_per_s / 1e12);
  out += format_text("  weights read (GEMV over every weight, one embedding row)   %11s  %s\n",
                format_bytes(d.weight_read_bytes).c_str(), seconds_text(d.weights_s).c_str());
  out += format_text("  KV shard read (the rank's own tokens, every layer)          %11s  %s\n",
                format_bytes(d.kv_read_bytes).c_str(), seconds_text(d.attention_s).c_str());
  out += format_text("  all-gathers: %lld layers x (%d step(s) x %.2f us + %d x %s at %.1f GB/s)  %s\n",
                static_cast<long long>(m.num_hidden_layers), d.allgather_steps, r.decode_links.latency_s * 1e6,
                s.ranks - 1, format_bytes(d.allgather_message_bytes).c_str(), r.decode_links.bytes_per_s / 1e9,
                seconds_text(d.allgather_s).c_str());
  out += format_text("  decode time per token: %s; %.1f tokens/s\n", seconds_text(d.seconds()).c_str(), 1.0 / d.seconds());
  out += format_text("  bytes per token per rank: read from memory %s, sent %s (received as much)\n",
                format_bytes(d.weight_read_bytes + d.kv_read_bytes).c_str(), format_bytes(d.sent_bytes_per_token).c_str());
  if (s.new_tokens > 0)
    out += format_text("  prefill and %lld new token(s): about %s\n", static_cast<long long>(s.new_tokens),
                  seconds_text(r.generation_s).c_str());
  out += format_text("\nverdict: %s\n", r.fits ? "fits" : "DOES NOT FIT (exit status 1)");
  return out;
}

std::string inference_json(const InferenceResult& r) {
  using json = nlohmann::ordered_json;
  const InferenceRequest& q = r.request;
  const InferenceShape& s = q.shape;
  const model::LlamaConfig& m = s.model;
  const InferenceMemory& mem = r.memory;
  json out;
  out["mode"] = "inference";
  out["model"] = {{"name", q.model_name},
                  {"parameters", m.parameter_count()},
                  {"hidden_size", m.hidden_size},
                  {"intermediate_size", m.intermediate_size},
                  {"num_hidden_layers", m.num_hidden_layers},
                  {"num_attention_heads", m.num_attention_heads},
                  {"num_key_value_heads", m.num_key_value_heads},
                  {"vocab_size", m.vocab_size}};
  if (m.has_vision()) out["model"]["vision_vocab_size"] = m.vision_vocab_size;
  out["run"] = {{"context_tokens", s.context_tokens},
                {"new_tokens", s.new_tokens},
                {"cache_tokens", s.cache_tokens()},
                {"ranks", s.ranks},
                {"layout", layout_name(s.layout)},
                {"prompt_tokens_per_rank", s.prompt_tokens_per_rank()},
                {"cache_tokens_per_rank", s.cache_tokens_per_rank()}};
  out["device"] = {{"name", q.device.name},
                   {"description", q.device.description},
                   {"precision", precision_name(q.precision)},
                   {"weight_bytes_per_element", s.weight_bytes_per_element},
                   {"kv_bytes_per_element", s.kv_bytes_per_element},
                   {"peak_flops_per_s", q.peak_flops_per_s},
                   {"peak_basis", q.peak_basis},
                   {"efficiency", q.efficiency},
                   {"memory_bytes", q.capacity_bytes},
                   {"memory_basis", q.capacity_basis},
                   {"memory_bytes_per_s", q.memory_bytes_per_s},
                   {"memory_bandwidth_basis", q.memory_bandwidth_basis},
                   {"intra_node_bytes_per_s", q.link_bytes_per_s},
                   {"inter_node_bytes_per_s", q.inter_node_bytes_per_s},
                   {"intra_node_latency_s", q.link_latency_s},
                   {"inter_node_latency_s", q.inter_node_latency_s},
                   {"latency_basis", q.latency_basis},
                   {"ranks_per_node", r.links.ranks_per_node},
                   {"nodes", r.links.nodes}};
  json items = json::array();
  for (const MemoryItem& item : mem.prefill_items) items.push_back({{"name", item.name}, {"bytes", item.n_bytes}});
  out["memory"] = {{"weights_bytes", mem.weight_bytes},
                   {"weight_shards_bytes", mem.weight_shard_bytes},
                   {"kv_cache_bytes", mem.kv_cache_bytes},
                   {"kv_cache_total_bytes", mem.kv_cache_total_bytes},
                   {"kv_bytes_per_token_per_layer", kv_bytes_per_token_per_layer(s)},
                   {"kv_cache_prefill_bytes", mem.kv_cache_prefill_bytes},
                   {"prefill_working_bytes", mem.prefill_working_bytes()},
                   {"prefill_items", items},
                   {"reserve_bytes", mem.reserve_bytes},
                   {"prefill_peak_bytes", mem.prefill_peak_bytes()},
                   {"decode_peak_bytes", mem.decode_peak_bytes()},
                   {"total_bytes", mem.total_bytes()},
                   {"capacity_bytes", q.capacity_bytes},
                   {"headroom", q.headroom},
                   {"usable_bytes", r.usable_bytes},
                   {"fits", r.fits},
                   {"smallest_fitting_ranks", r.smallest_ring > 0 ? json(r.smallest_ring) : json(nullptr)},
                   {"smallest_fitting_nodes", r.smallest_ring > 0 ? json(r.smallest_ring_nodes) : json(nullptr)},
                   {"smallest_fitting_bytes", r.smallest_ring > 0 ? json(r.smallest_ring_bytes) : json(nullptr)}};
  const PrefillPrediction& p = r.prefill;
  out["prefill"] = {{"dense_flops_per_rank", p.dense_flops_per_rank},
                    {"attention_flops_per_rank", p.attention_flops_per_rank},
                    {"dense_s", p.dense_s},
                    {"attention_compute_s", p.attention_compute_s},
                    {"ring_exposed_s", p.ring_exposed_s},
                    {"seconds", p.seconds()},
                    {"tokens_per_s", double(s.context_tokens) / p.seconds()}};
  const DecodePrediction& d = r.decode;
  out["decode"] = {{"cache_tokens", s.cache_tokens()},
                   {"cache_tokens_per_rank", d.cache_tokens_per_rank},
                   {"flops_per_rank", d.flops},
                   {"weight_read_bytes", d.weight_read_bytes},
                   {"kv_read_bytes", d.kv_read_bytes},
                   {"read_bytes_per_token", d.weight_read_bytes + d.kv_read_bytes},
                   {"weights_s", d.weights_s},
                   {"attention_s", d.attention_s},
                   {"allgather_message_bytes", d.allgather_message_bytes},
                   {"allgather_steps_per_layer", d.allgather_steps},
                   {"allgather_s", d.allgather_s},
                   {"sent_bytes_per_token", d.sent_bytes_per_token},
                   {"seconds_per_token", d.seconds()},
                   {"tokens_per_s", 1.0 / d.seconds()}};
  out["generation_s"] = r.generation_s;
  out["fits"] = r.fits;
  return out.dump(2) + "\n";
}

}  // namespace rw::plan
