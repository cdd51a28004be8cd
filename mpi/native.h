// native.h: the MPI handles for the layers that must pass them to other libraries (io/ gives
// the world communicator to parallel HDF5). src/ never includes this.
#pragma once
#include <mpi.h>

namespace rw::mpi {
MPI_Comm world_comm();
}  // namespace rw::mpi
