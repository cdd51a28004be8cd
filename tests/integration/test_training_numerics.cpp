// test_training_numerics.cpp: `ringworld train` end to end on 2 ranks for what the optimizer and
// the trainer decide (src/train/optimizer.h, trainer.h):
//  - non-finite steps: a NaN injected into one gradient of the last rank at chosen steps (the
//    test hook RINGWORLD_TEST_INJECT_NAN_AT_STEP). --on-nonfinite stop (the default) ends the run
//    with one message and a non-zero exit before the step's update and before any checkpoint;
//    skip leaves that step's checkpoint bit-identical to the previous one (weights and AdamW
//    moments untouched) and trains on; --max-consecutive-skips K stops after K skips in a row.
//    Every dataset of every checkpoint written is finite.
//  - the stage header describes the schedule that runs (no warm-up for a constant schedule, a
//    warning for a warm-up longer than the stage).
//  - micro-batches: the losses of a run in 8 micro-batches match the run without to 1e-6
//    relative (fp32 summation order only: see tests/mpi/test_training.cpp), and the peak
//    resident memory drops: at least half the drop `ringworld plan` predicts, and the
//    micro-batched run within the planner's 25% (tests/integration/test_planner.cpp); the plan of
//    LWM's 128K stage on 32 H100s picks the micro-batch that fits.
// 35-70 s on a loaded 2-core machine (5 short training runs, 5 plans).
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "tests/integration/integration_support.h"

using namespace rw::test;

namespace {

struct InjectNan {
  explicit InjectNan(const std::string& steps) { setenv("RINGWORLD_TEST_INJECT_NAN_AT_STEP", steps.c_str(), 1); }
  ~InjectNan() { unsetenv("RINGWORLD_TEST_INJECT_NAN_AT_STEP"); }
};

const std::string kSmall = "train --seq-len 64 --steps 5 --checkpoint-every 1 --keep-last 10 --timeout 120";

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(std::string("/") + name);
  return 0;
}

// Every float dataset of a checkpoint (params and AdamW moments), by name.
std::vector<std::pair<std::string, Tensor>> float_tensors(const fs::path& path) {
  H5File file(path);
  REQUIRE(file.ok());
  std::vector<std::string> names;
  REQUIRE(H5Ovisit(file.id(), H5_INDEX_NAME, H5_ITER_NATIVE, collect_dataset, &names) >= 0);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& name : names)
    if (name.rfind("/params/", 0) == 0 || name.rfind("/optim/", 0) == 0) out.emplace_back(name, read_tensor(file.id(), name));
  REQUIRE(!out.empty());
  return out;
}

void check_all_finite(const fs::path& path) {
  INFO("checkpoint " << path);
  for (const auto& [name, t] : float_tensors(path)) {
    INFO(name);
    std::size_t bad = 0;
    for (float x : t.values) bad += std::isfinite(x) ? 0 : 1;
    CHECK(bad == 0);
  }
}

bool same_state(const fs::path& a, const fs::path& b) {
  const auto ta = float_tensors(a), tb = float_tensors(b);
  if (ta.size() != tb.size()) return false;
  for (std::size_t i = 0; i < ta.size(); ++i)
    if (ta[i].first != tb[i].first || !same_bits(ta[i].second, tb[i].second)) return false;
  return true;
}

std::string ckpt(int step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-main-step%08d.h5", step);
  return buf;
}

std::string trimmed(const std::string& s) { return s.substr(0, s.find_last_not_of(" \n") + 1); }

std::string header_line(const std::string& out) {
  const std::size_t at = out.find("== stage");
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}

// The "loss" of every metrics.jsonl line, in order.
std::vector<double> losses(const fs::path& metrics) {
  std::vector<double> out;
  const std::string text = slurp(metrics);
  const std::regex loss(R"("loss":([-+0-9.eE]+))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), loss); it != std::sregex_iterator(); ++it)
    out.push_back(std::stod((*it)[1]));
  return out;
}

double mib_after(const std::string& text, const std::string& label) {
  const std::size_t at = text.find(label);
  if (at == std::string::npos) return -1;
  std::smatch m;
  const std::string rest = text.substr(at + label.size());
  if (!std::regex_search(rest, m, std::regex(R"(^\s*([0-9.]+) (MiB|GiB))"))) return -1;
  return std::stod(m[1]) * (m[2] == "GiB" ? 1024 : 1);
}

RunResult run_plan(const std::string& args, const fs::path& out_log, const fs::path& err_log) {
  RunResult r;
  r.command = "timeout 60 " + quoted(RW_RINGWORLD_BIN) + " plan " + args;
  const int status = std::system((r.command + " >" + quoted(out_log) + " 2>" + quoted(err_log)).c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.stdout_text = slurp(out_log);
  r.stderr_text = slurp(err_log);
  return r;
}

}  // namespace

TEST_CASE("a NaN at step 3 stops the run before its update and before any checkpoint (--on-nonfinite stop)",
          "[nonfinite]") {
  ScratchDir dir("numerics_stop");
  const fs::path run = dir / "run";
  InjectNan nan("3");
  // The default cosine schedule with 10 warm-up steps in a 5-step stage: the header warns.
  const RunResult r = run_ringworld(2, kSmall + " --run-dir " + quoted(run), 120, dir / "out", dir / "err");
  INFO(show(r));
  CHECK(r.exit_code == 1);
  const auto lines = tool_lines(r.stderr_text);
  REQUIRE(lines.size() == 1);  // one message, from rank 0, though both ranks stop
  CHECK(lines[0].find("error: non-finite step 3") != std::string::npos);
  CHECK(lines[0].find("gradient norm nan") != std::string::npos);
  CHECK(r.stderr_text.find("MPI_ABORT") == std::string::npos);
  const std::string header = header_line(r.stdout_text);
  CHECK(header.find("warning: the warm-up of 10 steps is longer than the stage's 5 steps") != std::string::npos);
  CHECK(fs::exists(run / ckpt(1)));
  CHECK(fs::exists(run / ckpt(2)));
  CHECK_FALSE(fs::exists(run / ckpt(3)));
  CHECK_FALSE(fs::exists(run / "ckpt-main-final.h5"));
  CHECK(trimmed(slurp(run / "latest")) == ckpt(2));
  check_all_finite(run / ckpt(1));
  check_all_finite(run / ckpt(2));
  CHECK(losses(run / "metrics.jsonl").size() == 2);  // nothing recorded for the stopped step
}

TEST_CASE("--on-nonfinite skip: the skipped step changes nothing, the run trains on; K skips in a row stop it",
          "[nonfinite]") {
  ScratchDir dir("numerics_skip");
  SECTION("one skipped step") {
    const fs::path run = dir / "run";
    InjectNan nan("3");
    // Stopped after step 4 (as by SIGTERM, exit 75) to keep every step's checkpoint.
    const RunResult r = run_ringworld(2, kSmall + " --run-dir " + quoted(run) +
                                             " --on-nonfinite skip --schedule constant --warmup-steps 2 --stop-after-steps 4",
                                      120, dir / "out", dir / "err");
    INFO(show(r));
    CHECK(r.exit_code == 75);
    const auto lines = tool_lines(r.stderr_text);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("warning: non-finite step 3") != std::string::npos);
    CHECK(lines[0].find("update skipped") != std::string::npos);
    // A constant schedule is described as such: no warm-up runs.
    const std::string header = header_line(r.stdout_text);
    INFO(header);
    CHECK(header.find("lr 0.001 constant") != std::string::npos);
    CHECK(header.find("warm-up") == std::string::npos);
    for (int s : {1, 2, 3, 4}) check_all_finite(run / ckpt(s));
    CHECK(same_state(run / ckpt(2), run / ckpt(3)));   // weights and moments untouched by step 3
    CHECK_FALSE(same_state(run / ckpt(3), run / ckpt(4)));  // step 4 trained
  }
  SECTION("--max-consecutive-skips 2") {
    const fs::path run = dir / "run";
    InjectNan nan("2,3");
    const RunResult r = run_ringworld(2, kSmall + " --run-dir " + quoted(run) + " --on-nonfinite skip --max-consecutive-skips 2",
                                      120, dir / "out", dir / "err");
    INFO(show(r));
    CHECK(r.exit_code == 1);
    const auto lines = tool_lines(r.stderr_text);
    REQUIRE(lines.size() == 2);  // the first skip's warning, then the stop
    CHECK(lines[0].find("warning: non-finite step 2") != std::string::npos);
    CHECK(lines[1].find("error: non-finite step 3") != std::string::npos);
    CHECK(lines[1].find("2 steps in a row") != std::string::npos);
    CHECK(same_state(run / ckpt(1), run / ckpt(2)));
    CHECK_FALSE(fs::exists(run / ckpt(3)));
    CHECK(trimmed(slurp(run / "latest")) == ckpt(2));
  }
}

TEST_CASE("micro-batches: the same losses, less memory, as the planner predicts", "[micro]") {
  ScratchDir dir("numerics_micro");
  // 16 sequences of 512 on dp 2 x sp 1: 8 per dp group, whole or 1 at a time (8 micro-batches).
  const std::string shape =
      "--model tiny --hidden_size 64 --num_attention_heads 2 --num_key_value_heads 2 --intermediate_size 128 "
      "--vocab_size 256 --num_hidden_layers 8 --seq-len 512 --global-batch-tokens 8192 --dp 2 --sp 1";
  struct Measured {
    double rss_mib = 0, predicted_mib = 0;
    std::vector<double> losses;
  };
  auto measure = [&](const std::string& micro) {
    const std::string tag = "mb" + micro;
    const RunResult r = run_ringworld(2, "train " + shape + " --steps 2 --micro-batch-tokens " + micro + " --metrics " +
                                             quoted(dir / (tag + ".jsonl")) + " --timeout 120",
                                      240, dir / (tag + ".out"), dir / (tag + ".err"));
    const RunResult p = run_plan(shape + " --ranks 2 --device cpu --device-tflops 1 --threads 1 --micro-batch-tokens " + micro,
                                 dir / (tag + "-plan.out"), dir / (tag + "-plan.err"));
    INFO(show(r));
    INFO(show(p));
    REQUIRE(r.exit_code == 0);
    REQUIRE(p.exit_code == 0);
    Measured m;
    m.rss_mib = mib_after(r.stdout_text, "peak resident memory per rank (max over ranks):");
    m.predicted_mib = mib_after(p.stdout_text, "predicted peak memory per rank:");
    m.losses = losses(dir / (tag + ".jsonl"));
    if (micro != "0") CHECK(header_line(r.stdout_text).find("in 8 micro-batches of 1024 tokens") != std::string::npos);
    return m;
  };
  const Measured whole = measure("0"), micro = measure("1024");
  std::printf("micro-batches, peak resident memory per rank (2 ranks): whole batch %.1f MiB (plan %.1f), "
              "8 micro-batches %.1f MiB (plan %.1f)\n",
              whole.rss_mib, whole.predicted_mib, micro.rss_mib, micro.predicted_mib);
  std::fflush(stdout);
  REQUIRE(whole.losses.size() == 2);
  REQUIRE(micro.losses.size() == 2);
  for (int s = 0; s < 2; ++s) CHECK(std::fabs(micro.losses[s] - whole.losses[s]) <= 1e-6 * whole.losses[s]);
  REQUIRE(whole.rss_mib > 0);
  REQUIRE(micro.rss_mib > 0);
  CHECK(whole.predicted_mib - micro.predicted_mib > 0);
  CHECK(whole.rss_mib - micro.rss_mib >= 0.5 * (whole.predicted_mib - micro.predicted_mib));
  CHECK(std::fabs(micro.predicted_mib - micro.rss_mib) <= 0.25 * micro.rss_mib);
}

TEST_CASE("plan: LWM's 128K stage on 32 H100s runs in the largest micro-batches that fit", "[micro][planner]") {
  ScratchDir dir("numerics_plan");
  const std::string lwm = quoted(fs::path(RW_SOURCE_DIR) / "jobs/configs/lwm-text-7b.ini");
  const RunResult chosen = run_plan("--model " + lwm + " --stage 128k --ranks 32 --device h100", dir / "a.out", dir / "a.err");
  INFO(show(chosen));
  REQUIRE(chosen.exit_code == 0);
  CHECK(chosen.stdout_text.find("micro-batches: 4 of 8 sequence(s) per dp group, --micro-batch-tokens 1048576 (chosen") !=
        std::string::npos);
  CHECK(chosen.stdout_text.find("verdict: fits") != std::string::npos);
  const RunResult whole = run_plan("--model " + lwm + " --stage 128k --ranks 32 --device h100 --micro-batch-tokens 0",
                                   dir / "b.out", dir / "b.err");
  INFO(show(whole));
  CHECK(whole.stdout_text.find("DOES NOT FIT") != std::string::npos);
  const double whole_gib = mib_after(whole.stdout_text, "predicted peak memory per rank:") / 1024;
  CHECK(whole_gib > 170);  // the issue's 174 GiB
  const RunResult bad = run_plan("--model " + lwm + " --stage 128k --ranks 32 --device h100 --micro-batch-tokens 100K",
                                 dir / "c.out", dir / "c.err");
  CHECK(bad.exit_code == 2);
  CHECK(bad.stderr_text.find("must be a multiple of seq-len 131072") != std::string::npos);
}
