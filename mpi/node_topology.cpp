// node_topology.cpp
#include "mpi/node_topology.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <numeric>
#include <string>

#include "mpi/mpi_check.h"
#include "src/common/fatal.h"

namespace rw::mpi {

std::vector<int> node_of_each_rank() {
  int rank = 0, size = 1;
  RW_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  RW_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  int leader = rank;
  if (const char* fake = std::getenv("RINGWORLD_FAKE_NODES"); fake && *fake) {
    const int k = std::atoi(fake);
    // Fatal, not an InputError: a rank throwing here would leave the others in the Allgather.
    RW_CHECK(k >= 1, "RINGWORLD_FAKE_NODES must be a positive number of nodes, not '" + std::string(fake) + "'");
    leader = rank % k;  // node r % k; its smallest rank is r % k itself
  } else {
    MPI_Comm node;
    RW_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    RW_MPI_CHECK(MPI_Allreduce(&rank, &leader, 1, MPI_INT, MPI_MIN, node));
    RW_MPI_CHECK(MPI_Comm_free(&node));
  }
  std::vector<int> node_of(size);
  RW_MPI_CHECK(MPI_Allgather(&leader, 1, MPI_INT, node_of.data(), 1, MPI_INT, MPI_COMM_WORLD));
  return node_of;
}

std::vector<int> ring_order(const std::vector<int>& node_of) {
  const int n = static_cast<int>(node_of.size());
  // Node key: its smallest rank (first appearance), so node order follows rank order.
  std::map<int, int> first_rank;
  for (int r = 0; r < n; ++r) first_rank.emplace(node_of[r], r);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return first_rank[node_of[a]] < first_rank[node_of[b]]; });
  return order;
}

int node_crossings(const std::vector<int>& order, const std::vector<int>& node_of, int sp) {
  const int n = static_cast<int>(order.size());
  int crossings = 0;
  for (int ring = 0; ring + sp <= n; ring += sp) {
    if (sp < 2) continue;
    for (int i = 0; i < sp; ++i) {
      const int a = order[ring + i], b = order[ring + (i + 1) % sp];
      if (node_of[a] != node_of[b]) ++crossings;
    }
  }
  return crossings;
}

std::string describe_ring_order(const std::vector<int>& order, const std::vector<int>& node_of,
                                const std::vector<std::string>& node_label_of_rank, int sp, int max_rings) {
  const int n = static_cast<int>(order.size());
  const int rings = sp > 0 ? n / sp : 0;
  std::map<int, std::string> host;  // node leader -> host name
  for (int r = 0; r < n && r < static_cast<int>(node_label_of_rank.size()); ++r) host[node_of[r]] = node_label_of_rank[r];
  std::string text;
  for (int ring = 0; ring < rings && ring < max_rings; ++ring) {
    text += "  ring " + std::to_string(ring) + ":";
    int prev_node = -1;
    for (int i = 0; i < sp; ++i) {
      const int r = order[ring * sp + i];
      if (node_of[r] != prev_node) {
        text += (i ? "] -> [" : " [") + host[node_of[r]] + ":";
        prev_node = node_of[r];
      }
      text += " " + std::to_string(r);
    }
    text += "] -> back to " + std::to_string(order[ring * sp]) + "\n";
  }
  if (rings > max_rings) text += "  ... " + std::to_string(rings - max_rings) + " more ring(s)\n";
  std::map<int, int> nodes;
  for (int r : node_of) ++nodes[r];
  text += "  " + std::to_string(nodes.size()) + " node(s); node boundaries crossed per ring step, all rings: " +
          std::to_string(node_crossings(order, node_of, sp)) + "\n";
  return text;
}

}  // namespace rw::mpi
