// node_links.cpp: see node_links.h. The crossings are counted by the function the run's own
// start-up report uses (mpi::node_crossings), on the placement the grid gets.
#include "src/plan/node_links.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "mpi/node_topology.h"

namespace rw::plan {

LinkUse link_use(const TrainShape& s, const NodeLinks& links) {
  LinkUse u;
  const int ranks = s.ranks();
  u.ranks_per_node = links.ranks_per_node > 0 ? std::min(links.ranks_per_node, ranks) : ranks;
  u.nodes = (ranks + u.ranks_per_node - 1) / u.ranks_per_node;
  u.rings = s.dp;
  u.ring_hops = s.sp > 1 ? s.dp * s.sp : 0;
  std::vector<int> order(ranks), node_of(ranks);
  std::iota(order.begin(), order.end(), 0);
  for (int r = 0; r < ranks; ++r) node_of[r] = r / u.ranks_per_node * u.ranks_per_node;  // the node's smallest rank
  u.crossing_hops = mpi::node_crossings(order, node_of, s.sp);
  for (int ring = 0; ring < s.dp; ++ring)
    if (node_of[ring * s.sp] != node_of[ring * s.sp + s.sp - 1]) ++u.rings_crossing;
  const double slower = std::min(links.intra_bytes_per_s, links.inter_bytes_per_s);
  u.ring_bytes_per_s = u.ring_crosses_nodes() ? slower : links.intra_bytes_per_s;
  u.fsdp_bytes_per_s = u.grid_spans_nodes() ? slower : links.intra_bytes_per_s;
  return u;
}

}  // namespace rw::plan
