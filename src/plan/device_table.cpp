// device_table.cpp: the device figures (see device_table.h). TFLOP/s are peak dense rates
// without structured sparsity (datasheets often print the sparse figure, twice these), memory
// is the HBM capacity the datasheet states, read as GiB (HBM stacks are binary-sized; the driver
// reports slightly less), link bandwidth is one direction of the link between two neighbours
// of a ring inside a node.
#include "src/plan/device_table.h"

#include "src/common/input_error.h"

namespace rw::plan {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  throw InputError("unknown precision '" + name + "' (known: fp32, tf32, bf16)");
}

std::string precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

double DeviceSpec::peak_tflops(Precision p) const {
  switch (p) {
    case Precision::fp32: return fp32_tflops;
    case Precision::tf32: return tf32_tflops;
    case Precision::bf16: return bf16_tflops;
  }
  return 0;
}

namespace {

// GPU runtimes keep part of device memory for themselves (context, loaded kernels, BLAS
// workspaces); ringworld has no GPU backend yet, so this is an assumption, not a measurement.
constexpr double kGpuReserveMib = 1024;
const char* kGpuReserveBasis = "assumed for the CUDA/HIP context, kernels and library workspaces (not measured)";
// Small-message latencies (`plan --inference`: decoding's per-layer all-gather), within a node
// and between nodes. CPU within the node: Open MPI shared-memory ping-pong between 2 ranks,
// 0.25 us measured (docs/toolchain.md). The rest are assumptions of the usual order, not
// measured here: a small MPI message between GPUs of a node (NVLink / Infinity Fabric, with the
// device-side launch and synchronisation around it) 5 us; between nodes (InfiniBand, Slingshot,
// Ethernet RDMA) 10 us; 100 Gb/s Ethernet between CPU nodes 5 us.
constexpr double kGpuLinkLatencyUs = 5, kGpuInterNodeLatencyUs = 10;
const char* kGpuLatencyBasis = "assumed for a small GPU-to-GPU MPI message, not measured";

std::vector<DeviceSpec> make_table() {
  std::vector<DeviceSpec> t;
  // Between nodes, each entry takes the network of the vendor's reference 8-GPU system, one
  // adapter per GPU where it has one: a rank's share of the node's adapters, one direction.
  // NVIDIA DGX A100 datasheet: 8 single-port ConnectX-6 200 Gb/s HDR InfiniBand for compute.
  const std::string dgx_a100_network = "DGX A100: one 200 Gb/s HDR InfiniBand adapter per GPU";
  // NVIDIA DGX H100 and DGX H200 datasheets: 8 single-port ConnectX-7 400 Gb/s InfiniBand/Ethernet.
  const std::string dgx_h_network = "DGX H100/H200: one 400 Gb/s ConnectX-7 adapter per GPU";

  // NVIDIA A100 Tensor Core GPU datasheet (A100 40GB SXM and A100 80GB SXM columns): FP32 19.5
  // TFLOPS, TF32 Tensor Core 156 TFLOPS and BF16 Tensor Core 312 TFLOPS dense (312 and 624 "with
  // sparsity"), 40 GB HBM2 at 1,555 GB/s or 80 GB HBM2e at 2,039 GB/s, NVLink 600 GB/s (both
  // directions together: 300 GB/s each way).
  t.push_back({"a100-40gb", "NVIDIA A100 SXM4 40GB, one GPU", 19.5, 156, 312, 40, 1555, 300, kGpuReserveMib,
               kGpuReserveBasis, "", 25, 8, dgx_a100_network, kGpuLinkLatencyUs, kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  t.push_back({"a100-80gb", "NVIDIA A100 SXM4 80GB, one GPU", 19.5, 156, 312, 80, 2039, 300, kGpuReserveMib,
               kGpuReserveBasis, "", 25, 8, dgx_a100_network, kGpuLinkLatencyUs, kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  // NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column): FP32 67 TFLOPS, TF32 Tensor Core
  // 989 TFLOPS and BF16 1,979 TFLOPS "with sparsity" (dense: half), 80 GB HBM3 at 3.35 TB/s,
  // NVLink 900 GB/s (both directions together: 450 GB/s each way).
  t.push_back({"h100", "NVIDIA H100 SXM5 80GB, one GPU", 67.0, 494.7, 989.4, 80, 3350, 450, kGpuReserveMib,
               kGpuReserveBasis, "", 50, 8, dgx_h_network, kGpuLinkLatencyUs, kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  // NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column): the H100's compute (FP32 67, TF32
  // 989 and BF16 1,979 TFLOPS with sparsity), 141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s.
  t.push_back({"h200", "NVIDIA H200 SXM 141GB, one GPU", 67.0, 494.7, 989.4, 141, 4800, 450, kGpuReserveMib,
               kGpuReserveBasis, "", 50, 8, dgx_h_network, kGpuLinkLatencyUs, kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  // AMD Instinct MI250X data sheet (per OAM package of two GCDs): FP32 matrix 95.7 TFLOPS,
  // BF16 383 TFLOPS, 128 GB HBM2e at 3.2 TB/s. One rank per GCD (how Frontier exposes it: 8
  // GCDs per node, 64 GB each), so half of each. CDNA2 has no TF32: the tf32 figure is the fp32
  // matrix rate. Link: one Infinity Fabric link, 50 GB/s each way (ROCm docs, "AMD Instinct
  // MI250 microarchitecture"); GCDs of different packages are joined by one or two such links
  // (OLCF Frontier user guide: 50-100 GB/s), so a ring through a node meets 50 GB/s hops.
  // Between nodes (OLCF Frontier user guide): four HPE Slingshot 200 Gb/s adapters per node of 8
  // GCDs, 25 GB/s each way per adapter, shared by two GCDs.
  t.push_back({"mi250x", "AMD Instinct MI250X, one GCD (half a package)", 47.85, 47.85, 191.5, 64, 1600, 50,
               kGpuReserveMib, kGpuReserveBasis, "no TF32 on CDNA2: tf32 = fp32 matrix rate", 12.5, 8,
               "Frontier: four 200 Gb/s Slingshot adapters per 8 GCDs, 12.5 GB/s each way per GCD", kGpuLinkLatencyUs,
               kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  // AMD Instinct MI300X data sheet: FP32 163.4 TFLOPS, TF32 653.7 TFLOPS, BF16 1,307.4
  // TFLOPS (dense; twice with sparsity), 192 GB HBM3 at 5.3 TB/s, seven Infinity Fabric links
  // of 128 GB/s (both directions) fully connecting 8 GPUs: 64 GB/s each way to a neighbour.
  // Between nodes: AMD's MI300X platform pairs each GPU with one 400 Gb/s adapter (as the DGX
  // H100 does): 50 GB/s each way.
  t.push_back({"mi300x", "AMD Instinct MI300X 192GB, one GPU", 163.4, 653.7, 1307.4, 192, 5300, 64, kGpuReserveMib,
               kGpuReserveBasis, "", 50, 8, "MI300X platform: one 400 Gb/s adapter per GPU", kGpuLinkLatencyUs,
               kGpuInterNodeLatencyUs, kGpuLatencyBasis});
  // This machine's CPU, one rank: the FLOP/s are the OpenBLAS sgemm rate measured when the plan
  // is made (device/cpu/sgemm_peak.h, the peak `train` reports MFU against; the same rate for
  // every precision: ringworld's CPU kernels are fp32), the memory is /proc/meminfo's
  // MemAvailable shared by the ranks of the node (both filled in by the plan command). Link:
  // Open MPI shared memory between two ranks, 5-8 GB/s measured (docs/toolchain.md); the low end.
  // Memory bandwidth (shown, not used): the one-core triad of docs/toolchain.md, 22 GB/s.
  // Reserve: the resident memory of a ringworld rank besides what the model counts: code and
  // libraries, MPI's shared-memory segments and free lists, OpenBLAS buffers, small allocations.
  // Measured as peak RSS (train's report, max over 2 ranks) minus this model's prediction over
  // seven small runs (tiny, small and hidden-64 models; 512-32K tokens; sp 2 and dp 2): 24.6,
  // 28.3, 29.2, 29.6, 30.1, 31.3, 34.1 MiB; 30 MiB is their median. Since the binary links
  // libavformat/libavcodec (video for `vqgan` and `prepare --vision`), every process also maps
  // their codec libraries at start: +17 MiB of VmRSS (an empty program linked with ringworld's
  // other libraries: 14.4 MiB at start; with libav* and giflib as well: 31.3 MiB), so 47 in all. With more ranks per node
  // MPI's segments grow, so treat it as a 2-rank figure. Every rank on this one node unless
  // --ranks-per-node says otherwise; between nodes 100 Gb/s Ethernet is assumed (not measured).
  t.push_back({"cpu", "this machine's CPU, one MPI rank", 0, 0, 0, 0, 22, 5, 47,
               "measured: peak RSS minus the model's bytes over small 2-rank CPU training runs", "", 12.5, 0,
               "assumed: 100 Gb/s Ethernet between nodes (12.5 GB/s each way), not measured", 0.25, 5,
               "within a node: shared-memory ping-pong, measured (docs/toolchain.md); between nodes: assumed"});
  // Figures from the command line only (--device-tflops, --device-mem-gib, --link-gbps, and
  // --inter-node-gbps when a ring leaves a node).
  t.push_back({"custom", "a device described on the command line", 0, 0, 0, 0, 0, 0, kGpuReserveMib,
               kGpuReserveBasis, "", 0, 0, "--inter-node-gbps", kGpuLinkLatencyUs, kGpuInterNodeLatencyUs,
               kGpuLatencyBasis});
  return t;
}

}  // namespace

const std::vector<DeviceSpec>& device_table() {
  static const std::vector<DeviceSpec> table = make_table();
  return table;
}

std::string device_names() {
  std::string names;
  for (const DeviceSpec& d : device_table()) names += (names.empty() ? "" : ", ") + d.name;
  return names;
}

DeviceSpec find_device(const std::string& name) {
  for (const DeviceSpec& d : device_table())
    if (d.name == name) return d;
  throw InputError("unknown device '" + name + "' (known: " + device_names() + ")");
}

}  // namespace rw::plan
