// communicator_impl.h: the MPI handle behind Communicator (mpi/ and io/ only).
#pragma once
#include <mpi.h>

#include "mpi/communicator.h"

namespace rw::mpi {

struct CommunicatorImpl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
};

}  // namespace rw::mpi
