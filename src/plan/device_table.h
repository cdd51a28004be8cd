// device_table.h: the figures the planner predicts with, per rank (one GPU, one MI250X GCD,
// or one CPU rank): peak dense FLOP/s by precision, memory, memory bandwidth, and the link a
// ring neighbour is reached over. GPU figures are vendor datasheet peaks (sources beside each
// entry in device_table.cpp); the CPU entry is measured when the plan is made (sgemm) and
// its memory read from /proc/meminfo by the plan command. Links: one to a ring neighbour in the
// same node (NVLink, Infinity Fabric, shared memory) and one to another node (the network
// adapter a rank sends through), with the ranks one node holds (a ring longer than a node
// crosses nodes). Every figure can be overridden (--device-tflops, --device-mem-gib,
// --link-gbps, --inter-node-gbps, --ranks-per-node); `custom` has no figures of its own.
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
  double inter_node_gb_per_s = 0;  // one direction, per rank, to a rank on another node (1e9 bytes/s)
  int ranks_per_node = 0;          // ranks (GPUs, GCDs) of one node; 0: every rank on one node
  std::string inter_node_basis;    // where inter_node_gb_per_s comes from
  // One small message (a step of a latency-bound collective, as decoding's per-layer
  // all-gather), within a node and between nodes; --link-latency-us, --inter-node-latency-us.
  double link_latency_us = 0, inter_node_latency_us = 0;
  std::string latency_basis;

  double peak_tflops(Precision precision) const;
};

const std::vector<DeviceSpec>& device_table();
// "custom": a device with no figures, each given on the command line.
inline bool is_custom(const DeviceSpec& d) { return d.name == "custom"; }
DeviceSpec find_device(const std::string& name);  // throws InputError listing the known names
std::string device_names();                       // "h100, h200, ..."

}  // namespace rw::plan
