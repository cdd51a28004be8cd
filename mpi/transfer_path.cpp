// transfer_path.cpp
#include "mpi/transfer_path.h"

#include <mpi.h>
#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>  // MPIX_CUDA_AWARE_SUPPORT, MPIX_Query_cuda_support, OMPI_HAVE_MPI_EXT_ROCM
#endif

#include <cstdlib>

#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::mpi {

const char* transfer_path_name(TransferPath path) { return path == TransferPath::direct ? "direct" : "staged"; }

PathChoice parse_path_choice(const std::string& text) {
  if (text == "auto") return PathChoice::automatic;
  if (text == "direct") return PathChoice::direct;
  if (text == "staged") return PathChoice::staged;
  throw InputError("transfer path '" + text + "': expected auto, direct or staged");
}

bool mpi_is_gpu_aware() {
  bool aware = false;
#if defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
  // The run-time answer (MPIX_CUDA_AWARE_SUPPORT is only what the headers were built with).
  aware = aware || MPIX_Query_cuda_support() == 1;
#endif
#if defined(OMPI_HAVE_MPI_EXT_ROCM) && OMPI_HAVE_MPI_EXT_ROCM
  aware = aware || MPIX_Query_rocm_support() == 1;
#endif
#if defined(MPIX_GPU_SUPPORT_CUDA) && !defined(OPEN_MPI)
  {
    int ok = 0;
    if (MPIX_GPU_query_support(MPIX_GPU_SUPPORT_CUDA, &ok) == MPI_SUCCESS && ok) aware = true;
  }
#endif
#if defined(MPIX_GPU_SUPPORT_HIP) && !defined(OPEN_MPI)
  {
    int ok = 0;
    if (MPIX_GPU_query_support(MPIX_GPU_SUPPORT_HIP, &ok) == MPI_SUCCESS && ok) aware = true;
  }
#endif
  return aware;
}

TransferPath choose_transfer_path(const device::Capabilities& caps, PathChoice choice, std::string* why) {
  const bool can_direct = caps.host_accessible_device_memory || caps.gpu_aware_mpi_possible;
  auto say = [&](const std::string& text) {
    if (why) *why = text;
  };
  if (choice == PathChoice::automatic) {
    const char* env = std::getenv("RINGWORLD_GPU_AWARE_MPI");
    const std::string text = env ? env : "";
    if (text == "0") {
      say("staged (RINGWORLD_GPU_AWARE_MPI=0)");
      return TransferPath::staged;
    }
    if (text == "1") {
      RW_CHECK(can_direct, "RINGWORLD_GPU_AWARE_MPI=1, but this backend's device memory is neither host-accessible "
                           "nor allowed to go to a GPU-aware MPI (set it to 0 or auto)");
      say("direct (RINGWORLD_GPU_AWARE_MPI=1)");
      return TransferPath::direct;
    }
    RW_CHECK(text.empty() || text == "auto",
             "RINGWORLD_GPU_AWARE_MPI='" + text + "': expected auto, 0 or 1");
    if (caps.host_accessible_device_memory) {
      say("direct (device memory is host-accessible)");
      return TransferPath::direct;
    }
    if (caps.gpu_aware_mpi_possible && mpi_is_gpu_aware()) {
      say("direct (this MPI is GPU-aware)");
      return TransferPath::direct;
    }
    say(caps.gpu_aware_mpi_possible ? "staged (this MPI does not say it is GPU-aware)"
                                    : "staged (device memory is not host-accessible)");
    return TransferPath::staged;
  }
  if (choice == PathChoice::direct) {
    RW_CHECK(can_direct, "direct transfer path asked for, but this backend's device memory cannot go to MPI");
    say("direct (asked for)");
    return TransferPath::direct;
  }
  say("staged (asked for)");
  return TransferPath::staged;
}

}  // namespace rw::mpi
