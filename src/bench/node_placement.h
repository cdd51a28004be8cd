// node_placement.h: how many rank-threads share how many cores on each node, so a benchmark can
// say whether it was oversubscribed (more rank-threads than cores: the ranks time-share the
// cores and the numbers say nothing about scaling). The cores of a node are the union of the
// CPU affinity masks of its ranks: with `--bind-to none` that is every core the job may use
// there; with binding it is the cores actually handed out. Free of <mpi.h>.
#pragma once

#include "mpi/process_grid.h"

namespace rw::bench {

struct NodePlacement {
  int nodes = 1;             // distinct host names
  int ranks_on_node = 1;     // on grid rank 0's node
  int threads_on_node = 1;   // sum of threads per rank over those ranks
  int cores_on_node = 1;     // distinct CPUs those ranks may run on
  bool oversubscribed = false;  // on any node: threads_on_node > cores_on_node
};

// Collective over the grid. threads_per_rank: this rank's compute threads (OpenMP).
NodePlacement measure_node_placement(mpi::ProcessGrid& grid, int threads_per_rank);

}  // namespace rw::bench
