// ring_probe.cpp
#include "src/bench/ring_probe.h"

#include <algorithm>
#include <vector>

#include "mpi/runtime.h"
#include "src/bench/stats.h"
#include "src/common/timer.h"

namespace rw::bench {
namespace {
constexpr int kProbeTag = 901;  // none of the ring attention's tags (101..104)
}

double bare_hop_seconds(mpi::ProcessGrid& grid, std::size_t n_bytes, int n_messages, int repeats) {
  RingTransport& ring = grid.ring();
  // Every rank takes part in the timing collectives, even on a one-rank ring.
  const bool moves = ring.size() > 1 && n_bytes > 0;
  n_messages = std::max(1, n_messages);
  const std::size_t piece = (n_bytes + n_messages - 1) / n_messages;
  std::vector<char> send(std::max<std::size_t>(n_bytes, 1), 1), recv(send.size(), 0);
  std::vector<double> times;
  std::vector<RingTransport::Request> requests;
  for (int r = 0; r <= repeats; ++r) {
    grid.barrier();
    const double t0 = wall_seconds();
    if (moves) {
      requests.clear();
      for (std::size_t off = 0; off < n_bytes; off += piece) {
        const std::size_t len = std::min(piece, n_bytes - off);
        requests.push_back(ring.post_recv_prev(recv.data() + off, len, kProbeTag));
        requests.push_back(ring.post_send_next(send.data() + off, len, kProbeTag));
      }
      for (auto& request : requests) ring.wait(request, "bench: bare ring rotation");
    }
    const double slowest = mpi::allreduce_max(wall_seconds() - t0);
    if (r > 0) times.push_back(slowest);  // r == 0 warms the connections up
  }
  return moves ? median(times) : 0.0;
}

}  // namespace rw::bench
