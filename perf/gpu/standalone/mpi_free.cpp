// mpi_free.cpp: the few functions of mpi/ that the ring's device transfers (mpi/device_ring.cpp,
// mpi/device_transfers.cpp) call and whose real definitions need MPI (mpi/runtime.cpp,
// mpi/transfer_path.cpp), for the standalone GPU build: gpu_ring_bench runs the ring's own code
// over an in-process transport (perf/gpu/in_process_ring.h) in one process, where
//   world_rank  0: the process is the only MPI-less "world" (the ring's reports name the rank of
//               the in-process transport themselves)
//   host_name   gethostname
//   the path    no MPI to ask: automatic is direct only where device memory is host-accessible
//               (cpu); direct is taken when asked for if the backend can give device pointers
//               away (the in-process transport then copies device to device), as mpi/ decides
#include <unistd.h>

#include <string>

#include "mpi/runtime.h"
#include "mpi/transfer_path.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::mpi {

int world_rank() { return 0; }

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

const char* transfer_path_name(TransferPath path) { return path == TransferPath::direct ? "direct" : "staged"; }

PathChoice parse_path_choice(const std::string& text) {
  if (text == "auto") return PathChoice::automatic;
  if (text == "direct") return PathChoice::direct;
  if (text == "staged") return PathChoice::staged;
  throw InputError("transfer path '" + text + "': expected auto, direct or staged");
}

bool mpi_is_gpu_aware() { return false; }

TransferPath choose_transfer_path(const device::Capabilities& caps, PathChoice choice, std::string* why) {
  const bool can_direct = caps.host_accessible_device_memory || caps.gpu_aware_mpi_possible;
  TransferPath path = TransferPath::staged;
  std::string reason = "staged (asked for)";
  if (choice == PathChoice::direct) {
    RW_CHECK(can_direct, "direct transfer path asked for, but this backend's device memory cannot be handed over");
    path = TransferPath::direct;
    reason = "direct (asked for)";
  } else if (choice == PathChoice::automatic) {
    path = caps.host_accessible_device_memory ? TransferPath::direct : TransferPath::staged;
    reason = caps.host_accessible_device_memory ? "direct (device memory is host-accessible)"
                                                : "staged (no MPI to ask whether it is GPU-aware)";
  }
  if (why) *why = reason;
  return path;
}

}  // namespace rw::mpi
