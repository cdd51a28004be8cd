// test_watchdog.cpp: hang forensics end to end. A stall is injected on one rank of a 3-rank
// training run (RINGWORLD_INJECT_STALL, a test hook in src/common/activity.h: the rank sleeps
// 120 s at a ring step). With --timeout 3 the watchdogs must end the job long before the stall
// would: every rank prints where it is (the stalled rank names the stall, the others what they
// wait for), the exit is non-zero, and no temporary checkpoint file is left behind.
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
    const RunResult r = run_ringworld(3, args, 100, dir / "out.txt", dir / "err.txt");
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
