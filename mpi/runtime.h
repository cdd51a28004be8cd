// runtime.h: MPI start-up and shut-down, job-wide failure, and the small collectives commands
// need around their work. Header free of <mpi.h> so src/ may call it.
#pragma once
#include <string>
#include <vector>

namespace rw::mpi {

// RAII: MPI_Init_thread (FUNNELED: only the main thread calls MPI), errors returned not fatal
// inside MPI, rw::fatal reporting rank and host and ending the job (end_job).
class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

// Ends the whole job from any thread, with exit_code. On the main thread: MPI_Abort. On any
// other thread no MPI call is allowed (MPI_THREAD_FUNNELED), so the process exits with
// exit_code without finalising MPI: mpirun then ends every rank of the job, and srun does with
// --kill-on-bad-exit=1 (set by jobs/slurm/). Requesting MPI_THREAD_MULTIPLE instead would make
// MPI_Abort legal from any thread, but it costs every MPI call a lock and, on Open MPI 4 with
// the openib transport, silently drops to TCP; a hang report needs neither.
[[noreturn]] void end_job(int exit_code);

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

// Collective: every rank's bytes, concatenated in rank order, on rank 0 (empty elsewhere).
// Point to point in pieces of at most mpi_chunk_bytes() (src/common/transfer_limits.h), so any
// size goes. For results a command writes from rank 0 (decoded frames into one video file).
std::vector<unsigned char> gather_bytes_to_root(const std::vector<unsigned char>& local);

}  // namespace rw::mpi
