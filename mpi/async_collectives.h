// async_collectives.h: the grid's FSDP collectives as non-blocking operations (MPI-3
// MPI_Iallgather / MPI_Ireduce_scatter_block) on a duplicate of the grid's communicator, so they
// can be in flight while the host enqueues compute, and never interleave with the grid's
// blocking collectives (allreduce, barrier), which run on the grid's own communicator in
// whatever order the trainer calls them. Operations are posted in the same order on every rank
// (the caller's duty: FSDP posts in program order). Large operations are split like the
// blocking ones (process_grid.h): into calls of at most the grid's chunk size in all.
// Pointers are host-accessible memory (pinned staging buffers, or device memory on the direct
// path: mpi/transfer_path.h). Waits record what they wait for (src/common/activity.h) and end
// the job after the timeout with the rank and host. Free of <mpi.h>.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "mpi/process_grid.h"

namespace rw::mpi {

class AsyncCollectives {
 public:
  using Request = int;
  static constexpr Request kNoRequest = -1;

  // Collective over the grid. timeout_s <= 0: waits never time out.
  explicit AsyncCollectives(ProcessGrid& grid, double timeout_s = 900.0);
  ~AsyncCollectives();  // completes what is in flight
  AsyncCollectives(const AsyncCollectives&) = delete;
  AsyncCollectives& operator=(const AsyncCollectives&) = delete;

  int size() const;
  int rank() const;

  // Elements per rank in one piece of a collective of shard_count elements per rank: the
  // operation runs as ceil(shard_count / piece) calls (one when shard_count <= piece).
  std::size_t piece_elems() const;

  // full[r * shard_count + i] = rank r's shard[i]; full holds size() * shard_count floats.
  Request post_allgather(const float* shard, std::size_t shard_count, float* full);
  // The same for 16-bit elements (bf16 weights: FSDP's bf16 working copy), pieces of as many bytes.
  Request post_allgather(const std::uint16_t* shard, std::size_t shard_count, std::uint16_t* full);
  // shard[i] = sum over ranks of their input's block for this rank. `packed` is piece-major:
  // for each piece p (offsets o_p = p * piece_elems(), lengths n_p), size() blocks of n_p floats,
  // block r = rank r's elements [o_p, o_p + n_p); one piece (shard_count <= piece_elems()) is
  // the plain rank-major layout full[r * shard_count + i]. Stays unchanged until complete.
  Request post_reduce_scatter_sum(const float* packed, float* shard, std::size_t shard_count);

  bool test(Request& request);  // true once complete (then released); never blocks
  void wait(Request& request, const std::string& what);
  void progress();              // tests everything in flight; never blocks

  std::uint64_t calls() const;  // MPI calls posted so far (a split operation counts per piece)

 private:
  struct State;
  Request post_allgather_bytes(const void* shard, std::size_t shard_count, void* full, std::size_t elem_bytes);
  std::unique_ptr<State> state_;
  ProcessGrid& grid_;
};

}  // namespace rw::mpi
