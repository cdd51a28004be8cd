// node_links.h: which links a run's transfers cross, from the ranks one node holds. Ranks fill
// nodes in grid order (mpi/node_topology.h orders the grid so, whatever the launcher's rank
// mapping): positions 0..R-1 on the first node, R..2R-1 on the second, and so on. A ring (sp
// consecutive positions) crosses nodes when its positions span more than one node; a ring step
// waits for its slowest hop, so a ring that crosses nodes moves at the inter-node rate (and the
// step waits for the slowest ring). The FSDP collectives run over every rank of the grid: over
// the network as soon as the grid spans nodes. Pure.
#pragma once

#include "src/plan/train_shape.h"

namespace rw::plan {

struct NodeLinks {
  int ranks_per_node = 0;          // 0: every rank on one node
  double intra_bytes_per_s = 0;    // one direction, between ranks of one node
  double inter_bytes_per_s = 0;    // one direction, a rank to another node
};

struct LinkUse {
  int ranks_per_node = 1;     // as used (all ranks when the request said 0)
  int nodes = 1;
  int rings = 1, rings_crossing = 0;
  int ring_hops = 0, crossing_hops = 0;  // over all rings, wrap-around included (a ring of one: none)
  double ring_bytes_per_s = 0;   // the rings' slowest link
  double fsdp_bytes_per_s = 0;   // the grid-wide collectives' slowest link
  bool ring_crosses_nodes() const { return crossing_hops > 0; }
  bool grid_spans_nodes() const { return nodes > 1; }
};

LinkUse link_use(const TrainShape& shape, const NodeLinks& links);

}  // namespace rw::plan
