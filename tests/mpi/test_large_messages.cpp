// test_large_messages.cpp: transfers larger than one MPI or HDF5 call may carry (issue 14, item
// 1). Ring messages, FSDP collectives and token hyperslabs are split into pieces of at most a
// chunk (src/common/transfer_limits.h); here the chunk is forced small (a few bytes to a few
// KiB) so that every splitting path runs on every test run, on 1-4 ranks, against values known
// exactly (small integers in floats: sums are exact, so results must be equal, not close).
// The hidden test [.large] sends one real message over 2 GiB (INT_MAX bytes) each way between
// 2 ranks: its own ctest entry (mpi_ring_large_message), about 4 GiB of memory in all.
#include <mpi.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/h5_file.h"
#include "mpi/communicator.h"
#include "mpi/process_grid.h"
#include "mpi/ring_exchange.h"
#include "mpi/runtime.h"
#include "src/attention/layout.h"
#include "src/common/transfer_limits.h"

using namespace rw;

namespace {

// Byte i of a message from `origin`: a hash, so a piece landing at the wrong offset shows.
unsigned char pattern_byte(std::size_t i, int origin) {
  uint64_t z = (static_cast<uint64_t>(i) + 0x9e3779b97f4a7c15ull * (origin + 1)) * 0xbf58476d1ce4e5b9ull;
  return static_cast<unsigned char>((z ^ (z >> 31)) >> 24);
}

// Words of the large message: the same idea, 8 bytes at a time (fast enough for 2 GiB).
uint64_t pattern_word(std::size_t j, int origin) {
  uint64_t z = (static_cast<uint64_t>(j) + 0x9e3779b97f4a7c15ull * (origin + 1)) * 0xbf58476d1ce4e5b9ull;
  return z ^ (z >> 29);
}

struct EnvOverride {
  EnvOverride(const char* name, const std::string& value) : name_(name) { setenv(name, value.c_str(), 1); }
  ~EnvOverride() { unsetenv(name_); }
  const char* name_;
};

}  // namespace

TEST_CASE("ring messages split into chunks arrive whole and in order", "[ring][chunks]") {
  for (std::size_t chunk : {std::size_t(1), std::size_t(7), std::size_t(4096)}) {
    mpi::RingExchange ring(mpi::Communicator::world(), 60.0, chunk);
    REQUIRE(ring.chunk_bytes() == chunk);
    const int me = ring.rank(), n = ring.size(), prev = (me + n - 1) % n;
    // Sizes around the chunk boundaries, several on one tag (as the ring sends K|V then pos|seg)
    // and one on another tag posted in between.
    const std::vector<std::size_t> sizes = {0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 2, 10000};
    std::vector<std::vector<unsigned char>> out(sizes.size()), in(sizes.size());
    std::vector<RingTransport::Request> sends, recvs;
    const uint64_t pieces_before = ring.mpi_messages_sent();
    std::size_t expected_pieces = 0;
    for (std::size_t m = 0; m < sizes.size(); ++m) {
      out[m].resize(sizes[m]);
      in[m].assign(sizes[m], 0);
      for (std::size_t i = 0; i < sizes[m]; ++i) out[m][i] = pattern_byte(i + 131 * m, me);
      const int tag = m == 3 ? 9 : 8;
      recvs.push_back(ring.post_recv_prev(in[m].data(), sizes[m], tag));
      sends.push_back(ring.post_send_next(out[m].data(), sizes[m], tag));
      expected_pieces += std::max<std::size_t>(1, piece_count(sizes[m], chunk));
      ring.progress();
    }
    for (std::size_t m = sizes.size(); m-- > 0;) ring.wait(recvs[m], "test message");
    for (auto& s : sends) ring.wait(s, "test message");
    CHECK(ring.mpi_messages_sent() - pieces_before == expected_pieces);
    for (std::size_t m = 0; m < sizes.size(); ++m) {
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < sizes[m]; ++i) wrong += in[m][i] != pattern_byte(i + 131 * m, prev);
      INFO("chunk " << chunk << ", message " << m << " of " << sizes[m] << " bytes");
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("ring chunk sizes are agreed over the ring", "[ring][chunks]") {
  // Ranks asking for different chunks use the smallest: both ends of a message split it alike.
  const int me = mpi::world_rank();
  mpi::RingExchange ring(mpi::Communicator::world(), 60.0, 100 + 10 * static_cast<std::size_t>(me));
  CHECK(ring.chunk_bytes() == 100);
}

TEST_CASE("FSDP collectives split into pieces equal the unsplit ones", "[grid][chunks]") {
  const int n = mpi::world_size();
  mpi::ProcessGrid grid(1, n, 60.0);
  CHECK(grid.chunk_bytes() == mpi_chunk_bytes());
  const int me = grid.rank();
  // Shards of several lengths (0, 1, odd); chunks from one float per rank per call upwards.
  for (std::size_t shard : {std::size_t(0), std::size_t(1), std::size_t(13), std::size_t(1000)}) {
    for (std::size_t chunk : {std::size_t(1), std::size_t(4 * n), std::size_t(52), std::size_t(4096), kMaxBytesPerMpiCall}) {
      INFO("shard " << shard << " floats, chunk " << chunk << " bytes, " << n << " ranks");
      grid.set_chunk_bytes(chunk);
      const std::size_t piece = collective_piece_elems(chunk, static_cast<std::size_t>(n), sizeof(float));
      const uint64_t expected_calls = shard <= piece ? 1 : piece_count(shard, piece);

      // all-gather: rank r's element i is r * 10000 + i.
      std::vector<float> mine(shard), full(shard * n, -1.f);
      for (std::size_t i = 0; i < shard; ++i) mine[i] = static_cast<float>(me * 10000 + i);
      uint64_t calls = grid.collective_calls();
      grid.allgather(mine.data(), shard, full.data());
      CHECK(grid.collective_calls() - calls == expected_calls);
      std::size_t wrong = 0;
      for (int r = 0; r < n; ++r)
        for (std::size_t i = 0; i < shard; ++i) wrong += full[r * shard + i] != static_cast<float>(r * 10000 + i);
      CHECK(wrong == 0);

      // reduce-scatter: rank r contributes (r + 1) * (block * 1000 + i) to block's element i;
      // the sum over r is n (n + 1) / 2 * (block * 1000 + i), exact in float below 2^24.
      std::vector<float> contribution(shard * n), result(shard, -1.f);
      for (int block = 0; block < n; ++block)
        for (std::size_t i = 0; i < shard; ++i)
          contribution[block * shard + i] = static_cast<float>((me + 1) * (block * 1000 + static_cast<int>(i)));
      calls = grid.collective_calls();
      grid.reduce_scatter_sum(contribution.data(), result.data(), shard);
      CHECK(grid.collective_calls() - calls == expected_calls);
      wrong = 0;
      for (std::size_t i = 0; i < shard; ++i)
        wrong += result[i] != static_cast<float>(n * (n + 1) / 2 * (me * 1000 + static_cast<int>(i)));
      CHECK(wrong == 0);
    }
  }
  // allreduce of doubles and counters in pieces of one element.
  grid.set_chunk_bytes(1);
  std::vector<double> values(5);
  std::vector<uint64_t> counters(3);
  for (int i = 0; i < 5; ++i) values[i] = me + 0.5 * i;
  for (int i = 0; i < 3; ++i) counters[i] = (uint64_t(1) << 40) * (me + 1) + i;
  const uint64_t calls = grid.collective_calls();
  grid.allreduce_sum(values.data(), 5);
  grid.allreduce_sum_u64(counters.data(), 3);
  CHECK(grid.collective_calls() - calls == 8);
  for (int i = 0; i < 5; ++i) CHECK(values[i] == n * (n - 1) / 2.0 + n * 0.5 * i);
  for (int i = 0; i < 3; ++i) CHECK(counters[i] == (uint64_t(1) << 40) * uint64_t(n * (n + 1) / 2) + uint64_t(n) * i);
}

namespace {

// Value of element (outer, token, inner) of the test dataset: exact in float.
float h5_value(int64_t outer, int64_t token, int64_t inner) { return static_cast<float>(outer * 100000 + token * 10 + inner); }

// This rank's selection of a dataset whose token axis is `axis`, in memory order.
std::vector<float> h5_selection(const std::vector<int64_t>& dims, int axis, const std::vector<TokenRun>& runs) {
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; ++a) outer *= dims[a];
  for (std::size_t a = axis + 1; a < dims.size(); ++a) inner *= dims[a];
  std::vector<float> v;
  for (int64_t o = 0; o < outer; ++o)
    for (const TokenRun& run : runs)
      for (int64_t t = 0; t < run.count; ++t)
        for (int64_t i = 0; i < inner; ++i) v.push_back(h5_value(o, run.start + t * run.stride, i));
  return v;
}

std::string shared_scratch_name(const char* stem) {
  int pid = mpi::world_rank() == 0 ? static_cast<int>(getpid()) : 0;
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return std::string(stem) + "-" + std::to_string(pid) + ".h5";
}

}  // namespace

TEST_CASE("token hyperslabs split into several HDF5 calls, the same number on every rank", "[h5][chunks]") {
  io::silence_hdf5_errors();
  const int n = mpi::world_size(), me = mpi::world_rank();
  const std::string path = shared_scratch_name("h5-split-test");
  const int64_t seq = 24;  // zigzag splits it over 1-4 ranks
  // Uneven contiguous shares (rank 1 holds none) and the zigzag layout's two runs per rank.
  std::vector<TokenRun> uneven;
  {
    std::vector<int64_t> cuts(n + 1, 0);
    for (int r = 0; r < n; ++r) cuts[r + 1] = cuts[r] + (r == 1 ? 0 : r + 1);
    const int64_t total = cuts[n];
    const int64_t begin = cuts[me] * seq / total, end = cuts[me + 1] * seq / total;
    if (end > begin) uneven.push_back({begin, end - begin, 1});
  }
  const std::vector<TokenRun> zigzag = local_token_runs(Layout::zigzag, seq, n, me);
  const std::vector<TokenRun> everything = me == 0 ? std::vector<TokenRun>{{0, seq, 1}} : std::vector<TokenRun>{};
  struct Shape {
    std::vector<int64_t> dims;
    int axis;
  };
  // [batch, seq, width] (q, logits) and [batch, heads, seq] (lse: outer axes before the tokens).
  const std::vector<Shape> shapes = {{{2, seq, 5}, 1}, {{2, 3, seq}, 2}};
  for (const char* chunk : {"1", "100", "1000000"}) {
    for (const std::vector<TokenRun>* runs : std::vector<const std::vector<TokenRun>*>{&uneven, &zigzag}) {
      for (const Shape& shape : shapes) {
        INFO("chunk " << chunk << " bytes, " << (runs == &uneven ? "uneven" : "zigzag") << " runs, token axis "
                      << shape.axis << ", " << n << " ranks");
        const std::vector<float> mine = h5_selection(shape.dims, shape.axis, *runs);
        uint64_t write_calls = 0, read_calls = 0;
        {
          EnvOverride env("RINGWORLD_H5_CHUNK_BYTES", chunk);
          io::H5File file = io::H5File::create(path);
          uint64_t before = io::token_run_transfer_calls();
          file.write_token_runs("x", shape.dims, shape.axis, *runs, io::ElementType::f32, mine.data());
          write_calls = io::token_run_transfer_calls() - before;
          file.close();
          // Read back in pieces too, into a buffer that starts wrong.
          io::H5File in = io::H5File::open_read(path);
          std::vector<float> back(mine.size(), -1.f);
          before = io::token_run_transfer_calls();
          in.read_token_runs("x", shape.dims, shape.axis, *runs, io::ElementType::f32, back.data());
          read_calls = io::token_run_transfer_calls() - before;
          CHECK(back == mine);
        }
        // Every rank made the same number of collective calls: the largest count of pieces.
        const double calls_max = mpi::allreduce_max(static_cast<double>(write_calls));
        const double calls_min = mpi::allreduce_min(static_cast<double>(write_calls));
        CHECK(calls_max == calls_min);
        CHECK(read_calls == write_calls);
        int64_t my_tokens = 0, per_token = 1;
        for (const TokenRun& r : *runs) my_tokens += r.count;
        for (std::size_t a = 0; a < shape.dims.size(); ++a)
          if (static_cast<int>(a) != shape.axis) per_token *= shape.dims[a];
        const int64_t tokens_per_call = std::max<int64_t>(1, std::atoll(chunk) / (per_token * 4));
        const double expected = std::max(1.0, mpi::allreduce_max(static_cast<double>(
                                                   (my_tokens + tokens_per_call - 1) / tokens_per_call)));
        CHECK(static_cast<double>(write_calls) == expected);
        // The whole dataset, read unsplit by rank 0 alone: each rank's tokens landed where they belong.
        io::H5File in = io::H5File::open_read(path);
        const std::vector<float> whole = h5_selection(shape.dims, shape.axis, everything);
        std::vector<float> back(whole.size(), -1.f);
        in.read_token_runs("x", shape.dims, shape.axis, everything, io::ElementType::f32, back.data());
        CHECK(back == whole);
      }
    }
  }
  mpi::barrier();
  if (me == 0) std::remove(path.c_str());
}

TEST_CASE("a ring message over 2 GiB travels both ways between 2 ranks", "[.large]") {
  mpi::RingExchange ring(mpi::Communicator::world(), 600.0);
  REQUIRE(ring.size() == 2);
  const int me = ring.rank();
  // Beyond INT_MAX bytes (the most one MPI-3 call of MPI_BYTE can carry), with a ragged tail.
  const std::size_t n_bytes = (std::size_t(1) << 31) + 4096 + 3;
  const std::size_t n_words = n_bytes / 8;
  std::vector<uint64_t> buffer(n_words + 1);  // one buffer per rank: sent, then received into
  unsigned char* bytes = reinterpret_cast<unsigned char*>(buffer.data());
  auto fill = [&](int origin) {
    for (std::size_t j = 0; j < n_words; ++j) buffer[j] = pattern_word(j, origin);
    for (std::size_t i = n_words * 8; i < n_bytes; ++i) bytes[i] = pattern_byte(i, origin);
  };
  auto wrong = [&](int origin) {
    std::size_t bad = 0;
    for (std::size_t j = 0; j < n_words; ++j) bad += buffer[j] != pattern_word(j, origin);
    for (std::size_t i = n_words * 8; i < n_bytes; ++i) bad += bytes[i] != pattern_byte(i, origin);
    return bad;
  };
  // Rank 0 sends its message to rank 1, which receives it into its buffer and sends it back;
  // rank 0 receives it into its own (cleared) buffer. 2 x 2 GiB of memory in all.
  double seconds = 0;
  if (me == 0) {
    fill(0);
    const auto t0 = std::chrono::steady_clock::now();
    RingTransport::Request send = ring.post_send_next(bytes, n_bytes, 7);
    ring.wait(send, "large message");
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(ring.mpi_messages_sent() == piece_count(n_bytes, kMaxBytesPerMpiCall));
    std::memset(bytes, 0, n_bytes);
    RingTransport::Request recv = ring.post_recv_prev(bytes, n_bytes, 8);
    ring.wait(recv, "large message back");
  } else {
    std::memset(bytes, 0, n_bytes);
    RingTransport::Request recv = ring.post_recv_prev(bytes, n_bytes, 7);
    ring.wait(recv, "large message");
    CHECK(wrong(0) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    RingTransport::Request send = ring.post_send_next(bytes, n_bytes, 8);
    ring.wait(send, "large message back");
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (me == 0) CHECK(wrong(0) == 0);
  const double slowest = mpi::allreduce_max(seconds);
  if (me == 0)
    std::printf("large message: %zu bytes each way in %zu MPI messages; slowest send %.2f s (%.2f GB/s)\n", n_bytes,
                static_cast<std::size_t>(piece_count(n_bytes, kMaxBytesPerMpiCall)), slowest, n_bytes / slowest / 1e9);
}
