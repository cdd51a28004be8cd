// plan_report.h: what `ringworld plan` prints: memory per rank (at rest, batch, the peak of the
// step item by item, reserve) against the memory left after a stated headroom, whether it fits
// and the smallest ring that does, the links the rings and collectives cross (within a node or
// between nodes), FLOPs per step, the predicted step time, whether ring communication hides
// under compute, and the largest MPI messages and HDF5 calls with the splitting they need.
// evaluate_plan computes it once; plan_report prints it as text, plan_json as JSON. Pure; the
// command (src/cli/plan_command.cpp) gathers the request.
#pragma once
#include "src/plan/report_text.h"  // format_bytes
#include <string>

#include "src/plan/device_table.h"
#include "src/plan/memory_model.h"
#include "src/plan/node_links.h"
#include "src/plan/step_time_model.h"
#include "src/plan/train_shape.h"
#include "src/plan/transfer_plan.h"

namespace rw::plan {

struct PlanRequest {
  TrainShape shape;
  std::string model_name;        // preset or file it came from
  std::string origin_note;       // e.g. which stage of a config file (may be empty)
  DeviceSpec device;             // figures after overrides
  Precision precision = Precision::fp32;
  double peak_flops_per_s = 0;   // at this precision, per rank
  std::string peak_basis;        // "datasheet", "measured sgemm", "--device-tflops"
  double efficiency = 1.0;       // share of peak the kernels reach
  double capacity_bytes = 0;     // memory per rank
  std::string capacity_basis;
  double headroom = kDefaultHeadroom;  // share of capacity_bytes kept free: fits means <= (1 - headroom) x capacity
  double link_bytes_per_s = 0;   // one direction, between ranks of one node
  double inter_node_bytes_per_s = 0;   // one direction, a rank to another node
  std::string inter_node_basis;
  int ranks_per_node = 0;        // 0: every rank on one node
  double reserve_bytes = 0;
  bool show_phases = false;      // list every phase of the step, not only the peak
  bool choose_micro_batch = true;  // shape.micro_batch_sequences is 0 and may become the largest that fits

  static constexpr double kDefaultHeadroom = 0.10;
};

struct PlanResult {
  PlanRequest request;
  MemoryPrediction memory;
  double usable_bytes = 0;       // capacity x (1 - headroom)
  bool fits_memory = false;
  int smallest_ring = 0;         // smallest sp (dp kept) that fits usable_bytes; 0: none
  double smallest_ring_bytes = 0;
  LinkUse links;
  StepTimePrediction time;
  TransferPlan transfers;
  double whole_batch_bytes = 0;  // the whole batch at once, before any micro-batch choice
  std::string micro_note;        // why the plan's micro-batch is what it is ("" without micro-batches)
  bool fits() const { return fits_memory; }
};

// Largest ring the smallest-ring search looks at.
constexpr int kMaxRingSearched = 1 << 20;

PlanResult evaluate_plan(const PlanRequest& request);
std::string plan_report(const PlanResult& result);
std::string plan_report(const PlanRequest& request);  // evaluate_plan, then the text
std::string plan_json(const PlanResult& result);      // one JSON object, indented


}  // namespace rw::plan
