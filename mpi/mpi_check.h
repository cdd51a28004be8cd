// mpi_check.h: RW_MPI_CHECK(call) evaluates an MPI call once; on failure it reports the call,
// the MPI error string, file, line and rank, and aborts the whole job (via rw::fatal and the
// handler mpi/runtime.cpp installs). The world communicator returns errors instead of
// aborting silently, so every failure goes through here.
#pragma once
#include <mpi.h>

#include <string>

#include "src/common/fatal.h"

namespace rw::mpi {
inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, length);
}
}  // namespace rw::mpi

#define RW_MPI_CHECK(call)                                                         \
  do {                                                                             \
    int rw_mpi_rc_ = (call);                                                       \
    if (rw_mpi_rc_ != MPI_SUCCESS)                                                 \
      ::rw::fatal(#call, __FILE__, __LINE__, ::rw::mpi::mpi_error_string(rw_mpi_rc_)); \
  } while (0)
