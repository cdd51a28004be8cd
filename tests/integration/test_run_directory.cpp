// test_run_directory.cpp: end-to-end tests of the run directory (issue 15's "the run directory",
// issue 14's pruning, optimizer step count, prefetch, config comparison and protected state)
// and of the observability of long jobs (step lines, summaries, metrics, validation).
//
// A plain (non-MPI) Catch2 program like test_checkpoints.cpp (helpers: integration_support.h):
// it runs `timeout N mpirun -np N ringworld ...` and inspects the files with the serial HDF5 C
// API and nlohmann-json. Every run uses a tiny LLaMA (hidden 32, intermediate 64, 2 layers, 4
// heads on 2 kv heads, vocab 48 or 260 for byte-tokenized files) on sequences of 48 tokens, 1
// rank unless the case needs more, so a run takes about a second (~40 runs: ~25 s of CPU, 140 s
// wall on 2 cores shared with other work).
//
// What is tested (each case failed before the change it pins; see the case's comment):
//   1. --resume DIR --config X.ini: DIR/run.ini wins; a different plan (from X.ini or options) is
//      refused naming each setting, leaving run.ini, latest, checkpoints and metrics untouched;
//      the same plan continues; an allowed override (keep-last, steps) is reported and recorded.
//   2. A directory holding another run (unfinished or finished) is refused with a message naming
//      --resume and --run-dir; the same command continues its own run; files of a run without
//      run.ini are refused; unrelated files are not a run.
//   3. --metrics into a missing directory is refused before any step; an existing metrics file
//      of another run is not appended to.
//   4. run.ini stores the dataset's absolute path and checksum: resume from another working
//      directory works, a changed dataset is refused.
//   5. --resume-from CKPT.h5 and --resume-from DIR (its latest) start from the chosen checkpoint
//      (losses bit-identical to the run that wrote it); rewinding an ended stage is refused.
//   6. Pruning: the checkpoint `latest` names is never removed, nor another run's file, even
//      when names of other files sort later; --keep-last 0 is refused.
//   7. --carry-optimizer: the first update of the next stage is AdamW's at t = previous step
//      count + 1 (hand-computed from the stored moments), not the t = 1 update; adam_step is
//      stored and continues on resume.
//   8. A changed attribute (step, a config value, adam_step) or data cursor is detected on load,
//      naming it; a checkpoint whose config differs from the run's is refused naming the field.
//   9. `latest` is replaced atomically and the directory fsync'd after the rename (strace).
//  10. Each rank prefetches only the byte ranges of its own slabs (RINGWORLD_PREFETCH_REPORT).
//  11. Provenance: --version; run.ini, the metrics header and checkpoints record version,
//      commit, command line, world size and grid.
//  12. Observability: step lines with s/step, tokens, elapsed and ETAs; stage summaries; ISO
//      timestamps; validation loss by position bucket, consistent with its total and not
//      disturbing training (losses bit-identical with and without validation).
#include <hdf5.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/integration_support.h"

namespace fs = std::filesystem;
using namespace rw::test;
using Json = nlohmann::json;

namespace {

const std::string kModel =
    "--model tiny --hidden_size 32 --intermediate_size 64 --num_hidden_layers 2 --num_attention_heads 4 "
    "--num_key_value_heads 2 --vocab_size 48";
const std::string kModelIni =
    "model = tiny\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\nnum_attention_heads = 4\n"
    "num_key_value_heads = 2\nvocab_size = 48\n";

// A single-stage plan as an INI file (no [stage.*] sections: the command-line stage options).
std::string plan_ini(int steps = 6, const std::string& lr = "3e-3") {
  return kModelIni + "seq-len = 48\nglobal-batch-tokens = 96\nsteps = " + std::to_string(steps) +
         "\nwarmup-steps = 2\nlr = " + lr + "\ncheckpoint-every = 1\n";
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

RunResult ringworld(const fs::path& log_dir, int np, const std::string& args, int timeout_s = 90) {
  static int counter = 0;
  const std::string tag = std::to_string(++counter);
  return run_ringworld(np, args, timeout_s, log_dir / ("run" + tag + ".out"), log_dir / ("run" + tag + ".err"));
}

std::string read_latest(const fs::path& run_dir) {
  std::ifstream in(run_dir / "latest");
  std::string name;
  in >> name;
  return name;
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every line of a metrics file as JSON (REQUIREs each to parse).
std::vector<Json> records(const fs::path& path) {
  std::vector<Json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    INFO("metrics line: " << line);
    Json j;
    REQUIRE_NOTHROW(j = Json::parse(line));
    out.push_back(j);
  }
  return out;
}

// Step records (those with "step" and "loss"): stage -> step -> loss (the last occurrence).
std::map<std::string, std::map<int, double>> step_losses(const fs::path& path) {
  std::map<std::string, std::map<int, double>> m;
  for (const Json& r : records(path))
    if (r.contains("step") && r.contains("loss")) m[r["stage"].get<std::string>()][r["step"].get<int>()] = r["loss"];
  return m;
}

int count_step_records(const fs::path& path) {
  int n = 0;
  for (const Json& r : records(path)) n += r.contains("step") && r.contains("loss");
  return n;
}

// What a refused run must leave: the directory exactly as before (names and bytes of the small
// files), no step trained.
struct Snapshot {
  std::vector<std::string> names;
  std::string run_ini, latest, metrics;
  explicit Snapshot(const fs::path& dir)
      : names(listing(dir)), run_ini(slurp(dir / "run.ini")), latest(slurp(dir / "latest")),
        metrics(slurp(dir / "metrics.jsonl")) {}
  bool operator==(const Snapshot& o) const {
    return names == o.names && run_ini == o.run_ini && latest == o.latest && metrics == o.metrics;
  }
};

void expect_refused(const RunResult& r, const std::vector<std::string>& needles) {
  INFO(show(r));
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 75);
  CHECK(r.exit_code != 124);
  CHECK(contains(r.stderr_text, "ringworld train: error:"));
  for (const auto& n : needles) CHECK(contains(r.stderr_text, n));
  CHECK_FALSE(contains(r.stdout_text, "step     1/"));
  CHECK_FALSE(contains(r.stderr_text, "MPI_ABORT"));
}

// ---- HDF5 (serial) ----------------------------------------------------------------------------

const bool kHdf5Quiet = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();

void set_i64_attribute(const fs::path& file, const char* object, const char* name, int64_t value) {
  H5File f(file, true);
  REQUIRE(f.ok());
  hid_t o = H5Oopen(f.id(), object, H5P_DEFAULT);
  REQUIRE(o >= 0);
  hid_t a = H5Aopen(o, name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
  H5Aclose(a);
  H5Oclose(o);
}

void set_f64_attribute(const fs::path& file, const char* name, double value) {
  H5File f(file, true);
  REQUIRE(f.ok());
  hid_t a = H5Aopen(f.id(), name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, H5T_NATIVE_DOUBLE, &value) >= 0);
  H5Aclose(a);
}

void set_u64_dataset(const fs::path& file, const char* name, uint64_t value) {
  H5File f(file, true);
  REQUIRE(f.ok());
  hid_t ds = H5Dopen2(f.id(), name, H5P_DEFAULT);
  REQUIRE(ds >= 0);
  REQUIRE(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) >= 0);
  H5Dclose(ds);
}

int64_t optim_adam_step(const fs::path& file) {
  H5File f(file);
  REQUIRE(f.ok());
  hid_t g = H5Gopen2(f.id(), "optim", H5P_DEFAULT);
  REQUIRE(g >= 0);
  int64_t v = -1;
  CHECK(read_attr_i64(g, "adam_step", &v));
  H5Gclose(g);
  return v;
}

// Byte extent [offset, offset + size) of a contiguous dataset's data.
std::pair<uint64_t, uint64_t> data_extent(hid_t file, const std::string& name) {
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  REQUIRE(ds >= 0);
  const haddr_t offset = H5Dget_offset(ds);
  const hsize_t size = H5Dget_storage_size(ds);
  H5Dclose(ds);
  REQUIRE(offset != HADDR_UNDEF);
  return {offset, size};
}

std::vector<std::string> tensor_names(hid_t file, const std::string& group) {
  std::vector<std::string> names;
  hid_t g = H5Gopen2(file, group.c_str(), H5P_DEFAULT);
  REQUIRE(g >= 0);
  H5G_info_t info;
  REQUIRE(H5Gget_info(g, &info) >= 0);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[512];
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) > 0)
      names.push_back(name);
  }
  H5Gclose(g);
  return names;
}

// A 6-step run with a checkpoint after every step, all kept, stopped after step 5 (np 1; a
// stage's end removes its step checkpoints), shared by cases.
struct SharedRun {
  ScratchDir root{"rundir_shared"};
  fs::path dir = root / "R";
  bool done = false;
  const fs::path& get() {
    if (!done) {
      std::ofstream(root / "plan.ini") << plan_ini();
      const RunResult r = ringworld(root.path, 1, "train --config " + quoted(root / "plan.ini") + " --keep-last 10 --run-dir " +
                                                      quoted(dir) + " --stop-after-steps 5");
      INFO(show(r));
      REQUIRE(r.exit_code == 75);
      done = true;
    }
    return dir;
  }
};

std::string model_with(int hidden, int intermediate) {
  return "--model tiny --hidden_size " + std::to_string(hidden) + " --intermediate_size " + std::to_string(intermediate) +
         " --num_hidden_layers 2 --num_attention_heads 4 --num_key_value_heads 2 --vocab_size 48";
}
SharedRun& shared() {
  static SharedRun run;
  return run;
}

}  // namespace

// ---- 1. resume and the plan ----------------------------------------------------------------------

// Before: `--resume DIR --config X.ini` ignored both files' difference: the run came back as
// "step 4/100" with X's defaults, rewrote run.ini and exited 0.
TEST_CASE("--resume follows DIR/run.ini; another plan is refused naming each setting", "[run_directory]") {
  ScratchDir dir("rundir_resume");
  const fs::path run = dir / "run", ini = dir / "plan.ini", other = dir / "other.ini";
  std::ofstream(ini) << plan_ini();
  std::ofstream(other) << "seq-len = 128\nsteps = 100\n";  // the issue's case: another, partial config
  RunResult r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(run) + " --stop-after-steps 3");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
  }
  REQUIRE(read_latest(run) == "ckpt-main-step00000003.h5");
  const Snapshot before(run);

  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --config " + quoted(other));
  expect_refused(r, {"cannot change on resume", "[stage.main] seq-len 48 -> 128", "hidden_size 32 -> 128",
                     "vocab_size 48 -> 256", "--run-dir NEW"});
  CHECK(Snapshot(run) == before);
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --lr 1e-3");
  expect_refused(r, {"[stage.main] lr 0.003 -> 0.001"});
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --rms_norm_eps 1e-6 --seed 7");
  expect_refused(r, {"rms_norm_eps 1e-05 -> 1e-06", "seed 1 -> 7"});
  CHECK(Snapshot(run) == before);

  // The same plan (X.ini holds it) with an allowed change: reported, recorded, and the run ends
  // at its own 6 steps.
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --config " + quoted(ini) + " --keep-last 3 --stop-after-steps 1");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
    CHECK(contains(r.stdout_text, "changed on resume: keep-last 2 -> 3"));
    CHECK(contains(r.stdout_text, "resumed from " + (run / "ckpt-main-step00000003.h5").string() + " at step 3"));
    CHECK(contains(r.stdout_text, "step     4/6"));
    const std::string run_ini = slurp(run / "run.ini");
    CHECK(contains(run_ini, "\nkeep-last = 3\n"));
    CHECK(contains(run_ini, "# changed on resume: keep-last 2 -> 3"));
  }
  // Without --config, a longer stage (steps may change while the stage goes on).
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --steps 7");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "changed on resume: [stage.main] steps 6 -> 7"));
    CHECK(contains(r.stdout_text, "step     7/7"));
    CHECK_FALSE(contains(r.stdout_text, "/100"));
    CHECK(read_latest(run) == "ckpt-main-final.h5");
    CHECK(count_step_records(run / "metrics.jsonl") == 7);
    CHECK(contains(slurp(run / "run.ini"), "# changed on resume: keep-last 2 -> 3"));  // history kept
  }
  // An ended stage keeps its length.
  const Snapshot finished(run);
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --steps 9");
  expect_refused(r, {"stage 'main' has ended", "steps cannot change"});
  CHECK(Snapshot(run) == finished);
}

// ---- 2. a directory holding another run ---------------------------------------------------------

// Before: a run over another run's directory started from random weights (or resumed it
// silently), appended to its metrics and rewrote its run.ini.
TEST_CASE("a run over a directory holding another run continues it only with the same plan", "[run_directory]") {
  ScratchDir dir("rundir_reuse");
  const fs::path run = dir / "run";
  const std::string same = "train " + kModel + " --seq-len 48 --global-batch-tokens 96 --steps 4 --warmup-steps 1 --lr 3e-3 "
                           "--checkpoint-every 1 --run-dir " + quoted(run);
  const std::string other = "train " + kModel + " --seq-len 48 --global-batch-tokens 96 --steps 4 --warmup-steps 1 --lr 1e-3 "
                            "--checkpoint-every 1 --run-dir " + quoted(run);
  RunResult r = ringworld(dir.path, 1, same + " --stop-after-steps 2");
  REQUIRE(r.exit_code == 75);

  SECTION("unfinished: another plan is refused, the same one continues") {
    const Snapshot before(run);
    r = ringworld(dir.path, 1, other);
    expect_refused(r, {"holds another run", "[stage.main] lr 0.003 -> 0.001", "--resume " + run.string(), "--run-dir NEW"});
    CHECK(Snapshot(run) == before);
    r = ringworld(dir.path, 1, same);
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "holds this run (the same plan): continuing it"));
    CHECK(contains(r.stdout_text, "resumed from " + (run / "ckpt-main-step00000002.h5").string() + " at step 2"));
    CHECK(count_step_records(run / "metrics.jsonl") == 4);  // steps 1..4 once: no restart from 0
    CHECK(slurp(run / "run.ini") == before.run_ini);        // not rewritten
  }
  SECTION("finished: another plan is refused, the same one has nothing to do") {
    r = ringworld(dir.path, 1, "train --resume " + quoted(run));
    REQUIRE(r.exit_code == 0);
    const Snapshot before(run);
    r = ringworld(dir.path, 1, other);
    expect_refused(r, {"holds another run", "--resume " + run.string()});
    CHECK(Snapshot(run) == before);
    r = ringworld(dir.path, 1, same);
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "stage main: already complete"));
    CHECK(Snapshot(run) == before);  // nothing appended, nothing rewritten
  }
  SECTION("files of a run without run.ini are refused; unrelated files are not a run") {
    const fs::path orphan = dir / "orphan";
    fs::create_directories(orphan);
    fs::copy_file(run / "metrics.jsonl", orphan / "metrics.jsonl");
    r = ringworld(dir.path, 1, same.substr(0, same.find("--run-dir")) + "--run-dir " + quoted(orphan));
    expect_refused(r, {"holds files of a run", "metrics.jsonl", "no run.ini"});
    CHECK(listing(orphan) == std::vector<std::string>{"metrics.jsonl"});
    const fs::path notes = dir / "notes";
    fs::create_directories(notes);
    std::ofstream(notes / "README.txt") << "my notes\n";
    r = ringworld(dir.path, 1, same.substr(0, same.find("--run-dir")) + "--run-dir " + quoted(notes));
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(slurp(notes / "README.txt") == "my notes\n");
  }
}

// ---- 3. the metrics file -------------------------------------------------------------------------

// Before: --metrics into a missing directory trained, wrote nothing and exited 0.
TEST_CASE("--metrics into a missing directory, or onto another run's file, is refused before training",
          "[run_directory]") {
  ScratchDir dir("rundir_metrics");
  const std::string train = "train " + kModel + " --seq-len 48 --steps 2 --warmup-steps 1";
  RunResult r = ringworld(dir.path, 1, train + " --metrics " + quoted(dir / "missing" / "metrics.jsonl"));
  expect_refused(r, {"--metrics", (dir / "missing").string(), "does not exist"});
  CHECK_FALSE(fs::exists(dir / "missing"));
  r = ringworld(dir.path, 1, train + " --metrics " + quoted(dir / "missing" / "m.jsonl") + " --run-dir " + quoted(dir / "run"));
  expect_refused(r, {"does not exist"});
  CHECK_FALSE(fs::exists(dir / "run"));  // refused before the run directory was made
  r = ringworld(dir.path, 1, train + " --metrics " + quoted(dir / "m.jsonl"));
  REQUIRE(r.exit_code == 0);
  const std::string before = slurp(dir / "m.jsonl");
  r = ringworld(dir.path, 1, train + " --metrics " + quoted(dir / "m.jsonl"));
  expect_refused(r, {"already holds another run's records"});
  CHECK(slurp(dir / "m.jsonl") == before);
}

// ---- 4. data paths and checksums -----------------------------------------------------------------

// Before: run.ini stored `data = file:data.h5` as given, so a resume from another working
// directory failed, and a changed dataset went unnoticed.
TEST_CASE("run.ini stores absolute data paths and checksums: resume from elsewhere; a changed dataset is refused",
          "[run_directory]") {
  ScratchDir dir("rundir_data");
  const fs::path work = dir / "work", elsewhere = dir / "elsewhere";
  fs::create_directories(work);
  fs::create_directories(elsewhere);
  std::vector<std::string> docs;
  for (int i = 0; i < 4; ++i) {
    const fs::path doc = work / ("doc" + std::to_string(i) + ".txt");
    std::ofstream out(doc);
    for (int k = 0; k < 30; ++k) out << "document " << i << " line " << k << " of the dataset. ";
    docs.push_back(quoted(doc));
  }
  std::string inputs;
  for (const auto& d : docs) inputs += " " + d;
  RunResult r = ringworld(dir.path, 1, "prepare --input" + inputs + " --output " + quoted(work / "data.h5"));
  REQUIRE(r.exit_code == 0);
  const std::string model_260 = kModel.substr(0, kModel.find("--vocab_size")) + "--vocab_size 260";
  const fs::path cwd = fs::current_path();
  fs::current_path(work);  // relative paths as a user types them
  r = ringworld(dir.path, 1, "train " + model_260 + " --seq-len 48 --steps 4 --warmup-steps 1 --data file:data.h5 "
                                "--run-dir run --stop-after-steps 2");
  fs::current_path(cwd);
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
  }
  const std::string run_ini = slurp(work / "run" / "run.ini");
  CHECK(contains(run_ini, "\ndata = file:" + (work / "data.h5").string() + "\n"));
  CHECK(std::regex_search(run_ini, std::regex("\ndata-checksum = crc32:0x[0-9a-f]{8} bytes:[0-9]+\n")));

  fs::current_path(elsewhere);
  r = ringworld(dir.path, 1, "train --resume ../work/run --stop-after-steps 1");
  fs::current_path(cwd);
  {
    INFO(show(r));
    CHECK(r.exit_code == 75);
    CHECK(contains(r.stdout_text, "at step 2"));
  }
  // The dataset changes under the run.
  std::ofstream(work / "doc0.txt", std::ios::app) << "one more sentence.";
  r = ringworld(dir.path, 1, "prepare --input" + inputs + " --output " + quoted(work / "data.h5"));
  REQUIRE(r.exit_code == 0);
  const Snapshot before(work / "run");
  r = ringworld(dir.path, 1, "train --resume " + quoted(work / "run"));
  expect_refused(r, {"dataset " + (work / "data.h5").string() + " has changed since the run recorded it"});
  CHECK(Snapshot(work / "run") == before);
}

// Before: the validation data's checksum was not recorded, so a changed --val-data file went
// unnoticed on resume (its losses then compare different data across the run).
TEST_CASE("run.ini records the validation data's checksum: a changed file is refused on resume, a new file is taken",
          "[run_directory]") {
  ScratchDir dir("rundir_val_data");
  const fs::path work = dir / "work";
  fs::create_directories(work);
  auto prepare = [&](const std::string& name, int docs, const std::string& extra) {
    std::string inputs;
    for (int i = 0; i < docs; ++i) {
      const fs::path doc = work / (name + std::to_string(i) + ".txt");
      std::ofstream out(doc);
      for (int k = 0; k < 30; ++k) out << name << " document " << i << " line " << k << ". " << extra;
      inputs += " " + quoted(doc);
    }
    return ringworld(dir.path, 1, "prepare --input" + inputs + " --output " + quoted(work / (name + ".h5")));
  };
  REQUIRE(prepare("data", 4, "").exit_code == 0);
  REQUIRE(prepare("val", 2, "").exit_code == 0);
  const std::string model_260 = kModel.substr(0, kModel.find("--vocab_size")) + "--vocab_size 260";
  RunResult r = ringworld(dir.path, 1, "train " + model_260 + " --seq-len 48 --steps 4 --warmup-steps 1 --data file:" +
                                           (work / "data.h5").string() + " --val-data file:" + (work / "val.h5").string() +
                                           " --eval-every 2 --val-sequences 1 --run-dir " + quoted(work / "run") +
                                           " --stop-after-steps 2");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
  }
  const std::string run_ini = slurp(work / "run" / "run.ini");
  CHECK(std::regex_search(run_ini, std::regex("\nval-data-checksum = crc32:0x[0-9a-f]{8} bytes:[0-9]+\n")));
  REQUIRE(prepare("val", 2, "changed. ").exit_code == 0);
  const Snapshot before(work / "run");
  r = ringworld(dir.path, 1, "train --resume " + quoted(work / "run"));
  expect_refused(r, {"validation dataset " + (work / "val.h5").string() + " has changed since the run recorded it"});
  CHECK(Snapshot(work / "run") == before);
  // Another validation file named on resume is checksummed afresh and recorded.
  REQUIRE(prepare("val2", 2, "").exit_code == 0);
  r = ringworld(dir.path, 1, "train --resume " + quoted(work / "run") + " --val-data file:" + (work / "val2.h5").string() +
                                 " --stop-after-steps 1");
  {
    INFO(show(r));
    CHECK(r.exit_code == 75);
  }
  CHECK(contains(slurp(work / "run" / "run.ini"), "val-data = file:" + (work / "val2.h5").string() + "\n"));
}

// ---- 5. --resume-from ----------------------------------------------------------------------------

// Before: there was no --resume-from (only DIR/latest).
TEST_CASE("--resume-from starts from a chosen checkpoint or a directory's latest", "[run_directory]") {
  const fs::path source = shared().get();
  ScratchDir dir("rundir_resume_from");
  const fs::path ini = dir / "plan.ini";
  std::ofstream(ini) << plan_ini();
  const auto reference = step_losses(source / "metrics.jsonl")["main"];
  REQUIRE(reference.size() == 5);

  // A file: a new run directory continues from step 3 exactly as the source did.
  RunResult r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(dir / "from_file") +
                                           " --resume-from " + quoted(source / "ckpt-main-step00000003.h5"));
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "resumed from " + (source / "ckpt-main-step00000003.h5").string() + " at step 3"));
    CHECK(contains(r.stdout_text, "the checkpoint belongs to another run"));
    const auto losses = step_losses(dir / "from_file" / "metrics.jsonl")["main"];
    CHECK(losses.size() == 3);
    for (int step : {4, 5}) {
      INFO("step " << step);
      REQUIRE(losses.count(step));
      CHECK(losses.at(step) == reference.at(step));  // same grid, same state: bit for bit
    }
  }
  // A directory: its latest. A run stopped at step 4 is the source here.
  const fs::path partial = dir / "partial";
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(partial) + " --stop-after-steps 4");
  REQUIRE(r.exit_code == 75);
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(dir / "from_dir") +
                                 " --resume-from " + quoted(partial));
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "resumed from " + (partial / "ckpt-main-step00000004.h5").string() + " at step 4"));
  }
  // --init-params with a directory takes its latest too (parameters only: a new stage start).
  r = ringworld(dir.path, 1, "train " + kModel + " --seq-len 48 --steps 1 --warmup-steps 1 --init-params " + quoted(partial));
  {
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "initialised from " + (partial / "ckpt-main-step00000004.h5").string()));
  }
  // Missing file; rewinding an ended stage in its own directory.
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(dir / "x") + " --resume-from " +
                                 quoted(dir / "nope.h5"));
  expect_refused(r, {"nope.h5"});
  const fs::path finished = dir / "from_file";
  const Snapshot before(finished);
  r = ringworld(dir.path, 1, "train --resume " + quoted(finished) + " --resume-from " +
                                 quoted(source / "ckpt-main-step00000004.h5"));
  expect_refused(r, {"has ended", "mix two histories"});
  CHECK(Snapshot(finished) == before);
  // A checkpoint of another shape does not fit the run: refused naming the settings.
  r = ringworld(dir.path, 1, "train " + model_with(64, 128) + " --seq-len 48 "
                                 "--global-batch-tokens 96 --steps 6 --run-dir " + quoted(dir / "y") + " --resume-from " +
                                 quoted(source / "ckpt-main-step00000003.h5"));
  expect_refused(r, {"does not fit", "hidden_size: checkpoint 32, run 64", "intermediate_size: checkpoint 64, run 128"});
}

// ---- 6. pruning --------------------------------------------------------------------------------

// Before: pruning kept the K names that sort last, whatever wrote them: here it removed the new
// checkpoint that `latest` names because another run's file (step 9) sorts after it.
TEST_CASE("pruning never removes the checkpoint latest names, nor another run's files", "[run_directory]") {
  const fs::path source = shared().get();
  ScratchDir dir("rundir_prune");
  const fs::path run = dir / "run";
  const std::string args = "train " + kModel + " --seq-len 48 --global-batch-tokens 96 --steps 12 --warmup-steps 1 "
                           "--checkpoint-every 1 --keep-last 1 --run-dir " + quoted(run);
  RunResult r = ringworld(dir.path, 1, args + " --stop-after-steps 2");
  REQUIRE(r.exit_code == 75);
  CHECK(listing(run) == std::vector<std::string>{"ckpt-main-step00000002.h5", "latest", "metrics.jsonl", "run.ini"});
  // Another run's checkpoints under names of this stage: one sorting after, one before.
  fs::copy_file(source / "ckpt-main-step00000005.h5", run / "ckpt-main-step00000009.h5");
  fs::copy_file(source / "ckpt-main-step00000001.h5", run / "ckpt-main-step00000001.h5");
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --stop-after-steps 2");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
  }
  CHECK(read_latest(run) == "ckpt-main-step00000004.h5");
  CHECK(fs::exists(run / "ckpt-main-step00000004.h5"));   // latest: kept
  CHECK_FALSE(fs::exists(run / "ckpt-main-step00000002.h5"));  // this run's older one: pruned
  CHECK_FALSE(fs::exists(run / "ckpt-main-step00000003.h5"));
  CHECK(fs::exists(run / "ckpt-main-step00000009.h5"));  // another run's: never removed
  CHECK(fs::exists(run / "ckpt-main-step00000001.h5"));

  // --keep-last 0 is refused (it once silently meant 1).
  r = ringworld(dir.path, 1, "train " + kModel + " --seq-len 48 --steps 2 --keep-last 0 --run-dir " + quoted(dir / "k0"));
  expect_refused(r, {"--keep-last 0", "--checkpoint-every 0"});
  CHECK_FALSE(fs::exists(dir / "k0"));
}

// ---- 7. the optimizer step count across a carried stage ---------------------------------------

namespace {

// AdamW's update of one element as trainer/optimizer apply it, from the moments after the step
// (m1, v1: they already include this step's gradient), at step t.
double adamw_after(double w, double m1, double v1, double lr, int64_t t, bool decay) {
  const double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  const double m_hat = m1 / (1 - std::pow(b1, double(t))), v_hat = v1 / (1 - std::pow(b2, double(t)));
  return w - lr * (m_hat / (std::sqrt(v_hat) + eps) + (decay ? wd * w : 0.0));
}

}  // namespace

// Before: the first step of a stage with --carry-optimizer used t = 1 (bias corrections 0.1 and
// 0.05: an update ~2.2x the steady-state one) and no step count was stored.
TEST_CASE("--carry-optimizer continues AdamW's step count into the next stage and across a resume",
          "[run_directory]") {
  ScratchDir dir("rundir_carry");
  const fs::path ini = dir / "stages.ini", run = dir / "run", split = dir / "split";
  std::ofstream(ini) << kModelIni
                     << "carry-optimizer = 1\ncheckpoint-every = 1\nkeep-last = 10\n"
                        "[stage.a]\nseq-len = 48\nrope_theta = 10000\nglobal-batch-tokens = 96\nsteps = 4\n"
                        "warmup-steps = 1\nlr = 3e-3\ndata = synthetic\n"
                        "[stage.b]\nseq-len = 48\nrope_theta = 40000\nglobal-batch-tokens = 96\nsteps = 3\n"
                        "warmup-steps = 1\nlr = 2e-3\nschedule = constant\ndata = synthetic\n";
  // Stopped right after b's first step (a stage's end removes its step checkpoints).
  RunResult r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(split) + " --stop-after-steps 5");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
    CHECK(contains(r.stdout_text, "with optimizer state: AdamW continues at step 5"));
  }
  REQUIRE(read_latest(split) == "ckpt-b-step00000001.h5");
  CHECK(optim_adam_step(split / "ckpt-a-final.h5") == 4);
  CHECK(optim_adam_step(split / "ckpt-b-step00000001.h5") == 5);

  // b's first update, element by element, against AdamW at t = 5 (and not t = 1).
  // Tolerance: the prediction uses the stored fp32 moments m1, v1 (each rounded once: relative
  // 2^-24) where the step used their fp64 values, so the update term u = m^/(sqrt(v^) + eps)
  // is off by at most ~1.5 * 2^-24 relative; the stored w' is rounded to fp32 (2^-24 relative).
  // Bound: 2 eps32 |w'| + 4 eps32 lr (|u| + wd |w|). The t = 1 update differs from t = 5's by
  // lr |u| x O(1) (bias-correction ratio 2.24 vs 1.16): orders of magnitude above the bound.
  H5File a(split / "ckpt-a-final.h5"), b(split / "ckpt-b-step00000001.h5");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const double lr = 2e-3;
  for (const std::string name : {"model.layers.0.self_attn.q_proj.weight", "model.norm.weight"}) {
    const bool decay = name.find("norm") == std::string::npos;
    const Tensor w0 = read_tensor(a.id(), "params/" + name), w1 = read_tensor(b.id(), "params/" + name);
    const Tensor m1 = read_tensor(b.id(), "optim/m/" + name), v1 = read_tensor(b.id(), "optim/v/" + name);
    REQUIRE(w0.values.size() == w1.values.size());
    int far_from_t1 = 0, worst_index = -1;
    double worst = 0;
    for (std::size_t i = 0; i < w0.values.size(); ++i) {
      const double w = w0.values[i], got = w1.values[i];
      const double at5 = adamw_after(w, m1.values[i], v1.values[i], lr, 5, decay);
      const double at1 = adamw_after(w, m1.values[i], v1.values[i], lr, 1, decay);
      const double u = std::fabs((w - at5) / lr);
      const double bound = 2 * FLT_EPSILON * std::fabs(got) + 4 * FLT_EPSILON * lr * (u + 0.1 * std::fabs(w)) + 1e-30;
      const double err = std::fabs(got - at5) / bound;
      if (err > worst) worst = err, worst_index = static_cast<int>(i);
      far_from_t1 += std::fabs(got - at1) > 100 * bound;
    }
    INFO(name << ": worst |w' - AdamW(t=5)| / bound = " << worst << " at element " << worst_index);
    CHECK(worst <= 1.0);
    CHECK(far_from_t1 >= static_cast<int>(0.5 * w0.values.size()));  // the t = 1 update is clearly another
  }

  // Resumed inside b, the step count is restored: bit-identical to an uninterrupted run.
  r = ringworld(dir.path, 1, "train --resume " + quoted(split));
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
  }
  CHECK(optim_adam_step(split / "ckpt-b-final.h5") == 7);
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(run));
  REQUIRE(r.exit_code == 0);
  H5File f1(run / "ckpt-b-final.h5"), f2(split / "ckpt-b-final.h5");
  REQUIRE(f1.ok());
  REQUIRE(f2.ok());
  for (const std::string group : {"params", "optim/m", "optim/v"})
    for (const std::string& n : tensor_names(f1.id(), group)) {
      INFO(group << "/" << n);
      CHECK(same_bits(read_tensor(f1.id(), group + "/" + n), read_tensor(f2.id(), group + "/" + n)));
    }
}

// ---- 8. protected state and the checkpoint's config ------------------------------------------------

// Before: checksums covered the tensors only; a changed step, config value, cursor or
// optimizer step count was loaded silently.
TEST_CASE("a changed attribute or data cursor is detected on load, naming it", "[run_directory]") {
  const fs::path source = shared().get();
  ScratchDir dir("rundir_tamper");
  struct Case {
    std::string name, needle;
    void (*change)(const fs::path&);
  };
  const std::vector<Case> cases = {
      {"step", "attribute 'step' is 7 but its state record says 3",
       [](const fs::path& f) { set_i64_attribute(f, "/", "step", 7); }},
      {"rms_norm_eps", "attribute 'rms_norm_eps' is 2e-05 but its state record says 1e-05",
       [](const fs::path& f) { set_f64_attribute(f, "rms_norm_eps", 2e-5); }},
      {"data/cursor", "'data/cursor' is 99 but its state record says 6",
       [](const fs::path& f) { set_u64_dataset(f, "/data/cursor", 99); }},
      {"adam_step", "'optim/adam_step' is 1 but its state record says 3",
       [](const fs::path& f) { set_i64_attribute(f, "/optim", "adam_step", 1); }},
  };
  for (const Case& c : cases) {
    INFO("changed: " << c.name);
    const fs::path run = dir / c.name.substr(0, c.name.find('/'));
    fs::create_directories(run);
    fs::copy_file(source / "ckpt-main-step00000003.h5", run / "ckpt-main-step00000003.h5");
    c.change(run / "ckpt-main-step00000003.h5");
    if (c.name == "step") {  // `ckpt info` reads the same way (once is enough: it is one function)
      const RunResult info = ringworld(dir.path, 1, "ckpt info " + quoted(run / "ckpt-main-step00000003.h5"));
      INFO(show(info));
      CHECK(info.exit_code != 0);
      CHECK(contains(info.stdout_text + info.stderr_text, c.needle));
    }
    const RunResult r2 = ringworld(dir.path, 1, "train --config " + quoted(shared().root / "plan.ini") + " --run-dir " +
                                                    quoted(dir / ("fresh_" + c.name.substr(0, c.name.find('/')))) +
                                                    " --resume-from " + quoted(run / "ckpt-main-step00000003.h5"));
    expect_refused(r2, {c.needle});
  }
}

// Before: --resume read the checkpoint's config and never compared it with the run's.
TEST_CASE("a checkpoint whose config differs from the run's plan is refused naming each field", "[run_directory]") {
  ScratchDir dir("rundir_ckpt_config");
  const fs::path run = dir / "run";
  RunResult r = ringworld(dir.path, 2, "train " + kModel + " --seq-len 48 --global-batch-tokens 96 --steps 4 --warmup-steps 1 "
                                           "--run-dir " + quoted(run) + " --stop-after-steps 2");
  REQUIRE(r.exit_code == 75);
  // run.ini edited by hand (so the plan diff cannot see it): the checkpoint comparison must.
  std::string ini = slurp(run / "run.ini");
  const std::string from = "\nrms_norm_eps = ", seq = "\nseq-len = 48\n";
  REQUIRE(contains(ini, from));
  const std::size_t at = ini.find(from), end = ini.find('\n', at + 1);
  ini = ini.substr(0, at) + from + "1e-06" + ini.substr(end);
  ini.replace(ini.find(seq), seq.size(), "\nseq-len = 96\n");
  ini.replace(ini.find("\nglobal-batch-tokens = 96\n"), 26, "\nglobal-batch-tokens = 192\n");
  std::ofstream(run / "run.ini") << ini;
  const Snapshot before(run);
  r = ringworld(dir.path, 2, "train --resume " + quoted(run));
  expect_refused(r, {"rms_norm_eps: checkpoint 1e-05, run 1e-06", "seq-len: checkpoint 48, run 96",
                     "global-batch-tokens: checkpoint 96, run 192"});
  CHECK(Snapshot(run) == before);
}

// A layout or grid change on resume is allowed (exact) and reported.
TEST_CASE("a resume on another grid or layout is reported", "[run_directory]") {
  ScratchDir dir("rundir_reshard_note");
  const fs::path run = dir / "run";
  RunResult r = ringworld(dir.path, 2, "train " + kModel + " --seq-len 48 --global-batch-tokens 96 --steps 3 --warmup-steps 1 "
                                           "--run-dir " + quoted(run) + " --stop-after-steps 1");
  REQUIRE(r.exit_code == 75);
  r = ringworld(dir.path, 1, "train --resume " + quoted(run) + " --layout striped");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.stdout_text, "changed on resume: layout zigzag -> striped"));
  CHECK(contains(r.stdout_text, "layout zigzag at save, striped now"));
  CHECK(contains(r.stdout_text, "saved by 2 rank(s) as dp 1 x sp 2, resharded to 1 as dp 1 x sp 1"));
}

// ---- 9. latest: atomic and durable ----------------------------------------------------------------

// Before: `latest` was renamed into place without an fsync of the directory, so a power loss
// could lose the rename.
TEST_CASE("latest is renamed into place and the directory fsync'd after the rename", "[run_directory]") {
  if (std::system("strace -V > /dev/null 2>&1") != 0) {
    WARN("strace is not installed (Makefile DEB_PACKAGES has it): not checked");
    return;
  }
  ScratchDir dir("rundir_fsync");
  const fs::path run = dir / "run", trace = dir / "trace.txt";
  const std::string cmd = "timeout 90 strace -f -qq -o " + quoted(trace) +
                          " -e trace=openat,rename,renameat,renameat2,fsync " +
                          ringworld_command(1, "train " + kModel + " --seq-len 48 --steps 2 --warmup-steps 1 "
                                                   "--checkpoint-every 1 --run-dir " + quoted(run)) +
                          " > " + quoted(dir / "out.txt") + " 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  // Per process: each rename of .../latest.tmp to .../latest is followed, before any other
  // traced call of that process, by an open of the run directory and an fsync of that descriptor.
  std::ifstream in(trace);
  struct Expect {
    int state = 0;  // 0 idle, 1 renamed latest (expect the open), 2 opened the directory (expect fsync)
    std::string fd;
  };
  std::map<std::string, Expect> expect;  // by pid
  int renames = 0, synced = 0;
  const std::regex open_re(R"re(^(\d+)\s+openat\(AT_FDCWD, "([^"]+)", [^)]*\)\s+=\s+(-?\d+))re");
  const std::regex rename_re(R"re(^(\d+)\s+rename(?:at2?)?\(.*"([^"]*latest)\.tmp".*"([^"]*latest)".*=\s+0)re");
  const std::regex fsync_re(R"re(^(\d+)\s+fsync\((\d+)\)\s+=\s+0)re");
  const std::regex any_re(R"re(^(\d+)\s+\w+\()re");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, rename_re)) {
      ++renames;
      expect[m[1]] = {1, ""};
    } else if (std::regex_search(line, m, open_re)) {
      Expect& e = expect[m[1]];
      e = e.state == 1 && m[2].str() == run.string() ? Expect{2, m[3].str()} : Expect{};
    } else if (std::regex_search(line, m, fsync_re)) {
      Expect& e = expect[m[1]];
      if (e.state == 2 && e.fd == m[2].str()) ++synced;
      e = Expect{};
    } else if (std::regex_search(line, m, any_re)) {
      expect[m[1]] = Expect{};
    }
  }
  INFO("trace: " << slurp(trace).substr(0, 4000));
  CHECK(renames == 2);  // step 1 and the final
  CHECK(synced == renames);
}

// ---- 10. prefetch ------------------------------------------------------------------------------

// Before: every rank asked the kernel to read ahead the whole checkpoint file.
TEST_CASE("each rank prefetches only the byte ranges of its own slabs", "[run_directory]") {
  const fs::path source = shared().get();
  ScratchDir dir("rundir_prefetch");
  const fs::path run = dir / "run";
  fs::copy(source, run, fs::copy_options::recursive);
  std::ofstream(run / "latest") << "ckpt-main-step00000005.h5\n";
  setenv("RINGWORLD_PREFETCH_REPORT", "1", 1);
  const RunResult r = ringworld(dir.path, 2, "train --resume " + quoted(run) + " --keep-last 10");
  unsetenv("RINGWORLD_PREFETCH_REPORT");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  // rank -> ranges
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> ranges;
  const std::regex line_re(R"re(ringworld: rank (\d+) prefetch \d+ range\(s\):((?: \d+\+\d+)*))re");
  std::istringstream err(r.stderr_text);
  for (std::string line; std::getline(err, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, line_re)) continue;
    std::istringstream parts(m[2].str());
    for (std::string p; parts >> p;)
      ranges[std::stoi(m[1])].emplace_back(std::stoull(p.substr(0, p.find('+'))), std::stoull(p.substr(p.find('+') + 1)));
  }
  REQUIRE(ranges.size() == 2);
  // The tensors' extents (params and both moments).
  H5File f(source / "ckpt-main-step00000005.h5");  // the same bytes (the run's copy was pruned at its end)
  REQUIRE(f.ok());
  std::vector<std::pair<uint64_t, uint64_t>> tensors;
  uint64_t tensor_bytes = 0;
  for (const std::string group : {"params", "optim/m", "optim/v"})
    for (const std::string& n : tensor_names(f.id(), group)) {
      tensors.push_back(data_extent(f.id(), group + "/" + n));
      tensor_bytes += tensors.back().second;
    }
  uint64_t covered = 0;
  std::vector<std::pair<uint64_t, uint64_t>> all;
  for (const auto& [rank, list] : ranges) {
    uint64_t bytes = 0;
    for (const auto& [offset, length] : list) {
      bytes += length;
      all.emplace_back(offset, length);
      // Inside the tensors' data: the union of extents covers it.
      uint64_t in = 0;
      for (const auto& [t_off, t_len] : tensors) {
        const uint64_t lo = std::max(offset, t_off), hi = std::min(offset + length, t_off + t_len);
        if (hi > lo) in += hi - lo;
      }
      CHECK(in == length);
    }
    INFO("rank " << rank << " prefetches " << bytes << " of " << tensor_bytes << " tensor bytes");
    CHECK(bytes < tensor_bytes * 3 / 4);  // a share (half, with rounding at tensor edges), not all
    covered += bytes;
  }
  // Together the ranks cover every tensor byte exactly once (no overlap, nothing missing).
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i - 1].first + all[i - 1].second <= all[i].first);
  CHECK(covered == tensor_bytes);
}

// ---- 11. provenance ---------------------------------------------------------------------------

// Before: `--version` printed "ringworld 0.1.0" only; run.ini, the metrics and checkpoints
// recorded no version, commit or command line.
TEST_CASE("--version, run.ini, the metrics header and checkpoints record version, commit, command and grid",
          "[run_directory]") {
  ScratchDir dir("rundir_provenance");
  RunResult v = ringworld(dir.path, 1, "--version");
  INFO(show(v));
  REQUIRE(v.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(v.stdout_text, m, std::regex(R"re(git commit: ([0-9a-f]{40}(-dirty)?|unknown))re")));
  const std::string commit = m[1];
  CHECK(std::regex_search(v.stdout_text, std::regex(R"re(^ringworld \d+\.\d+\.\d+\n)re")));
  CHECK(std::regex_search(v.stdout_text, std::regex(R"re(build: (Release|Debug|RelWithDebInfo|MinSizeRel).*, MPI .*, parallel HDF5)re")));

  const fs::path run = dir / "run";
  const RunResult r = ringworld(dir.path, 2, "train " + kModel + " --seq-len 48 --steps 2 --warmup-steps 1 --run-dir " + quoted(run));
  REQUIRE(r.exit_code == 0);
  const std::string ini = slurp(run / "run.ini");
  CHECK(contains(ini, "git commit " + commit));
  CHECK(contains(ini, "# command: "));
  CHECK(contains(ini, "train --model tiny --hidden_size 32"));
  CHECK(contains(ini, "# world: 2 rank(s) as dp 1 x sp 2"));
  CHECK(std::regex_search(ini, std::regex("\nrun-id = [0-9a-f]{32}\n")));
  const auto recs = records(run / "metrics.jsonl");
  REQUIRE_FALSE(recs.empty());
  const Json& header = recs.front();
  CHECK(header["type"] == "header");
  CHECK(header["git_commit"] == commit);
  CHECK(contains(header["command_line"].get<std::string>(), "--run-dir"));
  CHECK(header["world_size"] == 2);
  CHECK(header["dp"] == 1);
  CHECK(header["sp"] == 2);
  H5File f(run / "ckpt-main-final.h5");
  REQUIRE(f.ok());
  CHECK(get_str(f.id(), "git_commit") == commit);
  CHECK(contains(get_str(f.id(), "command_line"), "--run-dir"));
  CHECK_FALSE(get_str(f.id(), "ringworld_version").empty());
  CHECK(get_i64(f.id(), "world_size") == 2);
  CHECK(get_str(f.id(), "run_id") == header["run_id"].get<std::string>());
}

// ---- 12. observability ------------------------------------------------------------------------

// Before: step lines had no time, ETA or tokens; no stage summary; no timestamps; no validation.
TEST_CASE("step lines, stage summaries, timestamps and validation by position", "[run_directory]") {
  ScratchDir dir("rundir_observe");
  const fs::path ini = dir / "stages.ini";
  std::ofstream(ini) << kModelIni
                     << "[stage.a]\nseq-len = 48\nrope_theta = 10000\nglobal-batch-tokens = 96\nsteps = 4\n"
                        "warmup-steps = 1\nlr = 3e-3\ndata = synthetic\n"
                        "[stage.b]\nseq-len = 96\nrope_theta = 40000\nglobal-batch-tokens = 96\nsteps = 2\n"
                        "warmup-steps = 1\nlr = 2e-3\nschedule = constant\ndata = synthetic\n";
  const fs::path with_val = dir / "with_val", without = dir / "without";
  RunResult r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(with_val) +
                                           " --val-data synthetic --eval-every 2 --val-sequences 2");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  const std::string& out = r.stdout_text;
  CHECK(std::regex_search(out, std::regex(R"re(step     1/4 \|.*\| [0-9.e+-]+ s/step \| 96 tokens \| elapsed [0-9.]+ s \| ETA stage [0-9.]+ s, run [0-9.]+ s)re")));
  CHECK(std::regex_search(out, std::regex(R"re(step     2/2 \|.*\| 192 tokens \| elapsed .* \| ETA stage 0.00 s\n)re")));  // b: no later stage
  CHECK(std::regex_search(out, std::regex(R"re(== stage a done: steps 1-4 \(4 this run\) in .* s/step\), 384 tokens; loss [0-9.]+ -> [0-9.]+; val loss [0-9.]+ \(ppl [0-9.]+\))re")));
  CHECK(contains(out, "== stage b done: steps 1-2"));
  CHECK(contains(out, "lr 0.002 constant"));  // the schedule as it runs: no warm-up for a constant one
  CHECK(std::regex_search(out, std::regex(R"re(step 2: val loss [0-9.]+ \(ppl [0-9.]+\) over 2 sequence\(s\) \| loss by position: 0-8 )re")));

  const std::regex iso(R"re(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)re");
  std::vector<Json> validations;
  for (const Json& rec : records(with_val / "metrics.jsonl")) {
    REQUIRE(rec.contains("time"));
    CHECK(std::regex_match(rec["time"].get<std::string>(), iso));
    if (rec.value("type", "") == "validation") validations.push_back(rec);
  }
  // a: after steps 2 and 4 (its end); b: after step 2 (its end).
  REQUIRE(validations.size() == 3);
  CHECK(validations[0]["stage_name"] == "a");
  CHECK(validations[0]["after_step"] == 2);
  CHECK(validations[1]["after_step"] == 4);
  CHECK(validations[2]["stage_name"] == "b");
  for (const Json& v : validations) {
    // The buckets partition the held-out tokens: their weighted mean is the total loss (only
    // summation order differs: relative 1e-12 is ~1e4 ulps of a sum of ~200 terms).
    double weight = 0, weighted = 0;
    int64_t previous_to = 0;
    for (const Json& b : v["by_position"]) {
      weight += b["tokens"].get<double>();
      weighted += b["tokens"].get<double>() * b["loss"].get<double>();
      CHECK(b["from"].get<int64_t>() >= previous_to);
      previous_to = b["to"];
      CHECK(std::fabs(b["ppl"].get<double>() - std::exp(b["loss"].get<double>())) <= 1e-12 * b["ppl"].get<double>());
    }
    CHECK(weight == v["val_tokens"].get<double>());
    CHECK(std::fabs(weighted / weight - v["val_loss"].get<double>()) <= 1e-12 * v["val_loss"].get<double>());
    CHECK(v["by_position"].size() >= 2);
  }
  // Validation runs forward only on its own data: training is bit-identical without it.
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(without));
  REQUIRE(r.exit_code == 0);
  CHECK(step_losses(with_val / "metrics.jsonl") == step_losses(without / "metrics.jsonl"));
  // The same held-out sequences every time: a resumed run reports the same validation.
  const fs::path split = dir / "split";
  r = ringworld(dir.path, 1, "train --config " + quoted(ini) + " --run-dir " + quoted(split) +
                                 " --val-data synthetic --eval-every 2 --val-sequences 2 --stop-after-steps 3");
  REQUIRE(r.exit_code == 75);
  r = ringworld(dir.path, 1, "train --resume " + quoted(split));
  REQUIRE(r.exit_code == 0);
  std::map<std::string, double> want, got;
  for (const Json& v : validations)
    want[v["stage_name"].get<std::string>() + std::to_string(v["after_step"].get<int>())] = v["val_loss"];
  for (const Json& rec : records(split / "metrics.jsonl"))
    if (rec.value("type", "") == "validation")
      got[rec["stage_name"].get<std::string>() + std::to_string(rec["after_step"].get<int>())] = rec["val_loss"];
  CHECK(got == want);
}
