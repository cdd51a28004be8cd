// test_topology.cpp: ring order from the node topology (mpi/node_topology.h) and the process
// grid built on it: ranks of a node are neighbours, rings cross the fewest node boundaries.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <vector>

#include "mpi/node_topology.h"
#include "mpi/process_grid.h"
#include "mpi/runtime.h"

using namespace rw;

TEST_CASE("ring order groups the ranks of each node", "[topology]") {
  // 6 ranks dealt round-robin over 2 nodes (mpirun --map-by node): 0 2 4 on node 0, 1 3 5 on node 1.
  const std::vector<int> round_robin = {0, 1, 0, 1, 0, 1};
  const std::vector<int> order = mpi::ring_order(round_robin);
  CHECK(order == std::vector<int>{0, 2, 4, 1, 3, 5});
  // One ring of 6: crossing into node 1 and back: 2 boundaries (rank order would cross 6).
  std::vector<int> identity(6);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(mpi::node_crossings(order, round_robin, 6) == 2);
  CHECK(mpi::node_crossings(identity, round_robin, 6) == 6);
  // Two rings of 3 (dp 2): each fits on one node: no crossing at all.
  CHECK(mpi::node_crossings(order, round_robin, 3) == 0);
  CHECK(mpi::node_crossings(identity, round_robin, 3) == 4);  // 0-1, 1-2 cross; 2-0 does not (each ring)
  // Block placement (the mpirun default) is left alone.
  const std::vector<int> blocks = {0, 0, 0, 3, 3, 3};
  CHECK(mpi::ring_order(blocks) == identity);
  // Uneven nodes, node ids not in rank order of appearance: nodes sorted by their smallest rank.
  const std::vector<int> uneven = {4, 1, 4, 1, 1};
  CHECK(mpi::ring_order(uneven) == std::vector<int>{0, 2, 1, 3, 4});
  const std::string report = mpi::describe_ring_order(order, round_robin, {"a", "b", "a", "b", "a", "b"}, 3);
  INFO(report);
  CHECK(report.find("ring 0: [a: 0 2 4] -> back to 0") != std::string::npos);
  CHECK(report.find("ring 1: [b: 1 3 5] -> back to 1") != std::string::npos);
}

TEST_CASE("process grid positions follow the nodes", "[topology]") {
  const int world = mpi::world_size(), me = mpi::world_rank();
  std::vector<int> round_robin(world);
  for (int r = 0; r < world; ++r) round_robin[r] = r % 2;
  for (int dp = 1; dp <= world; ++dp) {
    if (world % dp) continue;
    const int sp = world / dp;
    mpi::ProcessGrid grid(dp, sp, 900.0, round_robin);
    const auto& order = grid.world_rank_of_position();
    INFO("dp " << dp << " x sp " << sp << ", world rank " << me << ", position " << grid.rank());
    REQUIRE(static_cast<int>(order.size()) == world);
    CHECK(order[grid.rank()] == me);
    CHECK(order == mpi::ring_order(round_robin));
    // Ring neighbours: positions next to each other in this rank's ring.
    CHECK(grid.ring().size() == sp);
    CHECK(grid.ring().rank() == grid.sp_rank());
    // The fewest crossings possible: a ring spanning k nodes crosses k boundaries (k > 1), none if one node.
    int crossings = 0;
    for (int ring = 0; ring < dp; ++ring) {
      std::vector<int> nodes;
      for (int i = 0; i < sp; ++i) nodes.push_back(round_robin[order[ring * sp + i]]);
      std::sort(nodes.begin(), nodes.end());
      const int k = static_cast<int>(std::unique(nodes.begin(), nodes.end()) - nodes.begin());
      crossings += k > 1 ? k : 0;
    }
    CHECK(mpi::node_crossings(order, round_robin, sp) == crossings);
  }
  // The real placement: one node here, so positions are the world ranks.
  mpi::ProcessGrid real(1, world);
  CHECK(real.rank() == me);
}
