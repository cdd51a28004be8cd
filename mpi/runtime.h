// runtime.h: MPI start-up and shut-down, job-wide failure, and the small collectives commands
// need around their work. Header free of <mpi.h> so src/ may call it.
#pragma once
#include <string>

namespace rw::mpi {

// RAII: MPI_Init_thread (FUNNELED: only the main thread calls MPI), errors returned not fatal
// inside MPI, rw::fatal reporting rank and host and ending the job with MPI_Abort.
class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

int world_rank();
int world_size();
std::string host_name();

// Collective over the world: every rank passes its own error ("" if none). Returns the error of
// the lowest-numbered failing rank on every rank, or "" when no rank failed. Lets a command
// print one message (from rank 0) and have every rank exit non-zero, none left waiting.
std::string agree_on_error(const std::string& local_error);

// Ranks of the world that share this node's memory (MPI_Comm_split_type SHARED). Collective.
int ranks_on_this_node();

void barrier();
double allreduce_max(double value);
double allreduce_min(double value);
double allreduce_sum(double value);

}  // namespace rw::mpi
