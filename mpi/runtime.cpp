// runtime.cpp
#include "mpi/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "mpi/mpi_check.h"
#include "src/common/activity.h"
#include "src/common/transfer_limits.h"
#include "mpi/native.h"

// LeakSanitizer builds (RINGWORLD_SANITIZE=address): see ~Runtime.
#if defined(__SANITIZE_ADDRESS__)
#define RW_LEAK_CHECK_AT_FINALIZE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RW_LEAK_CHECK_AT_FINALIZE 1
#endif
#endif
#ifdef RW_LEAK_CHECK_AT_FINALIZE
#include <sanitizer/lsan_interface.h>
#endif

namespace rw::mpi {
namespace {

// MPI is initialised MPI_THREAD_FUNNELED: only the thread that called MPI_Init_thread may call
// MPI. These are set by that thread and read by any thread that must end the job, so a thread
// other than the main one (the watchdog, an OpenMP worker hitting RW_CHECK) decides without
// calling MPI (not even MPI_Initialized) that it must not call MPI_Abort.
std::atomic<bool> g_mpi_live{false};  // between MPI_Init_thread and MPI_Finalize
std::atomic<int> g_world_rank{-1};
std::thread::id g_main_thread;

[[noreturn]] void abort_job(const std::string& message) {
  std::fprintf(stderr, "[rank %d on %s] %s\n", g_world_rank.load(), host_name().c_str(), message.c_str());
  std::fflush(stderr);
  end_job(1);
}

}  // namespace

void end_job(int exit_code) {
  if (g_mpi_live.load() && std::this_thread::get_id() == g_main_thread) MPI_Abort(MPI_COMM_WORLD, exit_code);
  // Any other thread, or MPI not running: leave without finalising. mpirun ends every rank of a
  // job when one exits non-zero before MPI_Finalize; srun does with --kill-on-bad-exit=1 (the
  // jobs/slurm/ scripts set it). _exit: no atexit handlers or destructors that could call MPI,
  // and no stdio flush that could wait for a lock the stalled main thread holds (a write to a
  // full pipe): callers flush what they printed themselves.
  _exit(exit_code);
}

MPI_Comm world_comm() { return MPI_COMM_WORLD; }

Runtime::Runtime(int& argc, char**& argv) {
  int provided = 0;
#ifdef RW_LEAK_CHECK_AT_FINALIZE
  // What MPI allocates while it starts is its own (some of it in components it loads, tries and
  // unloads again, where no suppression can name it): LeakSanitizer ignores it.
  __lsan::ScopedDisabler mpi_init_allocations;
#endif
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "ringworld: MPI_Init_thread failed\n");
    std::_Exit(1);
  }
  g_main_thread = std::this_thread::get_id();
  g_mpi_live = true;
  set_fatal_handler(&abort_job);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  g_world_rank = rank;
  activity::set_rank(rank);
  RW_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  RW_CHECK(provided >= MPI_THREAD_FUNNELED, "the MPI library does not provide MPI_THREAD_FUNNELED");
}

Runtime::~Runtime() {
#ifdef RW_LEAK_CHECK_AT_FINALIZE
  // Look for leaks now, while Open MPI's components are loaded: MPI_Finalize unloads them, and
  // their own leaks (tests/sanitize/lsan.supp) could then no longer be told from ours.
  __lsan_do_leak_check();
#endif
  int finalized = 0;
  MPI_Finalized(&finalized);
  g_mpi_live = false;
  if (!finalized) MPI_Finalize();
  set_fatal_handler(nullptr);
}

int world_rank() {
  int rank = 0;
  RW_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  return rank;
}

int world_size() {
  int size = 1;
  RW_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  return size;
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

std::string agree_on_error(const std::string& local_error) {
  const int size = world_size(), rank = world_rank();
  int mine = local_error.empty() ? size : rank, first = size;
  RW_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (first == size) return "";
  int length = rank == first ? static_cast<int>(local_error.size()) : 0;
  RW_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD));
  std::vector<char> text(local_error.begin(), local_error.end());
  text.resize(length);
  RW_MPI_CHECK(MPI_Bcast(text.data(), length, MPI_CHAR, first, MPI_COMM_WORLD));
  return std::string(text.begin(), text.end());
}

int ranks_on_this_node() {
  MPI_Comm node;
  RW_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int size = 1;
  RW_MPI_CHECK(MPI_Comm_size(node, &size));
  RW_MPI_CHECK(MPI_Comm_free(&node));
  return size;
}

void barrier() { RW_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

namespace {
double allreduce(double value, MPI_Op op) {
  double out = 0;
  RW_MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD));
  return out;
}
}  // namespace

double allreduce_max(double value) { return allreduce(value, MPI_MAX); }
double allreduce_min(double value) { return allreduce(value, MPI_MIN); }
double allreduce_sum(double value) { return allreduce(value, MPI_SUM); }

std::vector<unsigned char> gather_bytes_to_root(const std::vector<unsigned char>& local) {
  const int size = world_size(), rank = world_rank();
  constexpr int kTag = 0x6761;  // 'ga': a tag of its own, nothing else of ours is in flight here
  unsigned long long mine = local.size();
  std::vector<unsigned long long> sizes(rank == 0 ? static_cast<std::size_t>(size) : 0);
  RW_MPI_CHECK(MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, sizes.data(), 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD));
  const std::size_t piece = mpi_chunk_bytes();
  if (rank != 0) {
    for (std::size_t at = 0; at < local.size(); at += piece)
      RW_MPI_CHECK(MPI_Send(local.data() + at, static_cast<int>(std::min(piece, local.size() - at)), MPI_BYTE, 0, kTag, MPI_COMM_WORLD));
    return {};
  }
  std::size_t total = 0;
  for (unsigned long long n : sizes) total += n;
  std::vector<unsigned char> all(total);
  std::copy(local.begin(), local.end(), all.begin());
  std::size_t offset = local.size();
  for (int r = 1; r < size; ++r) {
    for (std::size_t at = 0; at < sizes[static_cast<std::size_t>(r)]; at += piece)
      RW_MPI_CHECK(MPI_Recv(all.data() + offset + at, static_cast<int>(std::min<std::size_t>(piece, sizes[static_cast<std::size_t>(r)] - at)),
                            MPI_BYTE, r, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    offset += sizes[static_cast<std::size_t>(r)];
  }
  return all;
}

}  // namespace rw::mpi
