// test_checkpoints.cpp: end-to-end tests of training checkpoints: the file format and its
// resharding, resume (same grid and resharded), crash safety, corrupted files, and stages.
//
// A plain (non-MPI) Catch2 program in the style of test_attn_tool.cpp (shared helpers:
// integration_support.h): it runs `timeout N mpirun -np N ringworld train|ckpt ...` and
// inspects and manipulates the files with the serial HDF5 C API, in scratch directories under
// the current directory (ctest: the build's tests dir). Every run uses a tiny LLaMA
// (hidden 32, intermediate 64, 2 layers, 4 heads on 2 kv heads, vocab 48) and seq 96, which
// zigzag splits over 1..4 ranks, so the whole program takes about a minute on 2 cores.
//
// What is tested:
//   1. The file and its resharding: a checkpoint written by 2 ranks carries the documented
//      layout (/params, /optim/m, /optim/v with checksums, /rng/seed, /data/cursor, root
//      attributes) and `ckpt info` finds it valid (every tensor present, shaped, checksummed)
//      on 1, 2, 3 and 4 ranks; `ckpt convert` on 3 ranks gives a parameter file whose /params
//      are bitwise those of the checkpoint, and converting that back on 4 ranks gives a valid
//      step-0 checkpoint with the same bits and zero moments.
//   2. Resume on the same grid (np 2) is bit-identical: a run stopped by --stop-after-steps 3
//      (exit 75, checkpoint at step 3) and resumed gives the uninterrupted run's losses for
//      steps 4..10 as the same %.17g strings, and the same final /params and /optim bits.
//   3. Resume after resharding: from the np-2 checkpoint at step 3 the run continues on 4 ranks
//      (dp 2 x sp 2), then 1, then 3 (striped layout), each leg stopped by --stop-after-steps;
//      the losses match the uninterrupted np-2 run within a relative 1e-6 (basis and measured
//      differences at kReshardRelTol), and each leg's checkpoint records its grid.
//   4. Crash safety: a run with --checkpoint-every 1 is killed with SIGKILL (every process of
//      its session: mpirun and the ranks) four times (once fresh, then each resume) at three
//      kinds of moment: as soon as a checkpoint's *.h5.tmp appears (inotify), 2 ms after one
//      appears, and right after `latest` was replaced. After
//      each kill `latest` names an existing checkpoint that `ckpt info` finds valid, every
//      *.h5 in the run directory is valid (a partial file exists only as *.h5.tmp), and
//      --resume continues; the last resume runs to the end (exit 0), leaving the final
//      checkpoint, no step checkpoints and no temporary file. Steps computed twice (before a
//      kill and again after the resume) have bit-identical losses.
//   5. Corrupted files are rejected, never loaded: flipped bytes in the data of a /params and
//      of an /optim/v tensor (`ckpt info` INVALID naming the tensor; `train --resume` fails
//      naming the tensor and its checksum), a file truncated to half its size, a deleted
//      dataset (/optim/v/lm_head.weight, named), a wrong `format` attribute, a wrong
//      `format_version`, and a `latest` naming a missing file. A rejected resume exits
//      non-zero without training a step, writing a checkpoint or touching `latest`.
//   6. Stages: a 2-stage INI (a: seq 48, rope_theta 1e4; b: seq 96, rope_theta 4e4) run with
//      --checkpoint-every 1 --keep-last 2 and stopped twice (once inside a, once inside b):
//      at most 2 step checkpoints of a stage remain after each stop, none after its final;
//      both finals carry their stage, seq_len, rope_theta; b's metrics start at step 1; the
//      same command again skips both stages (exit 0, nothing trained); `--stage b` on a fresh
//      directory fails naming a's missing final; `--stage a` then `--stage b` give the same
//      losses and final parameters bit for bit; a stage missing any required key, or with
//      an unknown key, is rejected naming it.
//   Two cases pin bugs found while writing these tests (now fixed): a stop that falls on the
//   last step of a non-final stage stops after that stage's final checkpoint, not one step into
//   the next; `ckpt info` calls a checkpoint of another format version INVALID.
#include <fcntl.h>
#include <hdf5.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "device/backend.h"
#include "tests/integration/integration_support.h"

namespace fs = std::filesystem;
using namespace rw::test;

namespace {

// ---- the runs ----------------------------------------------------------------------------------

const std::string kModel =
    "--model tiny --hidden_size 32 --intermediate_size 64 --num_hidden_layers 2 --num_attention_heads 4 "
    "--num_key_value_heads 2 --vocab_size 48";
const std::string kModelIni =
    "model = tiny\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\nnum_attention_heads = 4\n"
    "num_key_value_heads = 2\nvocab_size = 48\n";

// The reference run: np 2 (dp 1 x sp 2), 10 steps of 2 sequences of 96 tokens (global batch
// 192 tokens: divisible by seq x dp for dp 1 and 2), a checkpoint every 2 steps.
constexpr int kSteps = 10;
std::string main_run_args(const fs::path& run_dir, const std::string& extra = "") {
  return "train " + kModel + " --seq-len 96 --global-batch-tokens 192 --steps " + std::to_string(kSteps) +
         " --warmup-steps 2 --lr 3e-3 --checkpoint-every 2 --run-dir '" + run_dir.string() + "'" + extra;
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Runs `timeout T mpirun -np N ringworld ARGS`; stdout and stderr go to numbered files in
// log_dir (kept for debugging until the scratch directory goes).
RunResult ringworld(const fs::path& log_dir, int np, const std::string& args, int timeout_s = 90) {
  static int counter = 0;
  const std::string tag = std::to_string(++counter);
  return run_ringworld(np, args, timeout_s, log_dir / ("run" + tag + ".out"), log_dir / ("run" + tag + ".err"));
}

// `ckpt info FILE` on np ranks: valid (exit 0, a "valid:" line saying every tensor was
// checksummed, no "INVALID").
void expect_valid_checkpoint(const fs::path& log_dir, int np, const fs::path& file) {
  const RunResult r = ringworld(log_dir, np, "ckpt info " + quoted(file));
  INFO(show(r));
  CHECK(r.exit_code == 0);
  CHECK(contains(r.stdout_text, "valid: every tensor present, shaped and checksummed"));
  CHECK_FALSE(contains(r.stdout_text, "INVALID"));
}

// ---- metrics.jsonl ----------------------------------------------------------------------------

struct Metric {
  std::string stage;
  int step = 0;
  std::string loss;  // as printed (%.17g): compared as text for bit-identity
};

// The complete lines of a metrics file (a line cut by a kill is skipped).
std::vector<Metric> read_metrics(const fs::path& path) {
  std::vector<Metric> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() != '{' || line.back() != '}' || std::count(line.begin(), line.end(), '{') != 1)
      continue;
    const std::size_t s = line.find("\"stage\":\""), st = line.find("\"step\":"), l = line.find("\"loss\":");
    if (s == std::string::npos || st == std::string::npos || l == std::string::npos) continue;
    Metric m;
    const std::size_t s_begin = s + 9, s_end = line.find('"', s_begin);
    m.stage = line.substr(s_begin, s_end - s_begin);
    m.step = std::atoi(line.c_str() + st + 7);
    const std::size_t l_begin = l + 7, l_end = line.find_first_of(",}", l_begin);
    m.loss = line.substr(l_begin, l_end - l_begin);
    out.push_back(m);
  }
  return out;
}

// stage -> step -> loss text of the last occurrence of that step.
std::map<std::string, std::map<int, std::string>> losses_by_step(const std::vector<Metric>& metrics) {
  std::map<std::string, std::map<int, std::string>> m;
  for (const Metric& x : metrics) m[x.stage][x.step] = x.loss;
  return m;
}

// ---- HDF5 (serial API, default sec2 driver: no MPI needed in this process) -----------------

// Damaged files are opened here on purpose: HDF5 prints no error stacks (from the start).
const bool kHdf5Quiet = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();

// Every dataset of the file, as paths without the leading '/' ("params/lm_head.weight").
std::set<std::string> dataset_names(hid_t file) {
  std::set<std::string> names;
  auto visit = [](hid_t group, const char* name, const H5L_info_t*, void* data) -> herr_t {
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj >= 0) {
      if (H5Iget_type(obj) == H5I_DATASET) static_cast<std::set<std::string>*>(data)->insert(name);
      H5Oclose(obj);
    }
    return 0;
  };
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &names);
  return names;
}

std::set<std::string> under(const std::set<std::string>& names, const std::string& prefix) {
  std::set<std::string> out;
  for (const auto& n : names)
    if (n.rfind(prefix, 0) == 0) out.insert(n.substr(prefix.size()));
  return out;
}

// Every tensor of `group` ("params", "optim/m", ...) in files a and b has the same names,
// shapes and bits.
void expect_same_group(const fs::path& a, const std::string& group_a, const fs::path& b, const std::string& group_b) {
  INFO(a << " /" << group_a << " vs " << b << " /" << group_b);
  H5File fa(a), fb(b);
  REQUIRE(fa.ok());
  REQUIRE(fb.ok());
  const auto names_a = under(dataset_names(fa.id()), group_a + "/"), names_b = under(dataset_names(fb.id()), group_b + "/");
  CHECK(names_a == names_b);
  CHECK(names_a.size() == 3 + 2 * 9);  // embed, final norm, lm_head + 9 tensors in each of 2 layers
  for (const auto& n : names_a) {
    if (!names_b.count(n)) continue;
    INFO("tensor " << n);
    const Tensor ta = read_tensor(fa.id(), group_a + "/" + n), tb = read_tensor(fb.id(), group_b + "/" + n);
    CHECK(ta.is_f32);
    CHECK(tb.is_f32);
    CHECK(same_bits(ta, tb));
  }
}

// Byte offset of a contiguous dataset's data in the file, and its size.
std::pair<uint64_t, uint64_t> data_extent(const fs::path& file, const std::string& name) {
  H5File f(file);
  REQUIRE(f.ok());
  hid_t ds = H5Dopen2(f.id(), name.c_str(), H5P_DEFAULT);
  REQUIRE(ds >= 0);
  const haddr_t offset = H5Dget_offset(ds);
  const hsize_t size = H5Dget_storage_size(ds);
  H5Dclose(ds);
  REQUIRE(offset != HADDR_UNDEF);
  REQUIRE(size > 16);
  return {offset, size};
}

// XORs 4 bytes in the middle of a dataset's stored data (the tensor values, not HDF5 metadata).
void flip_bytes_in_dataset(const fs::path& file, const std::string& name) {
  const auto [offset, size] = data_extent(file, name);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  const uint64_t at = offset + size / 2;
  char bytes[4];
  f.seekg(static_cast<std::streamoff>(at));
  f.read(bytes, 4);
  for (char& c : bytes) c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes, 4);
  REQUIRE(f.good());
}

void set_string_attribute(const fs::path& file, const char* name, const std::string& value) {
  H5File f(file, true);
  REQUIRE(f.ok());
  if (H5Aexists(f.id(), name) > 0) REQUIRE(H5Adelete(f.id(), name) >= 0);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f.id(), name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, type, value.c_str()) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
}

void set_i64_attribute(const fs::path& file, const char* name, int64_t value) {
  H5File f(file, true);
  REQUIRE(f.ok());
  hid_t a = H5Aopen(f.id(), name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
  H5Aclose(a);
}

uint64_t read_u64_dataset(hid_t file, const char* name) {
  uint64_t v = ~0ull;
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  CHECK(ds >= 0);
  if (ds >= 0) {
    CHECK(H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    H5Dclose(ds);
  }
  return v;
}

// ---- run directories --------------------------------------------------------------------------

std::string read_latest(const fs::path& run_dir) {
  std::ifstream in(run_dir / "latest");
  std::string name;
  in >> name;
  return name;
}

// Names in a run directory matching a predicate, sorted.
std::vector<std::string> names_in(const fs::path& dir, bool (*keep)(const std::string&)) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (keep(e.path().filename().string())) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
bool is_h5(const std::string& n) { return ends_with(n, ".h5"); }
bool is_h5_tmp(const std::string& n) { return ends_with(n, ".h5.tmp"); }

std::vector<std::string> step_checkpoints(const fs::path& dir, const std::string& stage) {
  std::vector<std::string> out;
  for (const auto& n : names_in(dir, is_h5))
    if (n.rfind("ckpt-" + stage + "-step", 0) == 0) out.push_back(n);
  return out;
}

// Step number of "ckpt-<stage>-step00000012.h5" (12); a final counts as a huge step; -1 else.
int step_of(const std::string& name) {
  const std::size_t at = name.rfind("-step");
  if (ends_with(name, "-final.h5")) return 1 << 30;
  if (at == std::string::npos) return -1;
  return std::atoi(name.c_str() + at + 5);
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// ---- shared runs (computed once, on first use) ------------------------------------------------

// Run A: the uninterrupted reference (np 2). Run B: the same stopped after 3 steps (a snapshot
// of its directory is kept: the np-2 checkpoint at step 3 the reshard and corruption tests start
// from) and resumed to the end.
struct SharedRuns {
  ScratchDir root{"ckpt_shared"};
  fs::path a_dir = root / "A", b_dir = root / "B", stopped_at_3 = root / "B_stopped_at_3";
  bool a_done = false, b_done = false;
  RunResult b_stop, b_resume;

  const fs::path& run_a() {
    if (!a_done) {
      const RunResult r = ringworld(root.path, 2, main_run_args(a_dir));
      INFO(show(r));
      REQUIRE(r.exit_code == 0);
      a_done = true;
    }
    return a_dir;
  }
  void run_b() {
    if (b_done) return;
    b_stop = ringworld(root.path, 2, main_run_args(b_dir, " --stop-after-steps 3"));
    {
      INFO(show(b_stop));
      REQUIRE(b_stop.exit_code == 75);
    }
    copy_dir(b_dir, stopped_at_3);
    b_resume = ringworld(root.path, 2, "train --resume " + quoted(b_dir));
    b_done = true;
  }
};

SharedRuns& shared() {
  static SharedRuns runs;
  return runs;
}

// ---- background runs that get killed (crash safety) ------------------------------------------

// Processes (not zombies) whose session id is `sid`.
std::vector<pid_t> session_members(pid_t sid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const std::string stat = slurp(e.path() / "stat");
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0, pgrp = 0, session = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) != 4) continue;
    if (session == sid && state != 'Z' && state != 'X') out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

bool in_session(pid_t pid, pid_t sid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return false;
  char state = 0;
  long ppid = 0, pgrp = 0, session = 0;
  return std::sscanf(stat.c_str() + close + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) == 4 &&
         session == sid;
}

// Starts `sh -c "exec CMD"` as the leader of a new session (mpirun and the ranks it starts stay
// in that session, though Open MPI gives each rank its own process group); stdout and stderr
// go to files.
pid_t spawn_session(const std::string& cmd, const fs::path& out_log, const fs::path& err_log) {
  const std::string script = "exec " + cmd + " >" + quoted(out_log) + " 2>" + quoted(err_log);
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// SIGKILL to every process of the session: first the ones already known (the ranks, found
// before the moment to kill arrived, so they die within microseconds), then any other, until
// none is left; then reaps the leader.
void kill_session(pid_t sid, const std::vector<pid_t>& known) {
  for (pid_t p : known)
    if (p != sid && in_session(p, sid)) kill(p, SIGKILL);
  kill(sid, SIGKILL);
  for (int i = 0; i < 500; ++i) {
    const auto left = session_members(sid);  // zombies excluded
    if (left.empty()) break;
    for (pid_t p : left) kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  int status = 0;
  waitpid(sid, &status, 0);
}

enum class KillMoment { tmp_created, tmp_created_plus_2ms, latest_replaced };

const char* describe(KillMoment m) {
  switch (m) {
    case KillMoment::tmp_created: return "as soon as a *.h5.tmp appears";
    case KillMoment::tmp_created_plus_2ms: return "2 ms after a *.h5.tmp appears";
    case KillMoment::latest_replaced: return "right after 'latest' is replaced";
  }
  return "?";
}

struct KillOutcome {
  bool killed = false;
  bool exited_by_itself = false;
  bool deadline_kill = false;  // the moment never came: killed at the deadline
  std::string tmp_seen;        // the *.h5.tmp that triggered the kill
  bool tmp_left = false;       // it was still there after the kill (caught mid-write)
  std::string latest_before;   // `latest` when the run started
  pid_t leader = -1;           // the session (sh -> mpirun) that was killed
};

// Runs `mpirun ... ringworld ARGS` in the background and SIGKILLs its whole session at
// `moment`, armed once `latest` names a step at least `steps_before_arming` past where the run
// started. Kills anyway after `deadline_s`.
KillOutcome run_and_kill(const fs::path& log_dir, const fs::path& run_dir, int np, const std::string& args,
                         KillMoment moment, int steps_before_arming, double deadline_s = 45) {
  KillOutcome outcome;
  fs::create_directories(run_dir);
  outcome.latest_before = read_latest(run_dir);
  const int start_step = outcome.latest_before.empty() ? 0 : step_of(outcome.latest_before);
  const int inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(inotify >= 0);
  REQUIRE(inotify_add_watch(inotify, run_dir.c_str(), IN_CREATE | IN_MOVED_TO) >= 0);
  static int counter = 0;
  const std::string tag = "bg" + std::to_string(++counter);
  const pid_t leader = spawn_session(ringworld_command(np, args), log_dir / (tag + ".out"), log_dir / (tag + ".err"));
  REQUIRE(leader > 0);
  outcome.leader = leader;
  const auto t0 = std::chrono::steady_clock::now();
  bool armed = false;
  std::vector<pid_t> known;
  alignas(inotify_event) char buffer[16384];
  while (!outcome.killed && !outcome.exited_by_itself) {
    pollfd pfd{inotify, POLLIN, 0};
    poll(&pfd, 1, 5);
    const ssize_t n = read(inotify, buffer, sizeof buffer);
    for (ssize_t at = 0; n > 0 && at < n && !outcome.killed;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      const std::string name = ev->len ? ev->name : "";
      if ((ev->mask & IN_MOVED_TO) && name == "latest" && !armed) {
        const int step = step_of(read_latest(run_dir));
        if (step >= start_step + steps_before_arming) {
          armed = true;
          known = session_members(leader);
          if (moment == KillMoment::latest_replaced) {
            kill_session(leader, known);
            outcome.killed = true;
          }
        }
      } else if ((ev->mask & IN_CREATE) && armed && is_h5_tmp(name) && moment != KillMoment::latest_replaced) {
        if (moment == KillMoment::tmp_created_plus_2ms) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        kill_session(leader, known);
        outcome.killed = true;
        outcome.tmp_seen = name;
      }
    }
    if (outcome.killed) break;
    int status = 0;
    if (waitpid(leader, &status, WNOHANG) == leader) {
      outcome.exited_by_itself = true;
      break;
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > deadline_s) {
      kill_session(leader, session_members(leader));
      outcome.killed = outcome.deadline_kill = true;
    }
  }
  close(inotify);
  if (!outcome.tmp_seen.empty()) outcome.tmp_left = fs::exists(run_dir / outcome.tmp_seen);
  return outcome;
}

// After a crash: `latest` names an existing, valid checkpoint, and every *.h5 of the run
// directory (any name but *.tmp) is a complete, valid checkpoint.
void expect_consistent_run_dir(const fs::path& log_dir, const fs::path& run_dir) {
  const std::string latest = read_latest(run_dir);
  INFO("run directory " << run_dir << ", latest '" << latest << "'");
  REQUIRE_FALSE(latest.empty());
  CHECK(is_h5(latest));
  REQUIRE(fs::exists(run_dir / latest));
  for (const std::string& name : names_in(run_dir, is_h5)) {
    INFO("checkpoint " << name);
    expect_valid_checkpoint(log_dir, 1, run_dir / name);
  }
}

// ---- reshard tolerance -------------------------------------------------------------------------

// Losses of the resharded chain (np 2 -> 4 as dp 2 x sp 2 -> 1 -> 3 striped) against the
// uninterrupted np-2 run, |a - b| / |a| per step. Bit-identity is not expected: the grid changes
// the order of the fp32 reductions (the ring's merge order of attention partials, the dp
// gradient reduction, the sharded sums of the gradient norm), so steps round differently and
// AdamW carries the differences forward. Measured on this configuration (tiny model, seq 96,
// loss ~3.6-3.9, x86-64 with OpenBLAS 0.3.21): this chain gives 2.4e-10, 7.7e-11, 3.6e-11,
// 3.2e-11, 8.3e-10, 2.1e-10, 5.8e-10 at steps 4..10; four other resharded resumes from the same
// step-3 checkpoint (np 4 sp 4; np 3 contiguous; np 1; np 4 dp 2 x sp 2 striped) stay within
// 3e-11..1.2e-9. Sensitivity, for scale: resuming on the same grid with the peak lr changed by
// 1e-4 relative (3e-3 -> 3.0003e-3) moves the losses by 7.9e-7 .. 2.4e-6 relative from step 5;
// a wrong data cursor, lost AdamW moments or a wrong schedule step move them by > 1e-3 (the
// loss changes by ~1e-2 per step here). The bound 1e-6 is ~800x the worst measured rounding
// difference (room for other CPUs and kernels) and still catches that 1e-4 lr perturbation.
constexpr double kReshardRelTol = 1e-6;

}  // namespace

// ---- 1. the file and its resharding ------------------------------------------------------------

TEST_CASE("a checkpoint written by 2 ranks is complete, valid on 1-4 ranks, and converts bit for bit",
          "[checkpoints]") {
  SharedRuns& runs = shared();
  const fs::path a = runs.run_a();
  ScratchDir dir("ckpt_format");
  const fs::path ckpt = a / "ckpt-main-final.h5";
  REQUIRE(fs::exists(ckpt));
  CHECK(read_latest(a) == "ckpt-main-final.h5");
  CHECK(step_checkpoints(a, "main").empty());  // the final supersedes the step checkpoints
  CHECK(names_in(a, is_h5_tmp).empty());

  {  // The documented layout.
    H5File f(ckpt);
    REQUIRE(f.ok());
    CHECK(get_str(f.id(), "format") == "ringworld-checkpoint");
    CHECK(get_i64(f.id(), "format_version") == 2);  // 2 since adam_step and the state record
    CHECK(get_i64(f.id(), "step") == kSteps);
    CHECK(get_i64(f.id(), "tokens_seen") == int64_t(kSteps) * 192);
    CHECK(get_str(f.id(), "stage") == "main");
    CHECK(get_i64(f.id(), "stage_index") == 0);
    CHECK(get_i64(f.id(), "seq_len") == 96);
    CHECK(get_f64(f.id(), "rope_theta") == 10000.0);
    CHECK(get_str(f.id(), "layout") == "zigzag");
    CHECK(get_i64(f.id(), "world_size") == 2);
    CHECK(get_i64(f.id(), "dp") == 1);
    CHECK(get_i64(f.id(), "sp") == 2);
    CHECK(get_i64(f.id(), "hidden_size") == 32);
    CHECK(get_i64(f.id(), "vocab_size") == 48);
    CHECK(get_i64(f.id(), "num_key_value_heads") == 2);
    const auto names = dataset_names(f.id());
    CHECK(names.count("rng/seed") == 1);
    CHECK(names.count("data/cursor") == 1);
    CHECK(read_u64_dataset(f.id(), "rng/seed") == 1);
    CHECK(read_u64_dataset(f.id(), "data/cursor") == uint64_t(kSteps) * 2);  // 2 sequences per step
    const auto params = under(names, "params/"), m = under(names, "optim/m/"), v = under(names, "optim/v/");
    // embed_tokens, norm, lm_head + per layer: 2 norms, q/k/v/o, gate/up/down.
    CHECK(params.size() == 3 + 2 * 9);
    CHECK(params.count("model.embed_tokens.weight") == 1);
    CHECK(params.count("lm_head.weight") == 1);
    CHECK(params.count("model.layers.1.mlp.down_proj.weight") == 1);
    CHECK(m == params);
    CHECK(v == params);
    bool moments_nonzero = false;
    for (const std::string group : {"params/", "optim/m/", "optim/v/"})
      for (const auto& n : params) {
        INFO(group << n);
        hid_t ds = H5Dopen2(f.id(), (group + n).c_str(), H5P_DEFAULT);
        REQUIRE(ds >= 0);
        uint64_t checksum = 0;
        CHECK(read_attr_u64(ds, "checksum", &checksum));
        H5Dclose(ds);
        const Tensor t = read_tensor(f.id(), group + n);
        CHECK(t.is_f32);
        if (group != "params/")
          for (float x : t.values) moments_nonzero = moments_nonzero || x != 0.f;
      }
    CHECK(moments_nonzero);  // after 10 steps the AdamW moments are saved, not zeros
    const Tensor embed = read_tensor(f.id(), "params/model.embed_tokens.weight");
    CHECK(embed.dims == std::vector<hsize_t>{48, 32});  // global shapes, not shards
  }

  // Loaded (every tensor's shards, checksums summed over the ranks) on 1, 2, 3 and 4 ranks.
  for (int np : {1, 2, 3, 4}) {
    INFO("ckpt info on " << np << " rank(s)");
    expect_valid_checkpoint(dir.path, np, ckpt);
  }

  // Checkpoint -> parameter file on 3 ranks: the same bits.
  const fs::path params = dir / "params.h5";
  const RunResult c = ringworld(dir.path, 3, "ckpt convert --input " + quoted(ckpt) + " --output " + quoted(params));
  {
    INFO(show(c));
    REQUIRE(c.exit_code == 0);
  }
  CHECK_FALSE(fs::exists(dir / "params.h5.tmp"));
  expect_same_group(ckpt, "params", params, "params");
  {
    H5File f(params);
    REQUIRE(f.ok());
    const auto names = dataset_names(f.id());
    CHECK(under(names, "optim/").empty());  // a plain parameter file
    CHECK(get_i64(f.id(), "hidden_size") == 32);
    CHECK(get_i64(f.id(), "intermediate_size") == 64);
    CHECK(get_i64(f.id(), "num_hidden_layers") == 2);
    CHECK(get_f64(f.id(), "rope_theta") == 10000.0);
  }

  // Parameter file -> checkpoint on 4 ranks: step 0, the same parameter bits, zero moments, valid.
  const fs::path back = dir / "back.h5";
  const RunResult c2 = ringworld(dir.path, 4, "ckpt convert --input " + quoted(params) + " --output " + quoted(back));
  {
    INFO(show(c2));
    REQUIRE(c2.exit_code == 0);
  }
  expect_same_group(ckpt, "params", back, "params");
  {
    H5File f(back);
    REQUIRE(f.ok());
    CHECK(get_str(f.id(), "format") == "ringworld-checkpoint");
    CHECK(get_i64(f.id(), "step") == 0);
    CHECK(get_i64(f.id(), "world_size") == 4);
    const Tensor m = read_tensor(f.id(), "optim/m/lm_head.weight"), v = read_tensor(f.id(), "optim/v/lm_head.weight");
    CHECK(std::all_of(m.values.begin(), m.values.end(), [](float x) { return x == 0.f; }));
    CHECK(std::all_of(v.values.begin(), v.values.end(), [](float x) { return x == 0.f; }));
  }
  expect_valid_checkpoint(dir.path, 3, back);
}

// ---- 2. resume on the same grid ----------------------------------------------------------------

TEST_CASE("a run stopped and resumed on the same grid is bit-identical to an uninterrupted one", "[checkpoints]") {
  SharedRuns& runs = shared();
  const fs::path a = runs.run_a();
  runs.run_b();
  const fs::path b = runs.b_dir, stopped = runs.stopped_at_3;

  // The stop: exit 75 after step 3 with a checkpoint that `latest` names.
  CHECK(contains(runs.b_stop.stdout_text, "stopped"));
  CHECK(read_latest(stopped) == "ckpt-main-step00000003.h5");
  CHECK(step_checkpoints(stopped, "main") ==
        std::vector<std::string>{"ckpt-main-step00000002.h5", "ckpt-main-step00000003.h5"});
  CHECK_FALSE(fs::exists(stopped / "ckpt-main-final.h5"));
  {
    H5File f(stopped / "ckpt-main-step00000003.h5");
    REQUIRE(f.ok());
    CHECK(get_i64(f.id(), "step") == 3);
    CHECK(get_i64(f.id(), "tokens_seen") == 3 * 192);
    CHECK(read_u64_dataset(f.id(), "data/cursor") == 6);
  }
  const auto stopped_metrics = read_metrics(stopped / "metrics.jsonl");
  REQUIRE(stopped_metrics.size() == 3);

  // The resume: from step 3 to the end.
  INFO(show(runs.b_resume));
  REQUIRE(runs.b_resume.exit_code == 0);
  CHECK(contains(runs.b_resume.stdout_text, "resumed from"));
  CHECK(contains(runs.b_resume.stdout_text, "at step 3"));
  CHECK(read_latest(b) == "ckpt-main-final.h5");

  const auto ma = read_metrics(a / "metrics.jsonl"), mb = read_metrics(b / "metrics.jsonl");
  REQUIRE(ma.size() == kSteps);
  REQUIRE(mb.size() == kSteps);  // 3 before the stop, 7 after: no step twice, none missing
  for (int i = 0; i < kSteps; ++i) {
    INFO("step " << i + 1 << ": uninterrupted loss " << ma[i].loss << ", stopped+resumed " << mb[i].loss);
    CHECK(ma[i].step == i + 1);
    CHECK(mb[i].step == i + 1);
    CHECK(ma[i].loss == mb[i].loss);  // the %.17g text: bit-identical doubles
  }
  // Same final state, bit for bit: parameters and both AdamW moments.
  for (const std::string group : {"params", "optim/m", "optim/v"})
    expect_same_group(a / "ckpt-main-final.h5", group, b / "ckpt-main-final.h5", group);
}

// The same on every other device the tools take (device::backend_names(): cpu-reference and,
// once the registry offers it to the tools, sim-gpu, run by ctest with
// RINGWORLD_SIM_GPU_DELAY_US=50): stopped at step 3 and resumed is bit-identical to
// uninterrupted; sim-gpu, which runs the cpu's kernels on device memory, trains the cpu's bits.
// And --precision bf16 on cpu (src/model/transformer.h): run.ini records it, so the resume
// (given no --precision) continues in bf16, bit-identical to the uninterrupted bf16 run; its
// checkpoints are the same fp32 files (every tensor f32, valid for `ckpt info`, which loads
// them), and its losses follow the fp32 run's within bf16's bound (21 roundings of u = 2^-8 on
// the forward's longest path: tests/unit/test_device_model.cpp) without being its bits.
// About 3 s per variant.
TEST_CASE("on every device the tools take, a stopped and resumed run is bit-identical to an uninterrupted one",
          "[checkpoints][device]") {
  SharedRuns& runs = shared();
  const fs::path on_cpu = runs.run_a();
  std::vector<std::pair<std::string, std::string>> variants;  // name, options
  for (const std::string& device : rw::device::backend_names())
    if (device != "cpu") variants.emplace_back(device, " --device " + device);
  variants.emplace_back("cpu-bf16", " --precision bf16");
  for (const auto& [name, options] : variants) {
    INFO("variant " << name << ":" << options);
    const fs::path a = runs.root / ("A-" + name), b = runs.root / ("B-" + name);
    const RunResult whole = ringworld(runs.root.path, 2, main_run_args(a, options));
    INFO(show(whole));
    REQUIRE(whole.exit_code == 0);
    const RunResult stop = ringworld(runs.root.path, 2, main_run_args(b, options + " --stop-after-steps 3"));
    INFO(show(stop));
    REQUIRE(stop.exit_code == 75);
    const bool bf16 = name == "cpu-bf16";
    const std::string resume_options = bf16 ? "" : options;  // bf16: from run.ini
    const RunResult resume = ringworld(runs.root.path, 2, "train --resume " + quoted(b) + resume_options);
    INFO(show(resume));
    REQUIRE(resume.exit_code == 0);
    const auto ma = read_metrics(a / "metrics.jsonl"), mb = read_metrics(b / "metrics.jsonl"),
               mc = read_metrics(on_cpu / "metrics.jsonl");
    REQUIRE(ma.size() == kSteps);
    REQUIRE(mb.size() == kSteps);
    for (int i = 0; i < kSteps; ++i) CHECK(ma[i].loss == mb[i].loss);  // the %.17g text: bit-identical doubles
    for (const std::string group : {"params", "optim/m", "optim/v"})
      expect_same_group(a / "ckpt-main-final.h5", group, b / "ckpt-main-final.h5", group);
    if (bf16) {
      std::ifstream ini(b / "run.ini");
      const std::string text((std::istreambuf_iterator<char>(ini)), std::istreambuf_iterator<char>());
      CHECK(contains(text, "precision = bf16\n"));
      CHECK(contains(resume.stdout_text, "device cpu, precision bf16;"));
      int same = 0;
      for (int i = 0; i < kSteps; ++i) {
        const double fp32 = std::stod(mc[i].loss), got = std::stod(ma[i].loss);
        INFO("step " << i + 1 << " fp32 " << fp32 << " bf16 " << got);
        CHECK(std::fabs(got - fp32) <= 21.0 / 256 * fp32);
        same += ma[i].loss == mc[i].loss;
      }
      CHECK(same < kSteps);  // bf16 ran
      H5File f(a / "ckpt-main-final.h5");
      REQUIRE(f.ok());
      for (const std::string n : {"params/lm_head.weight", "params/model.embed_tokens.weight", "optim/m/lm_head.weight",
                                  "optim/v/model.layers.1.mlp.down_proj.weight"})
        CHECK(read_tensor(f.id(), n).is_f32);
      expect_valid_checkpoint(runs.root.path, 2, a / "ckpt-main-final.h5");
    }
    if (name != "sim-gpu") continue;  // other kernels
    for (int i = 0; i < kSteps; ++i) CHECK(ma[i].loss == mc[i].loss);
    for (const std::string group : {"params", "optim/m", "optim/v"})
      expect_same_group(a / "ckpt-main-final.h5", group, on_cpu / "ckpt-main-final.h5", group);
  }
}

// ---- 3. resume after resharding ----------------------------------------------------------------

TEST_CASE("a run resumed on 4, then 1, then 3 ranks follows the 2-rank run within fp32 rounding", "[checkpoints]") {
  SharedRuns& runs = shared();
  const fs::path a = runs.run_a();
  runs.run_b();
  ScratchDir dir("ckpt_reshard");
  const fs::path run = dir / "run";
  copy_dir(runs.stopped_at_3, run);  // the np-2 checkpoint at step 3

  struct Leg {
    int np;
    std::string options;
    int expect_exit, end_step, dp, sp;
    std::string layout;
  };
  const std::vector<Leg> legs = {
      {4, " --dp 2 --sp 2 --stop-after-steps 2", 75, 5, 2, 2, "zigzag"},
      {1, " --stop-after-steps 2", 75, 7, 1, 1, "zigzag"},
      {3, " --layout striped", 0, kSteps, 1, 3, "striped"},
  };
  int start = 3;
  for (const Leg& leg : legs) {
    const RunResult r = ringworld(dir.path, leg.np, "train --resume " + quoted(run) + leg.options);
    INFO("leg on " << leg.np << " ranks" << leg.options << "\n" << show(r));
    REQUIRE(r.exit_code == leg.expect_exit);
    CHECK(contains(r.stdout_text, "resumed from"));
    CHECK(contains(r.stdout_text, "at step " + std::to_string(start)));
    CHECK(contains(r.stdout_text, std::to_string(leg.np) + " rank(s) as dp " + std::to_string(leg.dp) + " x sp " +
                              std::to_string(leg.sp)));
    const std::string latest = read_latest(run);
    CHECK(latest == (leg.end_step == kSteps ? std::string("ckpt-main-final.h5")
                                            : "ckpt-main-step0000000" + std::to_string(leg.end_step) + ".h5"));
    H5File f(run / latest);
    REQUIRE(f.ok());
    CHECK(get_i64(f.id(), "step") == leg.end_step);
    CHECK(get_i64(f.id(), "world_size") == leg.np);
    CHECK(get_i64(f.id(), "dp") == leg.dp);
    CHECK(get_i64(f.id(), "sp") == leg.sp);
    CHECK(get_str(f.id(), "layout") == leg.layout);
    CHECK(read_u64_dataset(f.id(), "data/cursor") == uint64_t(leg.end_step) * 2);
    start = leg.end_step;
  }

  const auto ref = losses_by_step(read_metrics(a / "metrics.jsonl"))["main"];
  const auto metrics = read_metrics(run / "metrics.jsonl");
  REQUIRE(metrics.size() == kSteps);  // 3 from np 2, 2 + 2 + 3 from the legs: none twice
  double worst = 0;
  std::ostringstream report;
  report << "reshard chain np 2 -> 4 (dp 2 x sp 2) -> 1 -> 3 (striped), relative loss differences vs np 2:";
  for (int i = 0; i < kSteps; ++i) {
    const Metric& m = metrics[i];
    REQUIRE(m.step == i + 1);
    REQUIRE(ref.count(m.step));
    const double want = std::strtod(ref.at(m.step).c_str(), nullptr), got = std::strtod(m.loss.c_str(), nullptr);
    const double rel = std::fabs(got - want) / std::fabs(want);
    if (m.step <= 3) CHECK(m.loss == ref.at(m.step));  // the np-2 part of the run
    INFO("step " << m.step << ": np-2 loss " << ref.at(m.step) << ", resharded " << m.loss << ", relative difference "
                 << rel << " (bound " << kReshardRelTol << ")");
    CHECK(std::isfinite(got));
    CHECK(rel <= kReshardRelTol);
    worst = std::max(worst, rel);
    if (m.step > 3) report << " step " << m.step << ": " << rel << ";";
  }
  std::cout << report.str() << " max " << worst << "\n";
}

// ---- 4. crash safety ---------------------------------------------------------------------------

TEST_CASE("a run killed with SIGKILL at any moment leaves a valid latest checkpoint and resumes", "[checkpoints]") {
  ScratchDir dir("ckpt_crash");
  const fs::path run = dir / "run";
  constexpr int kCrashSteps = 60;
  const std::string fresh = "train " + kModel + " --seq-len 96 --global-batch-tokens 192 --steps " +
                            std::to_string(kCrashSteps) +
                            " --warmup-steps 2 --lr 3e-3 --checkpoint-every 1 --keep-last 2 --log-every 10 --run-dir " +
                            quoted(run);
  const std::string resume = "train --resume " + quoted(run);

  const std::vector<std::pair<std::string, KillMoment>> legs = {
      {fresh, KillMoment::tmp_created},
      {resume, KillMoment::tmp_created_plus_2ms},
      {resume, KillMoment::latest_replaced},
      {resume, KillMoment::tmp_created},
  };
  int caught_mid_write = 0;
  std::ostringstream report;
  for (const auto& [args, moment] : legs) {
    const KillOutcome k = run_and_kill(dir.path, run, 2, args, moment, 3);
    INFO("killed " << describe(moment) << "; latest before the run '" << k.latest_before << "', after '"
                   << read_latest(run) << "'; trigger '" << k.tmp_seen << "', still there: " << k.tmp_left
                   << (k.deadline_kill ? "; killed at the deadline" : ""));
    REQUIRE_FALSE(k.exited_by_itself);  // the run must still have been going when killed
    CHECK_FALSE(k.deadline_kill);
    CHECK(session_members(k.leader).empty());  // nothing of the killed run is left running
    if (k.tmp_left) ++caught_mid_write;
    report << " [" << describe(moment) << ": latest " << read_latest(run) << (k.tmp_left ? ", .tmp left" : "") << "]";
    expect_consistent_run_dir(dir.path, run);
    CHECK(step_of(read_latest(run)) >= step_of(k.latest_before));  // never moves backwards
  }
  std::cout << "crash legs:" << report.str() << "; caught mid-write " << caught_mid_write << " of " << legs.size()
            << "\n";

  // The last resume runs to the end.
  const RunResult r = ringworld(dir.path, 2, resume);
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.stdout_text, "resumed from"));
  CHECK(read_latest(run) == "ckpt-main-final.h5");
  CHECK(step_checkpoints(run, "main").empty());
  CHECK(names_in(run, is_h5_tmp).empty());  // every stale temporary file was rewritten and renamed
  expect_valid_checkpoint(dir.path, 2, run / "ckpt-main-final.h5");
  {
    H5File f(run / "ckpt-main-final.h5");
    REQUIRE(f.ok());
    CHECK(get_i64(f.id(), "step") == kCrashSteps);
  }
  // Every step is in the metrics; a step run twice (before a kill, then again after the resume
  // from an earlier checkpoint) has the same loss bits both times.
  std::map<int, std::set<std::string>> losses;
  for (const Metric& m : read_metrics(run / "metrics.jsonl")) losses[m.step].insert(m.loss);
  CHECK(losses.size() == kCrashSteps);
  int repeated = 0;
  for (const auto& [step, values] : losses) {
    INFO("step " << step);
    CHECK(values.size() == 1);
  }
  std::map<int, int> occurrences;
  for (const Metric& m : read_metrics(run / "metrics.jsonl")) ++occurrences[m.step];
  for (const auto& [step, n] : occurrences) repeated += n > 1;
  CHECK(repeated >= 1);  // a kill at a *.h5.tmp comes after that step's metrics line: it reruns
  std::cout << "crash: " << repeated << " step(s) were computed twice, with identical losses\n";
}

// ---- 5. corrupted files ------------------------------------------------------------------------

TEST_CASE("corrupted or foreign checkpoints are rejected with a clear message and never loaded", "[checkpoints]") {
  SharedRuns& runs = shared();
  runs.run_b();
  ScratchDir dir("ckpt_corrupt");
  const std::string victim = "ckpt-main-step00000003.h5";

  // A fresh copy of the np-2 run stopped at step 3, with its latest checkpoint modified.
  auto prepare = [&](const std::string& tag, const std::function<void(const fs::path&)>& corrupt) {
    const fs::path run = dir / tag;
    copy_dir(runs.stopped_at_3, run);
    corrupt(run / victim);
    return run;
  };
  // `ckpt info` rejects it (non-zero exit, `needle` in the output), and so does `train --resume`
  // (exit 1, `needle` in its error line), without a step, a checkpoint or a new `latest`.
  auto expect_rejected = [&](const fs::path& run, const std::vector<std::string>& info_needles,
                             const std::vector<std::string>& resume_needles, bool info_says_invalid) {
    const RunResult info = ringworld(dir.path, 2, "ckpt info " + quoted(run / victim));
    {
      INFO(show(info));
      CHECK(info.exit_code != 0);
      CHECK(info.exit_code != 124);
      CHECK_FALSE(contains(info.stdout_text, "valid: every tensor"));
      if (info_says_invalid) CHECK(contains(info.stdout_text, "INVALID"));
      for (const auto& n : info_needles) CHECK(contains(info.stdout_text + info.stderr_text, n));
    }
    const auto files_before = names_in(run, is_h5);
    const std::string metrics_before = slurp(run / "metrics.jsonl");
    const RunResult resume = ringworld(dir.path, 2, "train --resume " + quoted(run));
    INFO(show(resume));
    CHECK(resume.exit_code == 1);
    CHECK(contains(resume.stderr_text, "ringworld train: error:"));
    for (const auto& n : resume_needles) CHECK(contains(resume.stderr_text, n));
    CHECK_FALSE(contains(resume.stdout_text, "step     4"));
    CHECK_FALSE(contains(resume.stderr_text, "MPI_ABORT"));
    CHECK(read_latest(run) == victim);
    CHECK(names_in(run, is_h5) == files_before);
    CHECK(names_in(run, is_h5_tmp).empty());
    CHECK(slurp(run / "metrics.jsonl") == metrics_before);
  };

  SECTION("flipped bytes in a parameter tensor's data") {
    const std::string tensor = "model.layers.1.mlp.down_proj.weight";
    const fs::path run = prepare("flip_params", [&](const fs::path& f) { flip_bytes_in_dataset(f, "/params/" + tensor); });
    expect_rejected(run, {"params/" + tensor, "checksum"}, {"params/" + tensor, "checksum", victim}, true);
  }
  SECTION("flipped bytes in an optimizer moment's data") {
    const std::string tensor = "model.embed_tokens.weight";
    const fs::path run = prepare("flip_optim", [&](const fs::path& f) { flip_bytes_in_dataset(f, "/optim/v/" + tensor); });
    expect_rejected(run, {"optim/v/" + tensor, "checksum"}, {"optim/v/" + tensor, "checksum"}, true);
  }
  SECTION("a file truncated to half its size") {
    const fs::path run = prepare("truncated", [](const fs::path& f) { fs::resize_file(f, fs::file_size(f) / 2); });
    expect_rejected(run, {victim}, {victim}, false);
  }
  SECTION("a deleted dataset") {
    const fs::path run = prepare("deleted", [](const fs::path& f) {
      H5File h(f, true);
      REQUIRE(h.ok());
      REQUIRE(H5Ldelete(h.id(), "/optim/v/lm_head.weight", H5P_DEFAULT) >= 0);
    });
    expect_rejected(run, {"optim/v/lm_head.weight"}, {"optim/v/lm_head.weight"}, true);
  }
  // A file that is not a checkpoint of this format: `ckpt info` must not call it valid and must
  // say why (`needle`); `train --resume` fails (exit 1, `needle`) without a step or a new `latest`.
  auto expect_foreign = [&](const fs::path& run, const std::string& needle) {
    const RunResult info = ringworld(dir.path, 2, "ckpt info " + quoted(run / victim));
    {
      INFO(show(info));
      CHECK_FALSE(contains(info.stdout_text, "valid: every tensor present, shaped and checksummed"));
      CHECK(contains(info.stdout_text + info.stderr_text, needle));
    }
    const RunResult resume = ringworld(dir.path, 2, "train --resume " + quoted(run));
    INFO(show(resume));
    CHECK(resume.exit_code == 1);
    CHECK(contains(resume.stderr_text, needle));
    CHECK_FALSE(contains(resume.stdout_text, "step     4"));
    CHECK(read_latest(run) == victim);
  };
  SECTION("a wrong format attribute") {
    // `ckpt info` also reads plain parameter files, so it may list this one as parameters (its
    // exit code is not checked here); it must still say why it is not a checkpoint.
    const fs::path run = prepare("format", [](const fs::path& f) { set_string_attribute(f, "format", "not-ringworld"); });
    expect_foreign(run, "not a ringworld checkpoint");
  }
  SECTION("a wrong format_version") {
    // This build reads formats 1 and 2; 3 is a future one.
    const fs::path run = prepare("version", [](const fs::path& f) { set_i64_attribute(f, "format_version", 3); });
    expect_foreign(run, "format version 3");
  }
  SECTION("latest naming a file that does not exist") {
    const fs::path run = dir / "missing";
    copy_dir(runs.stopped_at_3, run);
    std::ofstream(run / "latest") << "ckpt-main-step00000099.h5\n";
    const RunResult resume = ringworld(dir.path, 2, "train --resume " + quoted(run));
    INFO(show(resume));
    CHECK(resume.exit_code == 1);
    CHECK(contains(resume.stderr_text, "ckpt-main-step00000099.h5"));
    CHECK_FALSE(contains(resume.stdout_text, "step     4"));
  }
}

// ---- 6. stages ---------------------------------------------------------------------------------

namespace {

struct StageIni {
  std::map<std::string, std::string> a = {{"seq-len", "48"},       {"rope_theta", "10000"}, {"global-batch-tokens", "96"},
                                          {"steps", "4"},          {"warmup-steps", "1"},   {"lr", "3e-3"},
                                          {"data", "synthetic"}};
  std::map<std::string, std::string> b = {{"seq-len", "96"},       {"rope_theta", "40000"}, {"global-batch-tokens", "192"},
                                          {"steps", "3"},          {"warmup-steps", "1"},   {"lr", "2e-3"},
                                          {"schedule", "constant"}, {"data", "synthetic"}};
  std::string text() const {
    std::string s = kModelIni + "\n[stage.a]\n";
    for (const auto& [k, v] : a) s += k + " = " + v + "\n";
    s += "\n[stage.b]\n";
    for (const auto& [k, v] : b) s += k + " = " + v + "\n";
    return s;
  }
  void write(const fs::path& path) const { std::ofstream(path) << text(); }
};

}  // namespace

TEST_CASE("stages run in order from each other's finals, skip when done, and keep the last checkpoints",
          "[checkpoints]") {
  ScratchDir dir("ckpt_stages");
  const fs::path ini = dir / "stages.ini", run = dir / "run";
  StageIni().write(ini);
  const std::string config = "train --config " + quoted(ini) + " --run-dir " + quoted(run);
  const std::string keep = " --checkpoint-every 1 --keep-last 2";

  // Invocation 1: stops inside stage a after 3 steps.
  RunResult r = ringworld(dir.path, 2, config + keep + " --stop-after-steps 3");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
    CHECK(read_latest(run) == "ckpt-a-step00000003.h5");
    const auto steps_a = step_checkpoints(run, "a");
    CHECK(steps_a.size() <= 2);
    CHECK(steps_a == std::vector<std::string>{"ckpt-a-step00000002.h5", "ckpt-a-step00000003.h5"});
    CHECK_FALSE(fs::exists(run / "ckpt-a-final.h5"));
  }
  // Invocation 2: a's last step (its final), then b's steps 1 and 2; stops inside b.
  r = ringworld(dir.path, 2, "train --resume " + quoted(run) + " --stop-after-steps 3");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 75);
    CHECK(contains(r.stdout_text, "initialised from " + (run / "ckpt-a-final.h5").string()));
    CHECK(fs::exists(run / "ckpt-a-final.h5"));
    CHECK(step_checkpoints(run, "a").empty());  // a's final supersedes them
    CHECK(read_latest(run) == "ckpt-b-step00000002.h5");
    const auto steps_b = step_checkpoints(run, "b");
    CHECK(steps_b.size() <= 2);
    CHECK(steps_b == std::vector<std::string>{"ckpt-b-step00000001.h5", "ckpt-b-step00000002.h5"});
  }
  // Invocation 3: b's last step.
  r = ringworld(dir.path, 2, "train --resume " + quoted(run));
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "resumed from"));
    CHECK(read_latest(run) == "ckpt-b-final.h5");
    CHECK(step_checkpoints(run, "a").empty());
    CHECK(step_checkpoints(run, "b").empty());
    CHECK(names_in(run, is_h5) == std::vector<std::string>{"ckpt-a-final.h5", "ckpt-b-final.h5"});
  }
  // The finals carry their stage.
  {
    H5File fa(run / "ckpt-a-final.h5"), fb(run / "ckpt-b-final.h5");
    REQUIRE(fa.ok());
    REQUIRE(fb.ok());
    CHECK(get_str(fa.id(), "stage") == "a");
    CHECK(get_i64(fa.id(), "stage_index") == 0);
    CHECK(get_i64(fa.id(), "seq_len") == 48);
    CHECK(get_f64(fa.id(), "rope_theta") == 10000.0);
    CHECK(get_i64(fa.id(), "step") == 4);
    CHECK(get_i64(fa.id(), "tokens_seen") == 4 * 96);
    CHECK(get_str(fb.id(), "stage") == "b");
    CHECK(get_i64(fb.id(), "stage_index") == 1);
    CHECK(get_i64(fb.id(), "seq_len") == 96);
    CHECK(get_f64(fb.id(), "rope_theta") == 40000.0);
    CHECK(get_i64(fb.id(), "step") == 3);
    CHECK(get_i64(fb.id(), "tokens_seen") == 3 * 192);
  }
  expect_valid_checkpoint(dir.path, 2, run / "ckpt-b-final.h5");
  // Metrics: a's steps 1..4, then b's 1..3 (b counts its own steps from 1).
  const auto metrics = read_metrics(run / "metrics.jsonl");
  {
    std::vector<std::pair<std::string, int>> seen, want = {{"a", 1}, {"a", 2}, {"a", 3}, {"a", 4},
                                                           {"b", 1}, {"b", 2}, {"b", 3}};
    for (const Metric& m : metrics) seen.emplace_back(m.stage, m.step);
    CHECK(seen == want);
  }

  // The same command again: both stages are done, nothing runs.
  r = ringworld(dir.path, 2, config);
  {
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "stage a: already complete"));
    CHECK(contains(r.stdout_text, "stage b: already complete"));
    CHECK(contains(r.stdout_text, "skipped"));
    CHECK_FALSE(contains(r.stdout_text, "step "));
    CHECK(read_metrics(run / "metrics.jsonl").size() == metrics.size());
    CHECK(read_latest(run) == "ckpt-b-final.h5");
  }

  // One stage per job: b alone on a fresh directory needs a's final.
  const fs::path per_stage = dir / "per_stage";
  const std::string per_stage_config = "train --config " + quoted(ini) + " --run-dir " + quoted(per_stage);
  r = ringworld(dir.path, 2, per_stage_config + " --stage b");
  {
    INFO(show(r));
    CHECK(r.exit_code == 1);
    CHECK(contains(r.stderr_text, "ckpt-a-final.h5"));
    CHECK(contains(r.stderr_text, "stage 'a'"));
    CHECK(contains(r.stderr_text, "does not exist"));
    CHECK(names_in(per_stage, is_h5).empty());
  }
  r = ringworld(dir.path, 2, per_stage_config + " --stage a");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(per_stage / "ckpt-a-final.h5"));
    CHECK_FALSE(fs::exists(per_stage / "ckpt-b-final.h5"));
  }
  r = ringworld(dir.path, 2, per_stage_config + " --stage b");
  {
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(fs::exists(per_stage / "ckpt-b-final.h5"));
  }
  // Same grid, same plan: the interrupted all-stage run and the per-stage jobs agree bit for bit.
  {
    const auto l1 = losses_by_step(metrics), l2 = losses_by_step(read_metrics(per_stage / "metrics.jsonl"));
    CHECK(l1 == l2);
    expect_same_group(run / "ckpt-b-final.h5", "params", per_stage / "ckpt-b-final.h5", "params");
  }

  // A stage missing any required key, or with an unknown one, is rejected naming it.
  for (const std::string key : {"seq-len", "rope_theta", "global-batch-tokens", "steps", "warmup-steps", "lr", "data"}) {
    StageIni bad;
    bad.b.erase(key);
    const fs::path bad_ini = dir / "missing.ini";
    bad.write(bad_ini);
    const RunResult e = ringworld(dir.path, 1, "train --config " + quoted(bad_ini) + " --run-dir " + quoted(dir / "bad"));
    INFO("without '" << key << "'\n" << show(e));
    CHECK(e.exit_code == 2);
    CHECK(contains(e.stderr_text, "stage 'b' is missing '" + key + "'"));
    CHECK_FALSE(fs::exists(dir / "bad"));
  }
  {
    StageIni bad;
    bad.a["seqlen"] = "48";
    const fs::path bad_ini = dir / "unknown.ini";
    bad.write(bad_ini);
    const RunResult e = ringworld(dir.path, 1, "train --config " + quoted(bad_ini) + " --run-dir " + quoted(dir / "bad"));
    INFO(show(e));
    CHECK(e.exit_code == 2);
    CHECK(contains(e.stderr_text, "'seqlen'"));
    CHECK_FALSE(fs::exists(dir / "bad"));
  }
}

// A stop requested by --stop-after-steps (or SIGTERM/SIGUSR1) on the last step of a stage that
// is not the last one takes effect right after that stage's final checkpoint: no step of the
// next stage runs (it once did: the stop test came after the end-of-stage break).
TEST_CASE("--stop-after-steps that ends a stage stops before the next stage", "[checkpoints]") {
  ScratchDir dir("ckpt_stop_at_boundary");
  const fs::path ini = dir / "stages.ini", run = dir / "run";
  StageIni().write(ini);  // stage a has 4 steps
  const RunResult r = ringworld(dir.path, 2, "train --config " + quoted(ini) + " --run-dir " + quoted(run) +
                                                 " --stop-after-steps 4");
  INFO(show(r));
  CHECK(r.exit_code == 75);
  CHECK(read_metrics(run / "metrics.jsonl").size() == 4);  // stops after 4 steps, as documented
  CHECK(read_latest(run) == "ckpt-a-final.h5");
  CHECK(names_in(run, is_h5) == std::vector<std::string>{"ckpt-a-final.h5"});
}

// A file that says format = "ringworld-checkpoint" but has another format_version is INVALID for
// `ckpt info` (exit 1), as `train --resume` rejects it; it must not pass as a parameter file.
TEST_CASE("ckpt info calls a checkpoint of another format version invalid", "[checkpoints]") {
  SharedRuns& runs = shared();
  runs.run_b();
  ScratchDir dir("ckpt_info_version");
  const fs::path file = dir / "v2.h5";
  fs::copy_file(runs.stopped_at_3 / "ckpt-main-step00000003.h5", file);
  set_i64_attribute(file, "format_version", 3);  // this build reads 1 and 2
  const RunResult r = ringworld(dir.path, 2, "ckpt info " + quoted(file));
  INFO(show(r));
  CHECK(r.exit_code != 0);
  CHECK(contains(r.stdout_text, "INVALID"));
  CHECK_FALSE(contains(r.stdout_text, "valid: every parameter present"));
}
