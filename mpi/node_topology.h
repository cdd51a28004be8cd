// node_topology.h: which node each rank runs on, and a ring order from it. Ranks of one node
// become neighbours, so each sp ring crosses as few node boundaries as the placement allows
// (none when a ring fits on one node; one per node boundary otherwise), whatever the launcher's
// rank mapping (mpirun --map-by node or srun --distribution=cyclic place consecutive ranks on
// different nodes). Free of <mpi.h>.
#pragma once
#include <string>
#include <vector>

namespace rw::mpi {

// Collective over the world. node_of[r] = the smallest world rank on rank r's node (MPI
// shared-memory split), so equal values mean one node. For tests of multi-node placement on one
// machine, RINGWORLD_FAKE_NODES=K pretends rank r runs on node r % K (as --map-by node places).
std::vector<int> node_of_each_rank();

// Pure. order[p] = world rank at ring position p: nodes in order of their smallest rank, ranks
// of a node in rank order. Positions p = dp_rank * sp + sp_rank (ProcessGrid).
std::vector<int> ring_order(const std::vector<int>& node_of);

// Pure. Links between consecutive ring positions (including the wrap-around) within each ring
// of sp positions whose two ends are on different nodes, summed over the rings.
int node_crossings(const std::vector<int>& order, const std::vector<int>& node_of, int sp);

// Pure. A start-up report: each ring's ranks grouped by node, and the crossings; at most
// max_rings rings listed (the rest summarised).
std::string describe_ring_order(const std::vector<int>& order, const std::vector<int>& node_of,
                                const std::vector<std::string>& node_label_of_rank, int sp,
                                int max_rings = 4);

}  // namespace rw::mpi
