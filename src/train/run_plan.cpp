// run_plan.cpp
#include "src/train/run_plan.h"

#include <cstdint>
#include <sstream>
#include <string>

#include "src/common/count_text.h"
#include "src/common/input_error.h"

namespace rw::train {

const std::vector<std::string>& stage_keys() {
  static const std::vector<std::string> keys = {"seq-len", "rope_theta", "global-batch-tokens", "steps",
                                                "warmup-steps", "lr", "min-lr", "schedule", "data"};
  return keys;
}

const std::vector<std::string>& required_stage_keys() {
  static const std::vector<std::string> keys = {"seq-len", "rope_theta", "global-batch-tokens", "steps",
                                                "warmup-steps", "lr", "data"};
  return keys;
}

void set_stage_field(StageSpec& s, const std::string& key, const std::string& value) {
  try {
    std::size_t used = 0;
    auto whole = [&](std::size_t n) {
      if (n != value.size()) throw std::invalid_argument("trailing text");
    };
    int64_t count = 0;  // token counts take K/M/G suffixes, as on the command line
    if (key == "seq-len") s.seq_len = parse_count(value, &count) && count <= INT32_MAX ? int(count) : throw std::invalid_argument(key);
    else if (key == "rope_theta") s.rope_theta = std::stod(value, &used), whole(used);
    else if (key == "global-batch-tokens") s.global_batch_tokens = parse_count(value, &count) ? count : throw std::invalid_argument(key);
    else if (key == "steps") s.steps = std::stoi(value, &used), whole(used);
    else if (key == "warmup-steps") s.warmup_steps = std::stoi(value, &used), whole(used);
    else if (key == "lr") s.lr = std::stod(value, &used), whole(used);
    else if (key == "min-lr") s.min_lr = std::stod(value, &used), whole(used);
    else if (key == "schedule") s.schedule = value;
    else if (key == "data") s.data = value;
    else throw InputError("stage '" + s.name + "': unknown key '" + key + "'");
  } catch (const std::logic_error& e) {
    throw InputError("stage '" + s.name + "': bad value '" + value + "' for '" + key + "'" +
                     (key == "seq-len" || key == "global-batch-tokens" ? std::string(" (") + count_syntax() + ")" : ""));
  }
}

std::string to_ini(const RunPlan& p) {
  std::ostringstream o;
  o.precision(17);
  o << "# ringworld run plan (written by `ringworld train`; read back by --resume)\n";
  o << "model = " << p.model_preset << "\n";
  for (const auto& f : model::config_fields())
    if (std::string(f.name) != "rope_theta") {
      if (f.integer) o << f.name << " = " << p.model.*f.integer << "\n";
      else o << f.name << " = " << p.model.*f.real << "\n";
    }
  o << "layout = " << p.layout << "\nseed = " << p.seed << "\nbeta1 = " << p.adamw.beta1
    << "\nbeta2 = " << p.adamw.beta2 << "\nadam-eps = " << p.adamw.eps << "\nweight-decay = " << p.adamw.weight_decay
    << "\nclip-grad-norm = " << p.clip_grad_norm << "\nblock-q = " << p.block_q << "\nblock-k = " << p.block_k
    << "\nffn-chunk = " << p.ffn_chunk << "\nlog-every = " << p.log_every << "\ncheckpoint-every = "
    << p.checkpoint_every << "\nkeep-last = " << p.keep_last << "\ncarry-optimizer = " << (p.carry_optimizer ? 1 : 0)
    << "\n";
  for (const StageSpec& s : p.stages) {
    o << "\n[stage." << s.name << "]\nseq-len = " << s.seq_len << "\nrope_theta = " << s.rope_theta
      << "\nglobal-batch-tokens = " << s.global_batch_tokens << "\nsteps = " << s.steps << "\nwarmup-steps = "
      << s.warmup_steps << "\nlr = " << s.lr << "\nmin-lr = " << s.min_lr << "\nschedule = " << s.schedule
      << "\ndata = " << s.data << "\n";
  }
  return o.str();
}

void resolve_grid(int world, int& dp, int& sp) {
  if (dp == 0 && sp == 0) dp = 1, sp = world;
  else if (dp == 0) dp = sp > 0 && world % sp == 0 ? world / sp : -1;
  else if (sp == 0) sp = dp > 0 && world % dp == 0 ? world / dp : -1;
  if (dp <= 0 || sp <= 0 || dp * sp != world)
    throw InputError("--dp x --sp must equal the number of ranks (" + std::to_string(world) + ")");
}

}  // namespace rw::train
