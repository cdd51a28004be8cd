// inference_report.h: what `ringworld plan --inference` prints: one rank's memory (the whole
// model, its KV cache shard, the prefill's working set, the reserve) against the memory left
// after a headroom, whether it fits and the smallest ring of the device that holds it, the
// prefill's time, and per decoded token its time, tokens/s and the bytes it reads and sends.
// evaluate_inference computes it once; inference_report prints it as text, inference_json as
// JSON. Pure; the command (src/cli/plan_command.cpp) gathers the request.
#pragma once
#include <string>

#include "src/plan/device_table.h"
#include "src/plan/inference_model.h"
#include "src/plan/node_links.h"

namespace rw::plan {

struct InferenceRequest {
  InferenceShape shape;
  std::string model_name;
  DeviceSpec device;                  // figures after overrides
  Precision precision = Precision::bf16;
  double peak_flops_per_s = 0;        // at this precision, per rank
  std::string peak_basis;
  double efficiency = 1.0;
  double capacity_bytes = 0;          // memory per rank
  std::string capacity_basis;
  double headroom = 0.10;
  double memory_bytes_per_s = 0;      // memory bandwidth per rank
  std::string memory_bandwidth_basis;
  double link_bytes_per_s = 0;        // one direction, between ranks of one node
  double inter_node_bytes_per_s = 0;  // one direction, a rank to another node
  std::string inter_node_basis;
  double link_latency_s = 0;          // one small message within a node
  double inter_node_latency_s = 0;    // one small message between nodes
  std::string latency_basis;
  int ranks_per_node = 0;             // 0: every rank on one node
  double reserve_bytes = 0;
};

struct InferenceResult {
  InferenceRequest request;
  InferenceMemory memory;
  double usable_bytes = 0;            // capacity x (1 - headroom)
  bool fits = false;
  int smallest_ring = 0;              // 0: none up to kMaxInferenceRing
  double smallest_ring_bytes = 0;
  int smallest_ring_nodes = 0;
  LinkUse links;                      // the ring (one ring of N ranks)
  DecodeLinks decode_links;           // the all-gather's link
  PrefillPrediction prefill;
  DecodePrediction decode;            // the last new token (or the first after the prompt)
  double generation_s = 0;            // prefill and every new token
};

constexpr int kMaxInferenceRing = 1 << 20;

InferenceResult evaluate_inference(const InferenceRequest& request);
std::string inference_report(const InferenceResult& result);
std::string inference_json(const InferenceResult& result);  // one JSON object, indented

}  // namespace rw::plan
