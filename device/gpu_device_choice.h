// gpu_device_choice.h: which GPU a rank uses (the cuda and hip backends): one rank per GPU (per
// GCD on an MI250X, which shows each GCD as a device), chosen from the rank's place on its node:
//   RINGWORLD_GPU_DEVICE=N     that device (all ranks of the process's environment)
//   else node-local rank % device count, the node-local rank from the launcher's environment:
//     OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), SLURM_LOCALID (srun), MPI_LOCALRANKID (MPICH,
//     Intel MPI), PALS_LOCAL_RANKID (Cray PALS / aprun successors), MV2_COMM_WORLD_LOCAL_RANK
//     (MVAPICH2), FLUX_TASK_LOCAL_ID (Flux); the first one set wins
//   else device 0.
// Plain environment arithmetic (no MPI, no GPU runtime), so it is tested on any machine. When a
// node runs more ranks than it has devices, ranks share devices (the basis text says so).
#pragma once
#include <string>

namespace rw::device {

struct GpuDeviceChoice {
  int device = 0;
  std::string basis;  // e.g. "node-local rank 5 (SLURM_LOCALID) of 4 devices"
};

// The node-local rank the launcher exported, or -1 (and *variable = "") when none is set.
// Throws InputError for a value that is not a non-negative integer.
int node_local_rank_from_environment(std::string* variable = nullptr);

// device_count >= 1. Throws InputError for RINGWORLD_GPU_DEVICE outside [0, device_count).
GpuDeviceChoice choose_gpu_device(int device_count);

}  // namespace rw::device
