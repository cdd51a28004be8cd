// run_reuse.cpp
#include "src/train/run_reuse.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "src/common/build_info.h"

namespace rw::train {
namespace {

// The part of a difference's key after its section: "[stage.a] steps" -> "steps".
std::string setting_of(const std::string& key) {
  const std::size_t close = key.find("] ");
  return close == std::string::npos ? key : key.substr(close + 2);
}

bool changeable(const PlanDifference& d) {
  if (d.key.back() == ']') return false;  // a whole stage added or removed
  const auto& keys = keys_changeable_on_resume();
  return std::find(keys.begin(), keys.end(), setting_of(d.key)) != keys.end();
}

std::string list(const std::vector<PlanDifference>& differences) {
  std::string text;
  for (const auto& d : differences) text += (text.empty() ? "" : "; ") + d.text();
  return text;
}

std::string changeable_list() {
  std::string text;
  for (const auto& k : keys_changeable_on_resume()) text += (text.empty() ? "" : ", ") + k;
  return text;
}

}  // namespace

const std::vector<std::string>& keys_changeable_on_resume() {
  static const std::vector<std::string> keys = {"steps",      "checkpoint-every", "keep-last",     "log-every",
                                                "layout",     "block-q",          "block-k",       "ffn-chunk",
                                                "val-data",   "eval-every",       "val-sequences", "val-bucket-tokens"};
  return keys;
}

RunDirectoryDecision decide_run_directory(const RunPlan& requested, const std::optional<RunPlan>& saved,
                                          const io::RunDirectoryContents& contents, const std::string& new_run_id) {
  RunDirectoryDecision d;
  d.plan = requested;
  const std::string dir = requested.run_dir;
  auto refuse = [&](const std::string& message) {
    d.action = RunDirectoryDecision::Action::refuse;
    d.error = message;
    return d;
  };
  if (requested.resume) {
    if (!contents.exists) return refuse("--resume '" + dir + "': no such directory");
    if (!saved)
      return refuse("--resume '" + dir + "': it has no run.ini, so it is not a ringworld run directory (start a run "
                    "there with --run-dir)");
    const auto differences = plan_differences(*saved, requested);
    std::vector<PlanDifference> refused;
    for (const auto& diff : differences)
      if (!changeable(diff)) refused.push_back(diff);
    if (!refused.empty())
      return refuse("--resume '" + dir + "': these settings differ from the run's plan (" + dir +
                    "/run.ini) and cannot change on resume: " + list(refused) + ". On resume only " +
                    changeable_list() + " may change; to train with other settings start a new run (--run-dir NEW, "
                    "with --init-params or --resume-from CKPT to start from this run's weights)");
    // A stage that has ended keeps its length; one that goes on may grow or shrink (the
    // checkpoint's step is checked against it when the stage starts).
    for (const auto& diff : differences) {
      if (setting_of(diff.key) != "steps" || diff.key.rfind("[stage.", 0) != 0) continue;
      const std::string stage = diff.key.substr(7, diff.key.find(']') - 7);
      const std::string final_name = io::checkpoint_final_name(stage);
      if (std::find(contents.checkpoints.begin(), contents.checkpoints.end(), final_name) != contents.checkpoints.end())
        return refuse("--resume '" + dir + "': stage '" + stage + "' has ended (" + final_name +
                      "), so its steps cannot change (" + diff.text() + ")");
    }
    for (const auto& diff : differences) {
      std::string note = "changed on resume: " + diff.text();
      if (setting_of(diff.key) == "steps")
        for (const StageSpec& s : requested.stages)
          if (diff.key == "[stage." + s.name + "] steps" && s.schedule == "cosine")
            note += " (the cosine schedule now decays to min-lr over " + diff.after + " steps)";
      d.notes.push_back(note);
    }
    // What this plan does not say, the run's does (identity, recorded dataset checksums).
    d.plan.run_id = saved->run_id;
    for (StageSpec& s : d.plan.stages)
      for (const StageSpec& old : saved->stages)
        if (old.name == s.name && s.data_checksum.empty()) s.data_checksum = old.data_checksum;
    // The validation data may change on resume: a new spec is checksummed afresh.
    d.plan.val_data_checksum = d.plan.val_data == saved->val_data ? saved->val_data_checksum : "";
    d.action = RunDirectoryDecision::Action::resume;
    d.write_run_ini = !differences.empty();
    return d;
  }
  if (dir.empty() || !contents.holds_a_run()) {
    d.action = RunDirectoryDecision::Action::fresh;
    d.plan.run_id = new_run_id;
    d.write_run_ini = !dir.empty();
    return d;
  }
  if (!saved) {
    std::string found;
    if (!contents.latest.empty()) found += "latest";
    if (!contents.checkpoints.empty()) found += std::string(found.empty() ? "" : ", ") + contents.checkpoints.front();
    if (contents.has_metrics) found += std::string(found.empty() ? "" : ", ") + "metrics.jsonl";
    return refuse("run directory '" + dir + "' holds files of a run (" + found +
                  ") but no run.ini saying which: start this run in a new directory (--run-dir NEW) or move those "
                  "files away");
  }
  // The same run: every setting the same, but how it saves, logs, validates and computes (the
  // settings --resume may change, a stage's length aside), which are then changed as on resume.
  const auto differences = plan_differences(*saved, requested);
  std::vector<PlanDifference> identity, how;
  for (const auto& diff : differences)
    (changeable(diff) && setting_of(diff.key) != "steps" ? how : identity).push_back(diff);
  if (!identity.empty())
    return refuse("run directory '" + dir + "' holds another run (its run.ini differs: " + list(identity) +
                  "): continue that run with `--resume " + dir + "` (which may change only " + changeable_list() +
                  "), or start this one in a new directory (--run-dir NEW)");
  for (const auto& diff : how) d.notes.push_back("changed on resume: " + diff.text());
  d.write_run_ini = !how.empty();
  d.plan.run_id = saved->run_id;
  for (StageSpec& s : d.plan.stages)
    for (const StageSpec& old : saved->stages)
      if (old.name == s.name && s.data_checksum.empty()) s.data_checksum = old.data_checksum;
  d.plan.val_data_checksum = d.plan.val_data == saved->val_data ? saved->val_data_checksum : "";
  d.action = RunDirectoryDecision::Action::resume;
  d.notes.insert(d.notes.begin(), "run directory '" + dir + "' holds this run" +
                                      (how.empty() ? " (the same plan)" : "") + ": continuing it");
  return d;
}

std::string new_run_id() {
  std::random_device device;
  std::string id;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 4; ++i) {
    uint32_t word = device();
    for (int j = 0; j < 8; ++j, word >>= 4) id += hex[word & 15];
  }
  return id;
}

std::string data_file_of(const std::string& spec) {
  for (const char* prefix : {"file:", "file-concat:"}) {
    const std::string p = prefix;
    if (spec.rfind(p, 0) == 0) return spec.substr(p.size());
  }
  return "";
}

std::string absolute_data_spec(const std::string& spec) {
  const std::string file = data_file_of(spec);
  if (file.empty()) return spec;
  return spec.substr(0, spec.size() - file.size()) + io::absolute_path(file);
}

CheckpointCheck compare_checkpoint_with_stage(const io::CheckpointState& state, const model::LlamaConfig& saved,
                                              const RunPlan& plan, const StageSpec& stage, int64_t batch_tokens,
                                              int world_size, int dp, int sp) {
  CheckpointCheck c;
  auto text = [](auto value) { return nlohmann::json(value).dump(); };  // shortest round-trip form
  model::LlamaConfig now = plan.model;
  now.rope_theta = stage.rope_theta;
  for (const auto& f : model::config_fields()) {
    if (f.integer && saved.*f.integer != now.*f.integer)
      c.refused.push_back(std::string(f.name) + ": checkpoint " + text(saved.*f.integer) + ", run " + text(now.*f.integer));
    if (f.real && saved.*f.real != now.*f.real)
      c.refused.push_back(std::string(f.name) + ": checkpoint " + text(saved.*f.real) + ", run " + text(now.*f.real));
  }
  if (state.seq_len != stage.seq_len)
    c.refused.push_back("seq-len: checkpoint " + text(state.seq_len) + ", run " + text(stage.seq_len));
  if (state.global_batch_tokens > 0 && state.global_batch_tokens != batch_tokens)
    c.refused.push_back("global-batch-tokens: checkpoint " + text(state.global_batch_tokens) + ", run " +
                        text(batch_tokens));
  if (state.seed != plan.seed) c.refused.push_back("seed: checkpoint " + text(state.seed) + ", run " + text(plan.seed));
  if (state.step > stage.steps)
    c.refused.push_back("steps: the checkpoint is at step " + text(state.step) + ", past the stage's " +
                        text(stage.steps) + " steps");
  if (state.layout != plan.layout)
    c.reported.push_back("layout " + state.layout + " at save, " + plan.layout +
                         " now (the same tokens and loss; only their placement on the ring changes)");
  if (state.world_size != world_size || state.dp != dp || state.sp != sp)
    c.reported.push_back("saved by " + text(state.world_size) + " rank(s) as dp " + text(state.dp) + " x sp " +
                         text(state.sp) + ", resharded to " + text(world_size) + " as dp " + text(dp) + " x sp " +
                         text(sp) + " (losses then agree to fp32 rounding, not bit for bit)");
  if (!state.run_id.empty() && !plan.run_id.empty() && state.run_id != plan.run_id)
    c.reported.push_back("the checkpoint belongs to another run (run-id " + state.run_id + ")");
  if (!state.adam_step_known)
    c.reported.push_back("a format-1 checkpoint has no optimizer step count: AdamW's bias correction continues "
                         "from its step (" + text(state.step) + ")");
  if (!state.git_commit.empty() && state.git_commit != build::git_commit())
    c.reported.push_back("written by ringworld " + state.ringworld_version + " (git " + state.git_commit + ")");
  return c;
}

}  // namespace rw::train
