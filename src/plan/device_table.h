// device_table.h: the figures the planner predicts with, per rank (one GPU, one MI250X GCD,
// or one CPU rank): peak dense FLOP/s by precision, memory, memory bandwidth, and the link a
// ring neighbour is reached over. GPU figures are vendor datasheet peaks (sources beside each
// entry in device_table.cpp); the CPU entry is measured when the plan is made (sgemm) and
// its memory read from /proc/meminfo by the plan command. Every figure can be overridden
// (--device-tflops, --device-mem-gib, --link-gbps).
#pragma once
#include <string>
#include <vector>

namespace rw::plan {

// The arithmetic the prediction assumes. ringworld computes in fp32 today; tf32 and bf16 are
// what the same step would reach on tensor / matrix cores (storage stays fp32 in this model).
enum class Precision { fp32, tf32, bf16 };

Precision parse_precision(const std::string& name);  // throws InputError on an unknown name
std::string precision_name(Precision precision);

struct DeviceSpec {
  std::string name;         // as given to --device
  std::string description;  // what one rank is
  double fp32_tflops = 0, tf32_tflops = 0, bf16_tflops = 0;  // peak dense (no sparsity)
  double memory_gib = 0;        // capacity per rank
  double memory_gb_per_s = 0;   // memory bandwidth (1e9 bytes/s)
  double link_gb_per_s = 0;     // one direction, to a ring neighbour in the same node (1e9 bytes/s)
  double reserve_mib = 0;       // memory a rank holds before ringworld allocates (runtime, libraries)
  std::string reserve_basis;    // where reserve_mib comes from
  std::string notes;            // what a figure stands for when it is not the obvious one

  double peak_tflops(Precision precision) const;
};

const std::vector<DeviceSpec>& device_table();
DeviceSpec find_device(const std::string& name);  // throws InputError listing the known names
std::string device_names();                       // "h100, h200, ..."

}  // namespace rw::plan
