// ring_probe.h: the bare cost of one ring hop: the same bytes a ring step moves, rotated once
// around the ring (every rank sends to the next and receives from the previous at the same
// time) with no compute beside it. Set against a ring step's compute time it says whether the
// transfer could hide under the compute at all, and against the exposed wait how much of it
// did. Free of <mpi.h>.
#pragma once
#include <cstddef>

#include "mpi/process_grid.h"

namespace rw::bench {

// Collective over the grid (every ring of it rotates at once, as in training). Each of
// `repeats` timed rotations (after one untimed) moves n_bytes from every rank to its ring
// successor, split into n_messages messages; a rotation's time is that of the slowest rank.
// Returns the median over the repeats in seconds; 0 when the ring has one rank (nothing moves).
double bare_hop_seconds(mpi::ProcessGrid& grid, std::size_t n_bytes, int n_messages, int repeats);

}  // namespace rw::bench
