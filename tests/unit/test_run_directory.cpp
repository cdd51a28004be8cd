// test_run_directory.cpp (unit): the pure pieces of the run directory and of the progress log,
// without MPI or HDF5: checkpoint names, plan differences, what a run does with a directory
// that holds a run (run_reuse.h), the checkpoint-vs-plan comparison, pruning (on empty files
// with a stand-in for "belongs to this run"), ETA arithmetic and validation buckets. The end-to-end
// behaviour is tests/integration/test_run_directory.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>

#include "io/run_directory.h"
#include "src/train/progress.h"
#include "src/train/run_reuse.h"
#include "src/train/validation.h"

namespace fs = std::filesystem;
using namespace rw;

namespace {

train::RunPlan one_stage_plan() {
  train::RunPlan p;
  p.model = model::preset_config("tiny");
  p.dp = 1;
  p.sp = 1;
  train::StageSpec s;
  s.name = "main";
  s.seq_len = 48;
  s.steps = 6;
  p.stages = {s};
  p.run_dir = "runs/x";
  return p;
}

io::RunDirectoryContents holding_a_run() {
  io::RunDirectoryContents c;
  c.exists = c.has_run_ini = c.has_metrics = true;
  c.latest = "ckpt-main-step00000003.h5";
  c.checkpoints = {"ckpt-main-step00000003.h5"};
  return c;
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("rw_unit_rundir_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("checkpoint names round-trip and other names are not checkpoints", "[run_directory]") {
  std::string stage;
  int64_t step = 0;
  bool is_final = false;
  CHECK(io::checkpoint_step_name("32k", 12) == "ckpt-32k-step00000012.h5");
  REQUIRE(io::parse_checkpoint_name("ckpt-32k-step00000012.h5", &stage, &step, &is_final));
  CHECK(stage == "32k");
  CHECK(step == 12);
  CHECK_FALSE(is_final);
  REQUIRE(io::parse_checkpoint_name(io::checkpoint_final_name("a-b"), &stage, &step, &is_final));
  CHECK(stage == "a-b");
  CHECK(is_final);
  for (const char* bad : {"latest", "ckpt-a-step.h5", "ckpt-a-stepx1.h5", "ckpt--final.h5", "ckpt-a-step00000001.h5.tmp",
                          "run.ini"})
    CHECK_FALSE(io::parse_checkpoint_name(bad, &stage, &step, &is_final));
}

TEST_CASE("plan differences name each setting; run-id and a one-sided data checksum are not differences",
          "[run_directory]") {
  train::RunPlan a = one_stage_plan(), b = a;
  CHECK(train::plan_differences(a, b).empty());
  b.run_id = "abc";
  b.stages[0].data_checksum = "crc32:0x00000001 bytes:1";
  CHECK(train::plan_differences(a, b).empty());
  a.stages[0].data_checksum = "crc32:0x00000002 bytes:1";
  b.stages[0].lr = 5e-4;
  b.model.rms_norm_eps = 1e-6;
  const auto d = train::plan_differences(a, b);
  REQUIRE(d.size() == 3);
  CHECK(d[0].key == "rms_norm_eps");
  CHECK(d[0].text() == "rms_norm_eps 1e-05 -> 1e-06");
  CHECK(d[1].text() == "[stage.main] lr 0.001 -> 0.0005");
  CHECK(d[2].key == "[stage.main] data-checksum");
  b.stages.push_back(b.stages[0]);
  b.stages[1].name = "long";
  bool stage_added = false;
  for (const auto& x : train::plan_differences(a, b)) stage_added = stage_added || x.key == "[stage.long]";
  CHECK(stage_added);
}

TEST_CASE("a run directory holding a run is continued with the same plan and refused otherwise", "[run_directory]") {
  const train::RunPlan saved = [] {
    train::RunPlan p = one_stage_plan();
    p.run_id = "saved-id";
    return p;
  }();
  using Action = train::RunDirectoryDecision::Action;

  SECTION("no directory, or one without a run: a fresh run with the new id") {
    train::RunPlan p = one_stage_plan();
    p.run_dir.clear();
    auto d = train::decide_run_directory(p, std::nullopt, {}, "new-id");
    CHECK(d.action == Action::fresh);
    CHECK(d.plan.run_id == "new-id");
    CHECK_FALSE(d.write_run_ini);
    io::RunDirectoryContents unrelated;
    unrelated.exists = true;
    d = train::decide_run_directory(one_stage_plan(), std::nullopt, unrelated, "new-id");
    CHECK(d.action == Action::fresh);
    CHECK(d.write_run_ini);
  }
  SECTION("the same plan again continues the run, keeping its id and run.ini") {
    const auto d = train::decide_run_directory(one_stage_plan(), saved, holding_a_run(), "new-id");
    CHECK(d.action == Action::resume);
    CHECK(d.plan.run_id == "saved-id");
    CHECK_FALSE(d.write_run_ini);
  }
  SECTION("the same run saved or logged differently continues, the change reported; another length does not") {
    train::RunPlan p = one_stage_plan();
    p.checkpoint_every = 50;
    auto d = train::decide_run_directory(p, saved, holding_a_run(), "new-id");
    CHECK(d.action == Action::resume);
    CHECK(d.write_run_ini);
    CHECK(d.notes == std::vector<std::string>{"run directory 'runs/x' holds this run: continuing it",
                                              "changed on resume: checkpoint-every 0 -> 50"});
    p.stages[0].steps = 60;
    d = train::decide_run_directory(p, saved, holding_a_run(), "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "[stage.main] steps 6 -> 60"));
    CHECK_FALSE(contains(d.error, "checkpoint-every 0 -> 50"));
  }
  SECTION("another plan is refused, saying how to continue or where to go") {
    train::RunPlan p = one_stage_plan();
    p.stages[0].lr = 2e-3;
    const auto d = train::decide_run_directory(p, saved, holding_a_run(), "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "holds another run"));
    CHECK(contains(d.error, "[stage.main] lr 0.001 -> 0.002"));
    CHECK(contains(d.error, "--resume runs/x"));
    CHECK(contains(d.error, "--run-dir NEW"));
  }
  SECTION("files of a run without run.ini are refused") {
    const auto d = train::decide_run_directory(one_stage_plan(), std::nullopt, holding_a_run(), "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "no run.ini"));
  }
  SECTION("--resume: allowed changes are reported and recorded, others refused by name") {
    train::RunPlan p = one_stage_plan();
    p.resume = true;
    p.keep_last = 5;
    p.stages[0].steps = 9;
    auto d = train::decide_run_directory(p, saved, holding_a_run(), "new-id");
    REQUIRE(d.action == Action::resume);
    CHECK(d.write_run_ini);
    CHECK(d.plan.run_id == "saved-id");
    REQUIRE(d.notes.size() == 2);
    CHECK(d.notes[0] == "changed on resume: keep-last 2 -> 5");
    CHECK(contains(d.notes[1], "[stage.main] steps 6 -> 9 (the cosine schedule now decays to min-lr over 9 steps)"));
    p.seed = 9;
    p.model.hidden_size = 256;
    d = train::decide_run_directory(p, saved, holding_a_run(), "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "hidden_size 128 -> 256"));
    CHECK(contains(d.error, "seed 1 -> 9"));
    CHECK_FALSE(contains(d.error, "keep-last 2 -> 5"));  // allowed: not among the refused
  }
  SECTION("--resume: an ended stage keeps its length; a directory without run.ini is not a run") {
    train::RunPlan p = one_stage_plan();
    p.resume = true;
    p.stages[0].steps = 9;
    io::RunDirectoryContents ended = holding_a_run();
    ended.checkpoints.push_back("ckpt-main-final.h5");
    auto d = train::decide_run_directory(p, saved, ended, "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "stage 'main' has ended"));
    d = train::decide_run_directory(p, std::nullopt, holding_a_run(), "new-id");
    CHECK(d.action == Action::refuse);
    CHECK(contains(d.error, "no run.ini"));
  }
}

TEST_CASE("a checkpoint is compared with the stage it resumes", "[run_directory]") {
  const train::RunPlan plan = one_stage_plan();
  io::CheckpointState st;
  st.stage = "main";
  st.step = 3;
  st.seq_len = 48;
  st.global_batch_tokens = 48;
  st.layout = plan.layout;
  st.seed = plan.seed;
  st.world_size = st.dp = st.sp = 1;
  model::LlamaConfig config = plan.model;
  config.rope_theta = plan.stages[0].rope_theta;
  auto c = train::compare_checkpoint_with_stage(st, config, plan, plan.stages[0], 48, 1, 1, 1);
  CHECK(c.refused.empty());
  CHECK(c.reported.empty());
  config.rms_norm_eps = 1e-6;
  st.seq_len = 96;
  st.step = 7;
  st.layout = "striped";
  st.world_size = st.sp = 2;
  st.adam_step_known = false;
  c = train::compare_checkpoint_with_stage(st, config, plan, plan.stages[0], 48, 1, 1, 1);
  REQUIRE(c.refused.size() == 3);
  CHECK(c.refused[0] == "rms_norm_eps: checkpoint 1e-06, run 1e-05");
  CHECK(c.refused[1] == "seq-len: checkpoint 96, run 48");
  CHECK(contains(c.refused[2], "the checkpoint is at step 7, past the stage's 6 steps"));
  REQUIRE(c.reported.size() == 3);
  CHECK(contains(c.reported[0], "layout striped at save, zigzag now"));
  CHECK(contains(c.reported[1], "saved by 2 rank(s) as dp 1 x sp 2, resharded to 1"));
  CHECK(contains(c.reported[2], "format-1 checkpoint has no optimizer step count"));
}

TEST_CASE("pruning keeps latest and other runs' files and ignores later steps", "[run_directory]") {
  TempDir tmp;
  const io::RunDirectory dir(tmp.path.string());
  const std::set<std::string> foreign = {"ckpt-a-step00000002.h5", "ckpt-a-step00000009.h5"};
  for (int step : {1, 2, 3, 4, 5, 8, 9}) std::ofstream(tmp.path / io::checkpoint_step_name("a", step));
  std::ofstream(tmp.path / io::checkpoint_step_name("b", 1));
  std::ofstream(tmp.path / io::checkpoint_final_name("a"));
  dir.set_latest(io::checkpoint_step_name("a", 3));  // a resume from an earlier checkpoint left 4, 5, 8 behind
  CHECK(dir.read_latest() == "ckpt-a-step00000003.h5");
  CHECK_FALSE(fs::exists(tmp.path / "latest.tmp"));
  auto belongs = [&](const std::string& path) { return !foreign.count(fs::path(path).filename().string()); };
  const auto removed = dir.prune("a", 1, 3, belongs);
  CHECK(removed == std::vector<std::string>{"ckpt-a-step00000001.h5"});  // 3 kept (latest), 2 foreign
  for (int step : {2, 3, 4, 5, 8, 9}) CHECK(fs::exists(tmp.path / io::checkpoint_step_name("a", step)));
  CHECK(fs::exists(tmp.path / io::checkpoint_step_name("b", 1)));
  CHECK(fs::exists(tmp.path / io::checkpoint_final_name("a")));
  // keep 0 at a stage's end: every step checkpoint of this run up to the step, but latest.
  dir.set_latest(io::checkpoint_final_name("a"));
  CHECK(dir.prune("a", 0, 9, belongs) ==
        std::vector<std::string>{"ckpt-a-step00000003.h5", "ckpt-a-step00000004.h5", "ckpt-a-step00000005.h5",
                                 "ckpt-a-step00000008.h5"});
  // latest is never removed, whatever keep says.
  dir.set_latest(io::checkpoint_step_name("a", 2));
  CHECK(dir.prune("a", 0, 9, [](const std::string&) { return true; }) ==
        std::vector<std::string>{"ckpt-a-step00000009.h5"});
  CHECK(fs::exists(tmp.path / "ckpt-a-step00000002.h5"));
}

TEST_CASE("run directory contents: what counts as a run", "[run_directory]") {
  TempDir tmp;
  const io::RunDirectory dir(tmp.path.string());
  CHECK_FALSE(io::RunDirectory((tmp.path / "none").string()).inspect().exists);
  std::ofstream(tmp.path / "notes.txt") << "x";
  std::ofstream(tmp.path / "metrics.jsonl");  // empty: nothing was logged
  CHECK_FALSE(dir.inspect().holds_a_run());
  std::ofstream(tmp.path / "ckpt-a-step00000001.h5.tmp");
  const auto c = dir.inspect();
  CHECK(c.holds_a_run());
  CHECK(c.checkpoints == std::vector<std::string>{"ckpt-a-step00000001.h5.tmp"});
  CHECK(train::absolute_data_spec("file:d.h5") == "file:" + (fs::current_path() / "d.h5").string());
  CHECK(train::absolute_data_spec("file-concat:/x/../y.h5") == "file-concat:/y.h5");
  CHECK(train::absolute_data_spec("synthetic:passkey") == "synthetic:passkey");
}

TEST_CASE("progress: s/step without the first step, stage and run ETAs, durations", "[run_directory]") {
  // Stage at 2 of 10 steps; a later stage of 5 steps at twice the FLOPs per step.
  train::StageProgress p(2, 10, 1e12, {{5, 2e12}});
  CHECK(std::isnan(p.seconds_per_step()));
  p.record_step(10.0);  // the first one (warm-up costs): used alone until there are others
  CHECK(p.seconds_per_step() == 10.0);
  p.record_step(2.0);
  p.record_step(4.0);
  CHECK(p.steps_done() == 5);
  CHECK(p.seconds_per_step() == 3.0);
  CHECK(p.stage_eta_seconds() == 3.0 * 5);
  CHECK(p.run_eta_seconds() == 3.0 * 5 + 3.0 * 2 * 5);
  CHECK(train::format_duration(0.5) == "0.50 s");
  CHECK(train::format_duration(42) == "42 s");
  CHECK(train::format_duration(75) == "1m15s");
  CHECK(train::format_duration(3700) == "1h01m");
  CHECK(train::format_duration(90000) == "1d01h");
  CHECK(train::format_duration(std::nan("")) == "?");
  CHECK(train::format_count(950) == "950");
  CHECK(train::format_count(1536) == "1.54K");
  CHECK(train::format_count(4.19e6) == "4.19M");
}

TEST_CASE("validation buckets by position", "[run_directory]") {
  CHECK(train::default_bucket_tokens(1) == 1);
  CHECK(train::default_bucket_tokens(48) == 8);
  CHECK(train::default_bucket_tokens(8192) == 1024);
  CHECK(train::default_bucket_tokens(1 << 20) == 1 << 17);
  data::LocalBatch b;
  b.n_sequences = 1;
  b.n_local = 5;
  b.positions = {0, 3, 4, 9, 2};
  b.targets = {1, 1, -1, 1, 1};
  b.loss_weights = {1.f, 2.f, 1.f, 1.f, 0.f};
  const std::vector<double> losses = {1.0, 4.0, 100.0, 3.0, 100.0};  // w * CE per token
  std::vector<double> sums(2 * 3, 0.0);  // width 4: [0,4) [4,8) [8,12)
  train::add_to_buckets(b, losses, 4, sums);
  CHECK(sums == std::vector<double>{5.0, 3.0, 0.0, 0.0, 3.0, 1.0});  // ignored target and zero weight left out
}
