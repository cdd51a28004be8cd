// mpi_catch_main.cpp: Catch2 main for tests run under mpirun. Every rank runs the same tests;
// the job fails if any rank fails (MPI_Allreduce of the failure count), and only rank 0
// reports in colour-free text. Other ranks' reports go to stderr with their rank.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>

#include "device/backend.h"
#include "mpi/runtime.h"

int main(int argc, char** argv) {
  rw::device::prepare_process(argc, argv);  // before MPI_Init: may re-execute (cpu: OpenBLAS kernels)
  rw::mpi::Runtime runtime(argc, argv);
  Catch::Session session;
  int rc = session.applyCommandLine(argc, argv);
  if (rc != 0) return rc;
  int failures = session.run();
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rw::mpi::world_rank() == 0 && total != failures)
    std::fprintf(stderr, "mpi test: %d assertion failure(s) on other ranks\n", total - failures);
  return total == 0 ? 0 : 1;
}
