// test_watchdog.cpp: hang forensics end to end. A stall is injected on one rank of a 3-rank
// training run (RINGWORLD_INJECT_STALL, a test hook in src/common/activity.h: the rank sleeps
// 120 s at a ring step). With --timeout 3 the watchdogs must end the job long before the stall
// would: every rank prints where it is (the stalled rank names the stall, the others what they
// wait for), the exit is non-zero, and no temporary checkpoint file is left behind. The ranks
// run under tests/mpi/mpi_thread_guard.c (LD_PRELOAD): MPI is initialised MPI_THREAD_FUNNELED,
// so the watchdog's thread must end the job without any MPI call (issue 14, item 13: it called
// MPI_Abort while the main thread sat in an MPI wait).
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

#include "tests/integration/integration_support.h"

using namespace rw::test;

namespace {

// Lines of `text` that the watchdog of world rank `rank` printed about where it is.
std::string watchdog_line(const std::string& text, int rank) {
  const std::string prefix = "ringworld watchdog: rank " + std::to_string(rank) + " on ";
  for (const std::string& line : tool_lines(text))
    if (line.rfind(prefix, 0) == 0 && line.find("no progress") != std::string::npos) return line;
  return "";
}

// run_ringworld with the thread guard preloaded into the ranks only (mpirun -x), not into
// timeout and mpirun themselves.
RunResult run_guarded(int np, const std::string& args, int timeout_s, const fs::path& out_log, const fs::path& err_log) {
  std::string command = ringworld_command(np, args);
  const std::size_t at = command.find(" -np ");
  REQUIRE(at != std::string::npos);
  command.insert(at, std::string(" -x LD_PRELOAD=") + RW_THREAD_GUARD_LIB);
  RunResult r;
  r.command = "timeout " + std::to_string(timeout_s) + " " + command;
  const int status = std::system((r.command + " >" + quoted(out_log) + " 2>" + quoted(err_log)).c_str());
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.stdout_text = slurp(out_log);
  r.stderr_text = slurp(err_log);
  return r;
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

struct StallEnv {
  explicit StallEnv(const std::string& value) { setenv("RINGWORLD_INJECT_STALL", value.c_str(), 1); }
  ~StallEnv() { unsetenv("RINGWORLD_INJECT_STALL"); }
};

}  // namespace

TEST_CASE("a stalled rank is named by the watchdogs of every rank and the job ends", "[watchdog]") {
  ScratchDir dir("watchdog");
  const std::string args = "train --model tiny --seq-len 384 --steps 4 --checkpoint-every 1 --timeout 3 --run-dir " +
                           quoted(dir / "run");
  for (int stalled_ring_step : {0, 2}) {
    INFO("stall at ring step " << stalled_ring_step);
    StallEnv stall("1:" + std::to_string(stalled_ring_step) + ":120");
    const auto t0 = std::chrono::steady_clock::now();
    // `timeout 100` would report 124: a hang the watchdog failed to end.
    const RunResult r = run_guarded(3, args, 100, dir / "out.txt", dir / "err.txt");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(show(r));
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code != 124);
    // timeout 3 s + grace 2 s + start-up; far below the 120 s stall.
    CHECK(seconds < 60);
    const std::string stalled = watchdog_line(r.stderr_text, 1);
    CHECK(stalled.find("INJECTED STALL") != std::string::npos);
    CHECK(stalled.find("ring step " + std::to_string(stalled_ring_step + 1) + "/3") != std::string::npos);
    CHECK(stalled.find("layer 0 forward") != std::string::npos);
    for (int rank : {0, 2}) {
      const std::string line = watchdog_line(r.stderr_text, rank);
      INFO("rank " << rank << ": " << line);
      CHECK(line.find("step 0") != std::string::npos);
      // Waiting on the stalled rank: a ring transfer or a collective it has not joined.
      CHECK((line.find("waiting for the") != std::string::npos || line.find("in an allgather") != std::string::npos ||
             line.find("in an allreduce") != std::string::npos));
    }
    CHECK(r.stderr_text.find("ends the job") != std::string::npos);
    // The guard ran in every rank, and no thread but MPI's main one called MPI.
    CHECK(count_of(r.stderr_text, "mpi_thread_guard: active") == 3);
    CHECK(r.stderr_text.find("mpi_thread_guard: VIOLATION") == std::string::npos);
    for (const auto& entry : fs::directory_iterator(dir / "run"))
      CHECK(entry.path().extension() != ".tmp");
  }
}

TEST_CASE("without a stall the watchdog stays silent", "[watchdog]") {
  ScratchDir dir("watchdog_quiet");
  const RunResult r = run_ringworld(2, "train --model tiny --seq-len 256 --steps 3 --timeout 5", 100, dir / "out.txt",
                                    dir / "err.txt");
  INFO(show(r));
  CHECK(r.exit_code == 0);
  CHECK(r.stderr_text.find("watchdog") == std::string::npos);
  CHECK(r.stdout_text.find("watchdog: a rank without progress for 5 s") != std::string::npos);
  CHECK(r.stdout_text.find("ring order (dp 1 x sp 2") != std::string::npos);
}
