// plan_report.h: what `ringworld plan` prints: memory per rank (at rest, batch, the peak of the
// step item by item, reserve), whether it fits and the smallest ring that does, FLOPs per step,
// the predicted step time, and whether ring communication hides under compute. Pure text from
// the models; the command (src/cli/plan_command.cpp) gathers the request.
#pragma once
#include <string>

#include "src/plan/device_table.h"
#include "src/plan/train_shape.h"

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
  double link_bytes_per_s = 0;   // one direction
  double reserve_bytes = 0;
  bool show_phases = false;      // list every phase of the step, not only the peak
  bool choose_micro_batch = true;  // shape.micro_batch_sequences is 0 and may become the largest that fits
};

// Largest ring the smallest-ring search looks at.
constexpr int kMaxRingSearched = 1 << 20;

std::string plan_report(const PlanRequest& request);

// "1.5 GiB", "12.3 MiB", "512 B".
std::string format_bytes(double n_bytes);

}  // namespace rw::plan
