// activity.cpp
#include "src/common/activity.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "src/common/timer.h"

namespace rw::activity {
namespace {

struct State {
  std::mutex mutex;
  Snapshot now;
  double last_progress = wall_seconds();
};

State& state() {
  static State s;
  return s;
}

void touch(State& s) {
  s.last_progress = wall_seconds();
  ++s.now.records;
}

int g_rank = -1;

struct StallPlan {
  int rank = -1, ring_step = -1;
  double seconds = 0;
  bool done = false;
};

StallPlan parse_stall_plan() {
  StallPlan plan;
  const char* text = std::getenv("RINGWORLD_INJECT_STALL");
  if (!text || !*text) return plan;
  if (std::sscanf(text, "%d:%d:%lf", &plan.rank, &plan.ring_step, &plan.seconds) != 3) {
    std::fprintf(stderr, "ringworld: ignoring RINGWORLD_INJECT_STALL='%s' (expected RANK:RING_STEP:SECONDS)\n", text);
    plan.rank = -1;
  }
  return plan;
}

}  // namespace

void set_step(const std::string& stage, long step) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.now.stage = stage;
  s.now.step = step;
  s.now.layer = -1;
  s.now.pass.clear();
  s.now.ring_step = -1;
  s.now.doing = "computing";
  touch(s);
}

void set_layer(int layer, const char* pass) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.now.layer = layer;
  s.now.pass = pass;
  s.now.ring_step = -1;
  s.now.doing = "computing";
  touch(s);
}

void set_ring_step(int ring_step, int ring_size) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.now.ring_step = ring_step;
  s.now.ring_size = ring_size;
  s.now.doing = "computing attention on the block in hand";
  touch(s);
}

void set_doing(const std::string& doing) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.now.doing = doing;
  touch(s);
}

void note_progress() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  touch(s);
}

Snapshot snapshot() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  Snapshot out = s.now;
  out.since_progress_s = wall_seconds() - s.last_progress;
  return out;
}

std::string describe(const Snapshot& s) {
  std::string text;
  if (!s.stage.empty()) text += "stage " + s.stage + ", ";
  text += s.step >= 0 ? "step " + std::to_string(s.step) : std::string("before the first step");
  if (s.layer >= 0) text += ", layer " + std::to_string(s.layer) + (s.pass.empty() ? "" : " " + s.pass);
  else if (!s.pass.empty()) text += ", " + s.pass;
  if (s.ring_step >= 0)
    text += ", ring step " + std::to_string(s.ring_step + 1) + "/" + std::to_string(s.ring_size);
  text += ": " + (s.doing.empty() ? std::string("computing") : s.doing);
  return text;
}

Doing::Doing(const std::string& what) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  previous_ = s.now.doing;
  s.now.doing = what;
  touch(s);
}

Doing::~Doing() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.now.doing = previous_;
  touch(s);
}

void set_rank(int rank) { g_rank = rank; }

void maybe_inject_stall(int ring_step) {
  static StallPlan plan = parse_stall_plan();
  if (plan.done || plan.rank < 0 || plan.rank != g_rank || plan.ring_step != ring_step) return;
  plan.done = true;
  set_doing("INJECTED STALL (RINGWORLD_INJECT_STALL, a test hook) sleeping " + std::to_string(plan.seconds) + " s");
  std::this_thread::sleep_for(std::chrono::duration<double>(plan.seconds));
}

}  // namespace rw::activity
