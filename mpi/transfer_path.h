// transfer_path.h: how MPI traffic of device buffers travels (device/README.md, "MPI transport
// rule"):
//   direct  MPI reads and writes the device buffers themselves: the backend's device memory is
//           host-accessible (cpu), or the backend may hand device pointers to a GPU-aware MPI
//           (Capabilities::gpu_aware_mpi_possible) and this MPI says it is GPU-aware;
//   staged  device -> pinned host buffer on a copy stream, MPI on the pinned buffer, pinned ->
//           device on the copy stream; events order the copies against compute (sim-gpu, and a
//           GPU whose MPI is not GPU-aware).
// RINGWORLD_GPU_AWARE_MPI overrides the detection: auto (default), 0 (always staged, even on
// cpu: the tests force staging this way), 1 (direct: the user's switch for an MPI that cannot be
// asked, e.g. Cray MPICH with MPICH_GPU_SUPPORT_ENABLED=1; refused for a backend that cannot
// give device pointers to MPI at all). Free of <mpi.h>.
#pragma once
#include <string>

#include "device/stream.h"

namespace rw::mpi {

enum class TransferPath { direct, staged };
// What a component asks for: the rule above, or a fixed path (tests, benchmarks).
enum class PathChoice { automatic, direct, staged };

const char* transfer_path_name(TransferPath path);
// "auto", "direct" or "staged"; throws InputError on anything else.
PathChoice parse_path_choice(const std::string& text);

// What this MPI library says about device pointers: CUDA-aware (Open MPI's
// MPIX_Query_cuda_support, MPICH's MPIX_GPU_query_support) or ROCm-aware (Open MPI 5's
// MPIX_Query_rocm_support); false where the library cannot be asked. A backend build is one
// vendor's, so either answer stands for "this MPI takes this backend's device pointers".
bool mpi_is_gpu_aware();

// The path for a backend with these capabilities: `choice` if not automatic, else the
// RINGWORLD_GPU_AWARE_MPI override, else the detection above. Fatal (naming the variable) on a
// malformed override or a direct path the backend cannot take. `why` (optional) gets one line
// saying how the path was chosen.
TransferPath choose_transfer_path(const device::Capabilities& caps, PathChoice choice = PathChoice::automatic,
                                  std::string* why = nullptr);

}  // namespace rw::mpi
