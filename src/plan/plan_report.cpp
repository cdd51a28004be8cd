// plan_report.cpp: see plan_report.h.
#include "src/plan/plan_report.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "src/common/transfer_limits.h"
#include "src/plan/report_text.h"
#include "src/plan/token_count.h"

namespace rw::plan {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;


}  // namespace


PlanResult evaluate_plan(const PlanRequest& q) {
  PlanResult r;
  r.request = q;
  r.usable_bytes = q.capacity_bytes * (1 - q.headroom);
  // A batch that does not fit whole runs in the largest micro-batches that fit (train
  // --micro-batch-tokens); the rest of the plan is for that run.
  TrainShape& s = r.request.shape;
  r.whole_batch_bytes = predict_memory(s, q.reserve_bytes).total_bytes();
  if (q.choose_micro_batch && s.micro_batch_sequences == 0 && r.whole_batch_bytes > r.usable_bytes) {
    s.micro_batch_sequences = largest_fitting_micro_batch(s, r.usable_bytes, q.reserve_bytes);
    r.micro_note = s.micro_batch_sequences > 0 ? "chosen: the largest that fits; the whole batch at once needs " +
                                                     format_bytes(r.whole_batch_bytes)
                                               : "";
  } else if (s.micro_batches() > 1) {
    r.micro_note = "as given";
  }
  r.memory = predict_memory(s, q.reserve_bytes);
  r.fits_memory = r.memory.total_bytes() <= r.usable_bytes;
  r.smallest_ring = smallest_fitting_ring(s, r.usable_bytes, q.reserve_bytes, kMaxRingSearched);
  if (r.smallest_ring > 0) {
    TrainShape at = s;
    at.sp = r.smallest_ring;
    r.smallest_ring_bytes = predict_memory(at, q.reserve_bytes).total_bytes();
  }
  r.links = link_use(s, {q.ranks_per_node, q.link_bytes_per_s, q.inter_node_bytes_per_s});
  r.time = predict_step_time(s, q.peak_flops_per_s * q.efficiency, r.links.ring_bytes_per_s, r.links.fsdp_bytes_per_s);
  r.transfers = plan_transfers(s);
  return r;
}

std::string plan_report(const PlanRequest& q) { return plan_report(evaluate_plan(q)); }

std::string plan_report(const PlanResult& result) {
  const PlanRequest& q = result.request;
  const TrainShape& s = q.shape;
  const std::string& micro_note = result.micro_note;
  const model::LlamaConfig& m = s.model;
  std::string out;
  out += "ringworld plan: " + q.model_name + ": " + m.describe() + "\n";
  if (!q.origin_note.empty()) out += "  " + q.origin_note + "\n";
  const std::string short_len = format_token_count(s.seq_len);
  const std::string len_note = short_len == std::to_string(s.seq_len) ? "" : " (" + short_len + ")";
  out += format_text("  run      seq_len %lld%s, dp %d x sp %d = %d ranks, %lld sequence(s) per dp group, %s layout\n",
                static_cast<long long>(s.seq_len), len_note.c_str(), s.dp, s.sp, s.ranks(),
                static_cast<long long>(s.sequences_per_group), layout_name(s.layout).c_str());
  out += format_text("           %lld tokens per rank; tiles %d x %d, FFN chunk %lld, loss chunk %lld, %d kernel thread(s)\n",
                static_cast<long long>(s.local_tokens()), s.block_q, s.block_k,
                static_cast<long long>(s.ffn_chunk_tokens), static_cast<long long>(s.loss_chunk_tokens),
                s.kernel_threads);
  out += "  device   " + q.device.name + ": " + q.device.description + "\n";
  out += format_text("           peak %.4g TFLOP/s %s (%s) x efficiency %.2f; memory %s per rank (%s), %.0f GB/s;\n",
                q.peak_flops_per_s / 1e12, precision_name(q.precision).c_str(), q.peak_basis.c_str(), q.efficiency,
                format_bytes(q.capacity_bytes).c_str(), q.capacity_basis.c_str(), q.device.memory_gb_per_s);
  out += format_text("           links each way: %.1f GB/s (%.0f Gb/s) within a node, %.1f GB/s (%.0f Gb/s) between nodes (%s)\n",
                q.link_bytes_per_s / 1e9, q.link_bytes_per_s * 8 / 1e9, q.inter_node_bytes_per_s / 1e9,
                q.inter_node_bytes_per_s * 8 / 1e9, q.inter_node_basis.c_str());
  const LinkUse& lu = result.links;
  out += format_text("           %d rank(s) per node: %d node(s); ", lu.ranks_per_node, lu.nodes);
  if (s.sp == 1) out += "rings of one rank (nothing travels)";
  else if (!lu.ring_crosses_nodes()) out += "every ring within a node";
  else
    out += format_text("%d of %d ring(s) cross nodes (%d of %d hops): ring steps at the inter-node rate", lu.rings_crossing,
                  lu.rings, lu.crossing_hops, lu.ring_hops);
  out += lu.grid_spans_nodes() ? "; FSDP collectives between nodes\n" : "; FSDP collectives within the node\n";
  if (!q.device.notes.empty()) out += "           note: " + q.device.notes + "\n";
  if (s.bf16)
    out += "  precision: bf16 as `train --precision bf16` runs it: bf16 weights copy, GEMM and attention inputs and "
           "ring K/V; fp32 master weights, moments, gradients, residual and statistics\n";
  else
    out += "  precision: ringworld computes and stores fp32 by default; " + precision_name(q.precision) +
           " sets the FLOP/s of this prediction only (memory and ring messages stay fp32)\n";

  // Memory.
  const MemoryPrediction& mem = result.memory;
  out += s.bf16 ? "\nmemory per rank (bf16 working buffers, as `train --precision bf16` allocates them)\n"
                : "\nmemory per rank (fp32, as ringworld allocates it)\n";
  if (s.micro_batches() > 1)
    out += format_text("  micro-batches: %lld of %lld sequence(s) per dp group, --micro-batch-tokens %lld (%s)\n",
                  static_cast<long long>(s.micro_batches()), static_cast<long long>(s.micro_batch_sequences),
                  static_cast<long long>(s.micro_batch_sequences * s.dp * s.seq_len), micro_note.c_str());
  else if (q.choose_micro_batch && result.whole_batch_bytes > result.usable_bytes && s.sequences_per_group > 1)
    out += "  micro-batches: none fits, not even one sequence per dp group at a time\n";
  out += format_text("  parameters, gradients, AdamW state at rest: FSDP shards over %d ranks\n", s.ranks());
  out += bytes_line("weights", mem.weight_bytes);
  out += bytes_line("gradients", mem.grad_bytes);
  out += bytes_line("AdamW m and v", mem.adam_moment_bytes);
  out += bytes_line("weight-decay flags (1 byte per parameter)", mem.decay_flag_bytes);
  out += bytes_line("parameters and optimizer, total", mem.at_rest_bytes());
  out += "  local batch (tokens, targets, positions, segments, weights)\n";
  out += bytes_line("20 bytes per token", mem.batch_bytes);
  out += "  peak of the step: " + mem.peak.name + "\n";
  for (const MemoryItem& item : mem.peak.items) out += bytes_line(item.name, item.n_bytes);
  out += bytes_line("step peak, total (activations and transients)", mem.peak.n_bytes());
  out += "  reserve: " + q.device.reserve_basis + "\n";
  out += bytes_line("runtime and libraries", mem.reserve_bytes);
  const double total = mem.total_bytes();
  out += format_text("  peak activation memory per rank: %.1f MiB (saved for the backward %.1f MiB, working set %.1f MiB);"
                " parameter buffers at the peak %.1f MiB\n",
                mem.peak_activation_bytes() / kMiB, mem.saved_activation_bytes / kMiB,
                (mem.peak_activation_bytes() - mem.saved_activation_bytes) / kMiB,
                (mem.peak.n_bytes() - mem.peak_activation_bytes()) / kMiB);
  out += format_text("  predicted peak memory per rank: %.1f MiB (%s) of %s usable (%s less %.0f%% headroom; %s): %.0f%%: %s\n",
                total / kMiB, format_bytes(total).c_str(), format_bytes(result.usable_bytes).c_str(),
                format_bytes(q.capacity_bytes).c_str(), 100 * q.headroom, q.capacity_basis.c_str(),
                result.usable_bytes > 0 ? 100.0 * total / result.usable_bytes : 0.0,
                result.fits_memory ? "fits" : "DOES NOT FIT");
  if (q.show_phases) {
    out += "  every phase of the step (bytes besides the at-rest state, batch and reserve):\n";
    for (const MemoryPhase& phase : mem.phases) out += bytes_line(phase.name, phase.n_bytes());
  }
  if (result.smallest_ring > 0) {
    TrainShape at = s;
    at.sp = result.smallest_ring;
    out += format_text("  smallest ring that fits (dp %d kept): sp = %d, %d ranks, %lld tokens per rank, %s per rank\n", s.dp,
                  result.smallest_ring, at.ranks(), static_cast<long long>(at.local_tokens()),
                  format_bytes(result.smallest_ring_bytes).c_str());
  } else {
    out += format_text("  smallest ring that fits (dp %d kept): none up to sp = %d that %s splits seq_len %lld over\n", s.dp,
                  kMaxRingSearched, layout_name(s.layout).c_str(), static_cast<long long>(s.seq_len));
  }

  // Compute and time.
  const double flops_per_s = q.peak_flops_per_s * q.efficiency;
  const StepTimePrediction& t = result.time;
  out += "\nFLOPs per step\n";
  out += format_text("  model FLOPs, whole step (3 x forward, the RingAttention paper's count train reports): %.3e\n",
                t.flops.model_flops);
  out += format_text("  executed per rank (recomputation included): dense %.3e + attention %.3e = %.3e\n",
                t.flops.dense_flops_per_rank, t.flops.attention_flops_per_rank, t.flops.executed_per_rank());
  out += format_text("\npredicted step time (at %.4g TFLOP/s per rank; memory-bound work not counted)\n", flops_per_s / 1e12);
  out += "  dense GEMMs                       " + seconds_text(t.dense_s) + "\n";
  out += "  attention compute (slowest rank)  " + seconds_text(t.attention_compute_s) + "\n";
  out += "  ring transfers not hidden         " + seconds_text(t.ring_exposed_s) + "\n";
  out += "  FSDP all-gathers/reduce-scatters  " + seconds_text(t.fsdp_s) +
         (lu.grid_spans_nodes() ? "  (blocking, between nodes)\n" : "  (blocking, within the node)\n");
  const double global_tokens = double(s.dp) * double(s.sequences_per_group) * double(s.seq_len);
  out += format_text("  predicted step time: %s; %.0f tokens/s; MFU (paper count, against %.4g TFLOP/s peak) %.2f\n",
                seconds_text(t.step_s()).c_str(), global_tokens / t.step_s(), q.peak_flops_per_s / 1e12,
                t.flops.model_flops / s.ranks() / t.step_s() / q.peak_flops_per_s);

  const RingCondition& r = t.ring;
  out += "\nring: does communication hide under compute? (block compute time >= block transfer time)\n";
  if (s.sp == 1) {
    out += "  a ring of one rank: nothing travels\n";
  } else {
    out += format_text("  block c = seq_len / sp = %lld tokens of each sequence per ring step (K, V fp32 + pos, seg int32)\n",
                  static_cast<long long>(s.local_tokens_per_sequence()));
    out += format_text("  forward : compute %s, transfer %s per step: %s (hides when c >= %.0f tokens)\n",
                  seconds_text(r.fwd_step_compute_s).c_str(), seconds_text(r.fwd_step_transfer_s).c_str(),
                  r.fwd_hidden() ? "hidden" : "NOT hidden", r.fwd_min_block_tokens);
    out += format_text("  backward: compute %s, transfer %s per step (with dK|dV): %s (hides when c >= %.0f tokens)\n",
                  seconds_text(r.bwd_step_compute_s).c_str(), seconds_text(r.bwd_step_transfer_s).c_str(),
                  r.bwd_hidden() ? "hidden" : "NOT hidden", r.bwd_min_block_tokens);
    out += format_text("  (paper: c >= F/B = %.0f tokens for bf16 K/V and full block pairs; here %s K/V, %s)\n",
                  flops_per_s / t.link_bytes_per_s, s.bf16 ? "bf16" : "fp32",
                  s.layout == Layout::contiguous ? "contiguous: the slowest rank computes full block pairs"
                                                  : "causal halves the work per step");
    out += format_text("  over the %s link: %.1f GB/s each way\n", lu.ring_crosses_nodes() ? "inter-node" : "intra-node",
                  t.link_bytes_per_s / 1e9);
  }

  // Transfers and their splitting.
  const TransferPlan& tp = result.transfers;
  out += format_text("\nlargest transfers per rank (one MPI call moves at most %s, one HDF5 call %s; larger ones are split)\n",
                format_bytes(double(kMaxBytesPerMpiCall)).c_str(), format_bytes(double(kMaxBytesPerH5Call)).c_str());
  for (const TransferItem& item : tp.items)
    out += format_text("    %-72s %11s  %s, %.0f call(s)\n", item.name.c_str(), format_bytes(item.n_bytes).c_str(),
                  item.via.c_str(), item.calls);
  if (!tp.items.empty() && tp.items[tp.largest].via != "HDF5 (MPI-IO)") {
    const TransferItem& big = tp.items[tp.largest];
    out += format_text("  largest MPI transfer of a step: %s (%s): %s\n", format_bytes(big.n_bytes).c_str(), big.name.c_str(),
                  big.calls > 1 ? format_text("split into %.0f calls of <= %s", big.calls, format_bytes(big.limit_bytes).c_str()).c_str()
                                : "one call");
  }
  out += format_text("\nverdict: %s\n", result.fits() ? "fits" : "DOES NOT FIT (exit status 1)");
  return out;
}

std::string plan_json(const PlanResult& r) {
  using json = nlohmann::ordered_json;
  const PlanRequest& q = r.request;
  const TrainShape& s = q.shape;
  const model::LlamaConfig& m = s.model;
  json out;
  out["model"] = {{"name", q.model_name},
                  {"origin", q.origin_note},
                  {"parameters", m.parameter_count()},
                  {"hidden_size", m.hidden_size},
                  {"intermediate_size", m.intermediate_size},
                  {"num_hidden_layers", m.num_hidden_layers},
                  {"num_attention_heads", m.num_attention_heads},
                  {"num_key_value_heads", m.num_key_value_heads},
                  {"vocab_size", m.vocab_size}};
  if (m.has_vision()) out["model"]["vision_vocab_size"] = m.vision_vocab_size;
  out["run"] = {{"seq_len", s.seq_len},
                {"dp", s.dp},
                {"sp", s.sp},
                {"ranks", s.ranks()},
                {"sequences_per_group", s.sequences_per_group},
                {"layout", layout_name(s.layout)},
                {"tokens_per_rank", s.local_tokens()},
                {"block_q", s.block_q},
                {"block_k", s.block_k},
                {"ffn_chunk_tokens", s.ffn_chunk_tokens},
                {"loss_chunk_tokens", s.loss_chunk_tokens},
                {"kernel_threads", s.kernel_threads}};
  out["device"] = {{"name", q.device.name},
                   {"description", q.device.description},
                   {"precision", precision_name(q.precision)},
                   {"peak_flops_per_s", q.peak_flops_per_s},
                   {"peak_basis", q.peak_basis},
                   {"efficiency", q.efficiency},
                   {"memory_bytes", q.capacity_bytes},
                   {"memory_basis", q.capacity_basis},
                   {"intra_node_bytes_per_s", q.link_bytes_per_s},
                   {"inter_node_bytes_per_s", q.inter_node_bytes_per_s},
                   {"inter_node_basis", q.inter_node_basis}};
  const LinkUse& lu = r.links;
  out["topology"] = {{"ranks_per_node", lu.ranks_per_node},
                     {"nodes", lu.nodes},
                     {"rings", lu.rings},
                     {"rings_crossing_nodes", lu.rings_crossing},
                     {"ring_hops", lu.ring_hops},
                     {"ring_hops_crossing_nodes", lu.crossing_hops},
                     {"ring_link_bytes_per_s", lu.ring_bytes_per_s},
                     {"fsdp_link_bytes_per_s", lu.fsdp_bytes_per_s}};
  const MemoryPrediction& mem = r.memory;
  json peak_items = json::array();
  for (const MemoryItem& item : mem.peak.items)
    peak_items.push_back({{"name", item.name}, {"bytes", item.n_bytes}, {"parameter_buffer", item.is_parameter}});
  json phases = json::array();
  for (const MemoryPhase& phase : mem.phases) phases.push_back({{"name", phase.name}, {"bytes", phase.n_bytes()}});
  out["memory"] = {{"weights_bytes", mem.weight_bytes},
                   {"gradients_bytes", mem.grad_bytes},
                   {"adam_moments_bytes", mem.adam_moment_bytes},
                   {"decay_flags_bytes", mem.decay_flag_bytes},
                   {"batch_bytes", mem.batch_bytes},
                   {"reserve_bytes", mem.reserve_bytes},
                   {"saved_activation_bytes", mem.saved_activation_bytes},
                   {"peak_phase", mem.peak.name},
                   {"peak_items", peak_items},
                   {"phases", phases},
                   {"total_bytes", mem.total_bytes()},
                   {"capacity_bytes", q.capacity_bytes},
                   {"headroom", q.headroom},
                   {"usable_bytes", r.usable_bytes},
                   {"fits", r.fits_memory},
                   {"micro_batches", s.micro_batches()},
                   {"micro_batch_tokens", s.micro_batches() > 1 ? json(s.micro_batch_sequences * s.dp * s.seq_len) : json(nullptr)},
                   {"whole_batch_bytes", r.whole_batch_bytes},
                   {"smallest_fitting_sp", r.smallest_ring > 0 ? json(r.smallest_ring) : json(nullptr)},
                   {"smallest_fitting_sp_bytes", r.smallest_ring > 0 ? json(r.smallest_ring_bytes) : json(nullptr)}};
  const StepTimePrediction& t = r.time;
  const double global_tokens = double(s.dp) * double(s.sequences_per_group) * double(s.seq_len);
  out["step"] = {{"model_flops", t.flops.model_flops},
                 {"dense_flops_per_rank", t.flops.dense_flops_per_rank},
                 {"attention_flops_per_rank", t.flops.attention_flops_per_rank},
                 {"dense_s", t.dense_s},
                 {"attention_compute_s", t.attention_compute_s},
                 {"ring_exposed_s", t.ring_exposed_s},
                 {"fsdp_s", t.fsdp_s},
                 {"step_s", t.step_s()},
                 {"tokens_per_s", global_tokens / t.step_s()},
                 {"mfu", t.flops.model_flops / s.ranks() / t.step_s() / q.peak_flops_per_s}};
  out["ring"] = {{"block_tokens", s.local_tokens_per_sequence()},
                 {"forward_step_compute_s", t.ring.fwd_step_compute_s},
                 {"forward_step_transfer_s", t.ring.fwd_step_transfer_s},
                 {"forward_hidden", s.sp == 1 || t.ring.fwd_hidden()},
                 {"forward_min_block_tokens", t.ring.fwd_min_block_tokens},
                 {"backward_step_compute_s", t.ring.bwd_step_compute_s},
                 {"backward_step_transfer_s", t.ring.bwd_step_transfer_s},
                 {"backward_hidden", s.sp == 1 || t.ring.bwd_hidden()},
                 {"backward_min_block_tokens", t.ring.bwd_min_block_tokens}};
  json transfers = json::array();
  for (const TransferItem& item : r.transfers.items)
    transfers.push_back({{"name", item.name},
                         {"via", item.via},
                         {"bytes", item.n_bytes},
                         {"limit_bytes_per_call", item.limit_bytes},
                         {"calls", item.calls}});
  out["transfers"] = transfers;
  out["fits"] = r.fits();
  return out.dump(2) + "\n";
}

}  // namespace rw::plan
