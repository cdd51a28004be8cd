// run_plan.cpp
#include "src/train/run_plan.h"

#include "src/common/number_format.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <sstream>
#include <string>

#include "src/common/count_text.h"
#include "src/common/input_error.h"

namespace rw::train {

const std::vector<std::string>& stage_keys() {
  static const std::vector<std::string> keys = {"seq-len", "rope_theta", "global-batch-tokens", "steps",
                                                "warmup-steps", "lr", "min-lr", "schedule", "data"};
  static const std::vector<std::string> with_checksum = [] {
    std::vector<std::string> k = keys;
    k.push_back("data-checksum");
    return k;
  }();
  return with_checksum;
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
    else if (key == "data-checksum") s.data_checksum = value;
    else throw InputError("stage '" + s.name + "': unknown key '" + key + "'");
  } catch (const std::logic_error& e) {
    throw InputError("stage '" + s.name + "': bad value '" + value + "' for '" + key + "'" +
                     (key == "seq-len" || key == "global-batch-tokens" ? std::string(" (") + count_syntax() + ")" : ""));
  }
}

std::string to_ini(const RunPlan& p) {
  // Numbers in the shortest form that reads back as the same double (0.9, not 0.90000000000000002).
  auto num = [](double x) { return format_number(x); };
  std::ostringstream o;
  o << "# ringworld run plan (written by `ringworld train`; read back by --resume)\n";
  o << "model = " << p.model_preset << "\n";
  for (const auto& f : model::config_fields())
    if (std::string(f.name) != "rope_theta" && f.written(p.model)) {
      if (f.integer) o << f.name << " = " << p.model.*f.integer << "\n";
      else o << f.name << " = " << num(p.model.*f.real) << "\n";
    }
  o << "layout = " << p.layout << "\nseed = " << p.seed << "\nbeta1 = " << num(p.adamw.beta1)
    << "\nbeta2 = " << num(p.adamw.beta2) << "\nadam-eps = " << num(p.adamw.eps) << "\nweight-decay = " << num(p.adamw.weight_decay)
    << "\nclip-grad-norm = " << num(p.clip_grad_norm) << "\nblock-q = " << p.block_q << "\nblock-k = " << p.block_k
    << "\nffn-chunk = " << p.ffn_chunk << "\nlog-every = " << p.log_every << "\ncheckpoint-every = "
    << p.checkpoint_every << "\nkeep-last = " << p.keep_last << "\ncarry-optimizer = " << (p.carry_optimizer ? 1 : 0)
    << "\n";
  if (p.precision != "fp32") o << "precision = " << p.precision << "\n";  // absent: fp32 (runs from before it existed)
  o << "micro-batch-tokens = " << p.micro_batch_tokens << "\non-nonfinite = " << p.on_nonfinite << "\nmax-consecutive-skips = " << p.max_consecutive_skips << "\n";
  if (!p.run_id.empty()) o << "run-id = " << p.run_id << "\n";
  if (!p.val_data.empty())
    o << "val-data = " << p.val_data << "\neval-every = " << p.eval_every << "\nval-sequences = " << p.val_sequences
      << "\nval-bucket-tokens = " << p.val_bucket_tokens << "\n";
  if (!p.val_data.empty() && !p.val_data_checksum.empty()) o << "val-data-checksum = " << p.val_data_checksum << "\n";
  for (const StageSpec& s : p.stages) {
    o << "\n[stage." << s.name << "]\nseq-len = " << s.seq_len << "\nrope_theta = " << num(s.rope_theta)
      << "\nglobal-batch-tokens = " << s.global_batch_tokens << "\nsteps = " << s.steps << "\nwarmup-steps = "
      << s.warmup_steps << "\nlr = " << num(s.lr) << "\nmin-lr = " << num(s.min_lr) << "\nschedule = " << s.schedule
      << "\ndata = " << s.data << "\n";
    if (!s.data_checksum.empty()) o << "data-checksum = " << s.data_checksum << "\n";
  }
  return o.str();
}

namespace {

// "key" -> value of every setting of an INI text as to_ini writes it ([stage.NAME] keys as
// "[stage.NAME] key"; a section line itself as "[stage.NAME]" -> "present"), in file order.
std::vector<std::pair<std::string, std::string>> ini_settings(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string section;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      section = line;
      out.emplace_back(section, "present");
      continue;
    }
    const std::size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    out.emplace_back(section.empty() ? key : section + " " + key, line.substr(eq + 3));
  }
  return out;
}

bool is_checksum_key(const std::string& key) {
  const std::string tail = "data-checksum";
  return key.size() >= tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string PlanDifference::text() const {
  // Numbers in their shortest form (to_ini writes 17 digits: 0.0030000000000000001 is 0.003).
  auto shown = [](const std::string& v) -> std::string {
    if (v.empty()) return "(none)";
    if (v.find_first_of(".eE") == std::string::npos) return v;  // an integer (or a word) as written
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (end != v.c_str() + v.size() || v.find_first_of("0123456789") == std::string::npos) return v;
    for (int digits = 1; digits <= 17; ++digits) {
      char text[40];
      std::snprintf(text, sizeof text, "%.*g", digits, x);
      if (std::strtod(text, nullptr) == x) return text;
    }
    return v;
  };
  return key + " " + shown(before) + " -> " + shown(after);
}

std::vector<PlanDifference> plan_differences(const RunPlan& before, const RunPlan& after) {
  const auto a = ini_settings(to_ini(before)), b = ini_settings(to_ini(after));
  auto find = [](const std::vector<std::pair<std::string, std::string>>& v, const std::string& key) -> const std::string* {
    for (const auto& kv : v)
      if (kv.first == key) return &kv.second;
    return nullptr;
  };
  std::vector<PlanDifference> out;
  for (const auto& [key, value] : a) {
    if (key == "run-id") continue;
    const std::string* other = find(b, key);
    if (is_checksum_key(key) && !other) continue;
    if (!other || *other != value) out.push_back({key, value, other ? *other : ""});
  }
  for (const auto& [key, value] : b) {
    if (key == "run-id" || find(a, key)) continue;
    if (is_checksum_key(key)) continue;
    out.push_back({key, "", value});
  }
  return out;
}

void resolve_grid(int world, int& dp, int& sp) {
  if (dp == 0 && sp == 0) dp = 1, sp = world;
  else if (dp == 0) dp = sp > 0 && world % sp == 0 ? world / sp : -1;
  else if (sp == 0) sp = dp > 0 && world % dp == 0 ? world / dp : -1;
  if (dp <= 0 || sp <= 0 || dp * sp != world)
    throw InputError("--dp x --sp must equal the number of ranks (" + std::to_string(world) + ")");
}

}  // namespace rw::train
