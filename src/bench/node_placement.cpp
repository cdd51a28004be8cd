// node_placement.cpp: an allgather (as a sum over slots each rank fills alone) of every rank's
// host hash, thread count and affinity mask; every rank then sees every node.
#include "src/bench/node_placement.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mpi/runtime.h"

namespace rw::bench {
namespace {

constexpr int kMaskWords = CPU_SETSIZE / 64;   // 1024 CPUs
constexpr int kSlot = 2 + kMaskWords;          // host hash, threads, mask words

std::vector<uint64_t> affinity_words() {
  std::vector<uint64_t> words(kMaskWords, 0);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {  // unknown: count one core per rank
    words[0] = 1;
    return words;
  }
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) words[cpu / 64] |= uint64_t{1} << (cpu % 64);
  return words;
}

int popcount(const std::vector<uint64_t>& words) {
  int n = 0;
  for (uint64_t w : words) n += __builtin_popcountll(w);
  return n;
}

}  // namespace

NodePlacement measure_node_placement(mpi::ProcessGrid& grid, int threads_per_rank) {
  const int size = grid.size(), me = grid.rank();
  std::vector<uint64_t> table(static_cast<std::size_t>(size) * kSlot, 0);
  uint64_t* mine = table.data() + static_cast<std::size_t>(me) * kSlot;
  mine[0] = std::hash<std::string>{}(mpi::host_name());
  mine[1] = static_cast<uint64_t>(std::max(1, threads_per_rank));
  const std::vector<uint64_t> mask = affinity_words();
  std::copy(mask.begin(), mask.end(), mine + 2);
  grid.allreduce_sum_u64(table.data(), static_cast<int>(table.size()));  // one contributor per slot

  struct Node {
    int ranks = 0, threads = 0;
    std::vector<uint64_t> cores = std::vector<uint64_t>(kMaskWords, 0);
  };
  std::map<uint64_t, Node> nodes;
  for (int r = 0; r < size; ++r) {
    const uint64_t* slot = table.data() + static_cast<std::size_t>(r) * kSlot;
    Node& node = nodes[slot[0]];
    node.ranks += 1;
    node.threads += static_cast<int>(slot[1]);
    for (int w = 0; w < kMaskWords; ++w) node.cores[w] |= slot[2 + w];
  }
  NodePlacement p;
  p.nodes = static_cast<int>(nodes.size());
  for (const auto& [host, node] : nodes)
    if (node.threads > std::max(1, popcount(node.cores))) p.oversubscribed = true;
  const Node& first = nodes.at(table[0]);
  p.ranks_on_node = first.ranks;
  p.threads_on_node = first.threads;
  p.cores_on_node = std::max(1, popcount(first.cores));
  return p;
}

}  // namespace rw::bench
