// plan_report.cpp: see plan_report.h.
#include "src/plan/plan_report.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "src/plan/memory_model.h"
#include "src/plan/step_time_model.h"
#include "src/plan/token_count.h"

namespace rw::plan {
namespace {

constexpr double kMiB = 1024.0 * 1024.0, kGiB = kMiB * 1024.0;

std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

std::string seconds_text(double s) {
  if (s < 1e-3) return format("%.1f us", s * 1e6);
  if (s < 1) return format("%.2f ms", s * 1e3);
  if (s < 600) return format("%.2f s", s);
  return format("%.1f min", s / 60);
}

std::string line(const std::string& name, double n_bytes) {
  return format("    %-92s %11s\n", name.c_str(), format_bytes(n_bytes).c_str());
}

}  // namespace

std::string format_bytes(double n) {
  if (n >= kGiB) return format("%.2f GiB", n / kGiB);
  if (n >= kMiB) return format("%.1f MiB", n / kMiB);
  if (n >= 1024) return format("%.1f KiB", n / 1024);
  return format("%.0f B", n);
}

std::string plan_report(const PlanRequest& q) {
  // A batch that does not fit whole runs in the largest micro-batches that fit (train
  // --micro-batch-tokens); the rest of the report is for that run.
  TrainShape s = q.shape;
  const MemoryPrediction whole_batch = predict_memory(s, q.reserve_bytes);
  std::string micro_note;
  if (q.choose_micro_batch && s.micro_batch_sequences == 0 && whole_batch.total_bytes() > q.capacity_bytes) {
    s.micro_batch_sequences = largest_fitting_micro_batch(s, q.capacity_bytes, q.reserve_bytes);
    micro_note = s.micro_batch_sequences > 0 ? "chosen: the largest that fits; the whole batch at once needs " +
                                                   format_bytes(whole_batch.total_bytes())
                                             : "";
  } else if (s.micro_batches() > 1) {
    micro_note = "as given";
  }
  const model::LlamaConfig& m = s.model;
  std::string out;
  out += "ringworld plan: " + q.model_name + ": " + m.describe() + "\n";
  if (!q.origin_note.empty()) out += "  " + q.origin_note + "\n";
  const std::string short_len = format_token_count(s.seq_len);
  const std::string len_note = short_len == std::to_string(s.seq_len) ? "" : " (" + short_len + ")";
  out += format("  run      seq_len %lld%s, dp %d x sp %d = %d ranks, %lld sequence(s) per dp group, %s layout\n",
                static_cast<long long>(s.seq_len), len_note.c_str(), s.dp, s.sp, s.ranks(),
                static_cast<long long>(s.sequences_per_group), layout_name(s.layout).c_str());
  out += format("           %lld tokens per rank; tiles %d x %d, FFN chunk %lld, loss chunk %lld, %d kernel thread(s)\n",
                static_cast<long long>(s.local_tokens()), s.block_q, s.block_k,
                static_cast<long long>(s.ffn_chunk_tokens), static_cast<long long>(s.loss_chunk_tokens),
                s.kernel_threads);
  out += "  device   " + q.device.name + ": " + q.device.description + "\n";
  out += format("           peak %.4g TFLOP/s %s (%s) x efficiency %.2f; memory %s per rank (%s), %.0f GB/s;\n",
                q.peak_flops_per_s / 1e12, precision_name(q.precision).c_str(), q.peak_basis.c_str(), q.efficiency,
                format_bytes(q.capacity_bytes).c_str(), q.capacity_basis.c_str(), q.device.memory_gb_per_s);
  out += format("           link %.1f GB/s (%.0f Gb/s) each way to a ring neighbour\n", q.link_bytes_per_s / 1e9,
                q.link_bytes_per_s * 8 / 1e9);
  if (!q.device.notes.empty()) out += "           note: " + q.device.notes + "\n";
  out += "  precision: ringworld computes and stores fp32 today; " + precision_name(q.precision) +
         " sets the FLOP/s of this prediction only (memory and ring messages stay fp32)\n";

  // Memory.
  const MemoryPrediction mem = predict_memory(s, q.reserve_bytes);
  out += "\nmemory per rank (fp32, as ringworld allocates it)\n";
  if (s.micro_batches() > 1)
    out += format("  micro-batches: %lld of %lld sequence(s) per dp group, --micro-batch-tokens %lld (%s)\n",
                  static_cast<long long>(s.micro_batches()), static_cast<long long>(s.micro_batch_sequences),
                  static_cast<long long>(s.micro_batch_sequences * s.dp * s.seq_len), micro_note.c_str());
  else if (q.choose_micro_batch && whole_batch.total_bytes() > q.capacity_bytes && s.sequences_per_group > 1)
    out += "  micro-batches: none fits, not even one sequence per dp group at a time\n";
  out += format("  parameters, gradients, AdamW state at rest: FSDP shards over %d ranks\n", s.ranks());
  out += line("weights", mem.weight_bytes);
  out += line("gradients", mem.grad_bytes);
  out += line("AdamW m and v", mem.adam_moment_bytes);
  out += line("weight-decay flags (1 byte per parameter)", mem.decay_flag_bytes);
  out += line("parameters and optimizer, total", mem.at_rest_bytes());
  out += "  local batch (tokens, targets, positions, segments, weights)\n";
  out += line("20 bytes per token", mem.batch_bytes);
  out += "  peak of the step: " + mem.peak.name + "\n";
  for (const MemoryItem& item : mem.peak.items) out += line(item.name, item.n_bytes);
  out += line("step peak, total (activations and transients)", mem.peak.n_bytes());
  out += "  reserve: " + q.device.reserve_basis + "\n";
  out += line("runtime and libraries", mem.reserve_bytes);
  const double total = mem.total_bytes();
  out += format("  peak activation memory per rank: %.1f MiB (saved for the backward %.1f MiB, working set %.1f MiB);"
                " parameter buffers at the peak %.1f MiB\n",
                mem.peak_activation_bytes() / kMiB, mem.saved_activation_bytes / kMiB,
                (mem.peak_activation_bytes() - mem.saved_activation_bytes) / kMiB,
                (mem.peak.n_bytes() - mem.peak_activation_bytes()) / kMiB);
  out += format("  predicted peak memory per rank: %.1f MiB (%s) of %s (%.0f%%): %s\n", total / kMiB,
                format_bytes(total).c_str(), format_bytes(q.capacity_bytes).c_str(),
                q.capacity_bytes > 0 ? 100.0 * total / q.capacity_bytes : 0.0,
                total <= q.capacity_bytes ? "fits" : "DOES NOT FIT");
  if (q.show_phases) {
    out += "  every phase of the step (bytes besides the at-rest state, batch and reserve):\n";
    for (const MemoryPhase& phase : mem.phases) out += line(phase.name, phase.n_bytes());
  }
  const int smallest = smallest_fitting_ring(s, q.capacity_bytes, q.reserve_bytes, kMaxRingSearched);
  if (smallest > 0) {
    TrainShape at = s;
    at.sp = smallest;
    out += format("  smallest ring that fits (dp %d kept): sp = %d, %d ranks, %lld tokens per rank, %s per rank\n", s.dp,
                  smallest, at.ranks(), static_cast<long long>(at.local_tokens()),
                  format_bytes(predict_memory(at, q.reserve_bytes).total_bytes()).c_str());
  } else {
    out += format("  smallest ring that fits (dp %d kept): none up to sp = %d that %s splits seq_len %lld over\n", s.dp,
                  kMaxRingSearched, layout_name(s.layout).c_str(), static_cast<long long>(s.seq_len));
  }

  // Compute and time.
  const double flops_per_s = q.peak_flops_per_s * q.efficiency;
  const StepTimePrediction t = predict_step_time(s, flops_per_s, q.link_bytes_per_s);
  out += "\nFLOPs per step\n";
  out += format("  model FLOPs, whole step (3 x forward, the RingAttention paper's count train reports): %.3e\n",
                t.flops.model_flops);
  out += format("  executed per rank (recomputation included): dense %.3e + attention %.3e = %.3e\n",
                t.flops.dense_flops_per_rank, t.flops.attention_flops_per_rank, t.flops.executed_per_rank());
  out += format("\npredicted step time (at %.4g TFLOP/s per rank; memory-bound work not counted)\n", flops_per_s / 1e12);
  out += "  dense GEMMs                       " + seconds_text(t.dense_s) + "\n";
  out += "  attention compute (slowest rank)  " + seconds_text(t.attention_compute_s) + "\n";
  out += "  ring transfers not hidden         " + seconds_text(t.ring_exposed_s) + "\n";
  out += "  FSDP all-gathers/reduce-scatters  " + seconds_text(t.fsdp_s) + "  (blocking, over the same link)\n";
  const double global_tokens = double(s.dp) * double(s.sequences_per_group) * double(s.seq_len);
  out += format("  predicted step time: %s; %.0f tokens/s; MFU (paper count, against %.4g TFLOP/s peak) %.2f\n",
                seconds_text(t.step_s()).c_str(), global_tokens / t.step_s(), q.peak_flops_per_s / 1e12,
                t.flops.model_flops / s.ranks() / t.step_s() / q.peak_flops_per_s);

  const RingCondition& r = t.ring;
  out += "\nring: does communication hide under compute? (block compute time >= block transfer time)\n";
  if (s.sp == 1) {
    out += "  a ring of one rank: nothing travels\n";
  } else {
    out += format("  block c = seq_len / sp = %lld tokens of each sequence per ring step (K, V fp32 + pos, seg int32)\n",
                  static_cast<long long>(s.local_tokens_per_sequence()));
    out += format("  forward : compute %s, transfer %s per step: %s (hides when c >= %.0f tokens)\n",
                  seconds_text(r.fwd_step_compute_s).c_str(), seconds_text(r.fwd_step_transfer_s).c_str(),
                  r.fwd_hidden() ? "hidden" : "NOT hidden", r.fwd_min_block_tokens);
    out += format("  backward: compute %s, transfer %s per step (with dK|dV): %s (hides when c >= %.0f tokens)\n",
                  seconds_text(r.bwd_step_compute_s).c_str(), seconds_text(r.bwd_step_transfer_s).c_str(),
                  r.bwd_hidden() ? "hidden" : "NOT hidden", r.bwd_min_block_tokens);
    out += format("  (paper: c >= F/B = %.0f tokens for bf16 K/V and full block pairs; here fp32 K/V, %s)\n",
                  flops_per_s / q.link_bytes_per_s,
                  s.layout == Layout::contiguous ? "contiguous: the slowest rank computes full block pairs"
                                                  : "causal halves the work per step");
  }
  return out;
}

}  // namespace rw::plan
