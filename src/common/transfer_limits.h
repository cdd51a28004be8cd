// transfer_limits.h: the most bytes one MPI call or one HDF5 (MPI-IO) call moves for one rank.
// Larger transfers are split into pieces of at most this size: ring messages (mpi/ring_exchange)
// into several Isend/Irecv, FSDP collectives (mpi/process_grid) into several collective calls,
// token hyperslabs (io/h5_file) and parameter ranges (io/params_io) into several H5Dread/H5Dwrite.
// Why: MPI-3 counts are int (Open MPI 4.1 has no MPI-4 large-count calls), so a message of
// MPI_BYTE stops at 2^31 - 1 bytes; below that, transports and MPI-IO layers have their own
// 32-bit limits (Linux read/write move at most 0x7ffff000 bytes per call; ROMIO and OMPIO build
// int-counted datatypes). 1 GiB is a power of two well inside every one of them, and large
// enough that splitting costs nothing measurable (a call of 1 GiB takes ~0.1 s on any link).
// The planner (src/plan) reports how many pieces each transfer of a step needs.
#pragma once
#include <cstddef>

namespace rw {

constexpr std::size_t kMaxBytesPerMpiCall = std::size_t(1) << 30;
constexpr std::size_t kMaxBytesPerH5Call = std::size_t(1) << 30;

// The limits in effect: the defaults above, or (tests: to exercise the splitting cheaply) the
// environment's RINGWORLD_MPI_CHUNK_BYTES / RINGWORLD_H5_CHUNK_BYTES, a positive byte count no
// larger than the default. A malformed value is fatal (it must not differ silently between
// ranks; the callers agree on the value over their communicator where it matters).
std::size_t mpi_chunk_bytes();
std::size_t h5_chunk_bytes();

// Pieces of at most max_per_piece units that n units split into (0 for n == 0).
inline std::size_t piece_count(std::size_t n, std::size_t max_per_piece) {
  return max_per_piece == 0 ? 0 : (n + max_per_piece - 1) / max_per_piece;
}

// Elements per rank in one piece of a collective over `ranks` ranks (all-gather, reduce-scatter:
// each call moves ranks x piece elements in all, kept within max_bytes, at least one element).
inline std::size_t collective_piece_elems(std::size_t max_bytes, std::size_t ranks, std::size_t elem_bytes) {
  const std::size_t per_element_all_ranks = ranks * elem_bytes;
  return max_bytes >= per_element_all_ranks ? max_bytes / per_element_all_ranks : 1;
}

}  // namespace rw
