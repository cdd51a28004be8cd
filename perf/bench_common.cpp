// bench_common.cpp: reference measurements, the dense attention case and the table printer
// shared by the benchmarks (see bench_common.h).
#include "perf/bench_common.h"

#include <cblas.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <sstream>

#include "device/attention_builder.h"
#include "src/common/fatal.h"
#include "src/common/host_buffer.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"

namespace rw::perf {
namespace {

// xorshift64*: a fixed, fast stream of inputs; the values only need to look like activations.
struct Random {
  uint64_t state;
  explicit Random(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float uniform_pm1() {  // [-1, 1)
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    const uint64_t bits = state * 0x2545F4914F6CDD1Dull;
    return static_cast<float>(bits >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
};

// OpenBLAS thread count held for a scope, restored afterwards.
class OpenblasThreads {
 public:
  explicit OpenblasThreads(int n) : saved_(openblas_get_num_threads()) { openblas_set_num_threads(n); }
  ~OpenblasThreads() { openblas_set_num_threads(saved_); }

 private:
  int saved_;
};

std::string json_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) out += format("\\u%04x", ch);
        else out += ch;
    }
  }
  return out;
}

}  // namespace

// ---- statistics --------------------------------------------------------------------------------

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

bool another_run(int runs_done, int max_reps, double spent_s, double budget_s) {
  if (runs_done == 0) return true;
  if (runs_done >= max_reps) return false;
  return spent_s * (runs_done + 1) / runs_done <= budget_s;
}

// ---- machine reference points ------------------------------------------------------------------

SgemmMeasurement measure_sgemm(int n_threads, int n, int n_runs) {
  const std::size_t count = static_cast<std::size_t>(n) * n;
  HostVector<float> a(count), b(count), c(count, 0.f);
  Random random(7);
  for (std::size_t i = 0; i < count; ++i) {
    a[i] = random.uniform_pm1();
    b[i] = random.uniform_pm1();
  }
  OpenblasThreads threads(n_threads);
  auto run = [&] {
    const double t0 = wall_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                0.f, c.data(), n);
    return wall_seconds() - t0;
  };
  run();  // warm-up: OpenBLAS thread pool, page faults, caches
  std::vector<double> seconds;
  for (int r = 0; r < n_runs; ++r) seconds.push_back(run());
  SgemmMeasurement m;
  m.gflops = 2.0 * n * static_cast<double>(n) * n / median(seconds) * 1e-9;
  m.n = n;
  m.n_threads = n_threads;
  m.n_runs = n_runs;
  return m;
}

TriadMeasurement measure_triad(int n_threads, std::size_t n_bytes_per_array, int n_runs) {
  if (n_bytes_per_array == 0) {
    constexpr std::size_t kMiB = std::size_t(1) << 20;
    n_bytes_per_array = std::clamp<std::size_t>(4 * l3_cache_bytes(), 128 * kMiB, 1024 * kMiB);
  }
  const std::size_t n = n_bytes_per_array / sizeof(double);
  // Raw allocations: first touch must happen in the parallel loop below, not in a constructor.
  double* a = static_cast<double*>(std::aligned_alloc(64, n * sizeof(double)));
  double* b = static_cast<double*>(std::aligned_alloc(64, n * sizeof(double)));
  double* c = static_cast<double*>(std::aligned_alloc(64, n * sizeof(double)));
  if (!a || !b || !c) throw std::bad_alloc();
  const long n_elems = static_cast<long>(n);
#pragma omp parallel for schedule(static) num_threads(n_threads)
  for (long i = 0; i < n_elems; ++i) {
    a[i] = 0.0;
    b[i] = 1.0;
    c[i] = 2.0;
  }
  const double s = 3.0;
  auto run = [&] {
    const double t0 = wall_seconds();
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (long i = 0; i < n_elems; ++i) a[i] = b[i] + s * c[i];
    return wall_seconds() - t0;
  };
  run();  // warm-up
  std::vector<double> seconds;
  for (int r = 0; r < n_runs; ++r) seconds.push_back(run());
  std::free(a);
  std::free(b);
  std::free(c);
  TriadMeasurement m;
  m.gbps = 3.0 * n * sizeof(double) / median(seconds) * 1e-9;
  m.n_bytes_per_array = n * sizeof(double);
  m.n_threads = n_threads;
  m.n_runs = n_runs;
  return m;
}

std::size_t l3_cache_bytes() {
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long from_sysconf = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (from_sysconf > 0) return static_cast<std::size_t>(from_sysconf);
#endif
  std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index3/size");  // e.g. "32768K"
  std::size_t value = 0;
  char unit = 0;
  if (!(file >> value)) return 0;
  file >> unit;
  if (unit == 'K') value <<= 10;
  if (unit == 'M') value <<= 20;
  return value;
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

std::string cpu_model_name() {
  std::ifstream file("/proc/cpuinfo");
  std::string line;
  while (std::getline(file, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

double process_cpu_seconds() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return usage.ru_utime.tv_sec + 1e-6 * usage.ru_utime.tv_usec + usage.ru_stime.tv_sec +
         1e-6 * usage.ru_stime.tv_usec;
}

double load_average_1min() {
  std::ifstream file("/proc/loadavg");
  double value = std::numeric_limits<double>::quiet_NaN();
  file >> value;
  return value;
}

SystemCpu system_cpu() {
  std::ifstream file("/proc/stat");
  std::string label;
  double ticks[8] = {0};  // user nice system idle iowait irq softirq steal
  file >> label;
  for (double& t : ticks) file >> t;
  if (!file || label != "cpu") return {};
  const double per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
  SystemCpu c;
  c.busy_s = (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / per_s;
  c.steal_s = ticks[7] / per_s;
  for (double t : ticks) c.total_s += t / per_s;
  return c;
}

std::string machine_noise(const SystemCpu& start, const SystemCpu& end, double own_cpu_s) {
  const double total_s = end.total_s - start.total_s;
  if (total_s <= 0) return "machine load unknown (no /proc/stat)";
  const double others = std::max(0.0, end.busy_s - start.busy_s - own_cpu_s) / total_s;
  const double steal = (end.steal_s - start.steal_s) / total_s;
  return format("other processes used %.0f%% of the machine's CPU time during the run, hypervisor steal %.0f%%",
                100 * others, 100 * steal);
}

std::string openblas_core_name() { return openblas_get_corename(); }
std::string openblas_config() { return openblas_get_config(); }

std::string openblas_fallback_warning() {
  static const char* const kNoAvxCores[] = {"Prescott", "Core2",  "Penryn",  "Dunnington", "Nehalem",
                                            "Atom",     "Katmai", "Coppermine", "Northwood", "Banias",
                                            "Opteron",  "Barcelona", "Bobcat", "Nano",  "Athlon"};
  const std::string core = openblas_core_name();
  const bool cpu_has_avx2 = __builtin_cpu_supports("avx2");
  const bool cpu_has_avx512 = __builtin_cpu_supports("avx512f");
  bool no_avx_core = false;
  for (const char* name : kNoAvxCores) no_avx_core |= core == name;
  if (!no_avx_core || !cpu_has_avx2) return "";
  return format("WARNING: OpenBLAS runs its '%s' kernels (no AVX) on a CPU with %s: its DYNAMIC_ARCH "
                "build does not know this CPU, and sgemm (so every kernel) runs several times below "
                "what the CPU can do; set OPENBLAS_CORETYPE=%s in the environment to override",
                core.c_str(), cpu_has_avx512 ? "AVX-512" : "AVX2", cpu_has_avx512 ? "SkylakeX" : "Haswell");
}

// ---- one-step dense attention ------------------------------------------------------------------

double attention_fwd_flops(int batch, long long n_q, long long n_k, int heads, int head_dim,
                           bool causal) {
  const double full = 4.0 * batch * static_cast<double>(n_q) * n_k * heads * head_dim;
  return causal ? 0.5 * full : full;
}

void fill_uniform(device::Backend& backend, device::DeviceArray<float>& array, uint64_t seed) {
  constexpr std::size_t kChunk = std::size_t(1) << 18;  // 1 MiB of floats staged at a time
  Random random(seed);
  HostVector<float> staging(std::min(kChunk, array.size()));
  for (std::size_t start = 0; start < array.size(); start += kChunk) {
    const std::size_t count = std::min(kChunk, array.size() - start);
    for (std::size_t i = 0; i < count; ++i) staging[i] = random.uniform_pm1();
    backend.copy_to_device(array.data() + start, staging.data(), count * sizeof(float));
  }
}

DenseAttention::DenseAttention(device::Backend& backend, const AttentionCase& c,
                               bool with_backward, uint64_t seed)
    : backend_(backend), case_(c), with_backward_(with_backward) {
  const std::size_t q_count = static_cast<std::size_t>(c.batch) * c.seq_len * c.heads * c.head_dim;
  const std::size_t kv_count = static_cast<std::size_t>(c.batch) * c.seq_len * c.kv_heads * c.head_dim;
  const std::size_t row_count = static_cast<std::size_t>(c.batch) * c.heads * c.seq_len;
  const std::size_t tok_count = static_cast<std::size_t>(c.batch) * c.seq_len;
  q_ = device::DeviceArray<float>(backend, q_count);
  k_ = device::DeviceArray<float>(backend, kv_count);
  v_ = device::DeviceArray<float>(backend, kv_count);
  out_ = device::DeviceArray<float>(backend, q_count);
  lse_ = device::DeviceArray<float>(backend, row_count);
  fill_uniform(backend, q_, seed);
  fill_uniform(backend, k_, seed + 1);
  fill_uniform(backend, v_, seed + 2);
  if (with_backward) {
    dout_ = device::DeviceArray<float>(backend, q_count);
    dq_ = device::DeviceArray<float>(backend, q_count);
    dk_ = device::DeviceArray<float>(backend, kv_count);
    dv_ = device::DeviceArray<float>(backend, kv_count);
    delta_ = device::DeviceArray<float>(backend, row_count);
    fill_uniform(backend, dout_, seed + 3);
  }
  std::vector<int32_t> pos(tok_count), seg(tok_count, 0);
  for (std::size_t i = 0; i < tok_count; ++i) pos[i] = static_cast<int32_t>(i % c.seq_len);
  pos_ = device::DeviceArray<int32_t>(backend, tok_count);
  seg_ = device::DeviceArray<int32_t>(backend, tok_count);
  pos_.upload(pos.data());
  seg_.upload(seg.data());
}

double DenseAttention::fwd_flops() const {
  return attention_fwd_flops(case_.batch, case_.seq_len, case_.seq_len, case_.heads, case_.head_dim,
                             case_.causal);
}

device::AttnShape DenseAttention::shape_for(int n_tokens) const {
  const AttentionCase& c = case_;
  // A prefix of [batch, tokens, heads, head_dim] is itself such a tensor only when batch is 1.
  if (n_tokens <= 0 || n_tokens >= c.seq_len || c.batch != 1) n_tokens = c.seq_len;
  return {c.batch, n_tokens, n_tokens, c.heads, c.kv_heads, c.head_dim};
}

double DenseAttention::forward_s(int n_tokens) {
  const AttentionCase& c = case_;
  const device::AttnShape shape = shape_for(n_tokens);
  backend_.fill(out_.data(), out_.size(), 0.f);
  backend_.fill(lse_.data(), lse_.size(), -std::numeric_limits<float>::infinity());
  backend_.synchronize();
  const device::AttnProblem problem{shape, c.causal, c.tiling, device::DType::f32};
  const device::AttnFwdStepArgs args =
      device::make_attn_fwd_args(problem, {q_.data(), pos_.data(), seg_.data()},
                                 {k_.data(), v_.data(), pos_.data(), seg_.data()}, out_.data(), lse_.data());
  const double t0 = wall_seconds();
  backend_.attn_fwd_step(args, {});
  backend_.synchronize();
  return wall_seconds() - t0;
}

double DenseAttention::backward_s(int n_tokens) {
  RW_CHECK(with_backward_, "DenseAttention::backward_s on a case built without backward buffers");
  const AttentionCase& c = case_;
  const device::AttnShape shape = shape_for(n_tokens);
  backend_.fill(dq_.data(), dq_.size(), 0.f);
  backend_.fill(dk_.data(), dk_.size(), 0.f);
  backend_.fill(dv_.data(), dv_.size(), 0.f);
  backend_.synchronize();
  const device::AttnProblem problem{shape, c.causal, c.tiling, device::DType::f32};
  const device::AttnBwdStepArgs args = device::make_attn_bwd_args(
      problem, {q_.data(), pos_.data(), seg_.data()}, {k_.data(), v_.data(), pos_.data(), seg_.data()}, dout_.data(),
      lse_.data(), delta_.data(), dq_.data(), dk_.data(), dv_.data());
  const double t0 = wall_seconds();
  backend_.attn_row_dot(shape, out_.data(), dout_.data(), delta_.data());
  backend_.attn_bwd_step(args, {});
  backend_.synchronize();
  return wall_seconds() - t0;
}

void DenseAttention::warm_up() {
  constexpr int kWarmupTokens = 1024;
  forward_s(kWarmupTokens);
  if (with_backward_) backward_s(kWarmupTokens);
}

// ---- option helpers ----------------------------------------------------------------------------

std::vector<int> parse_int_list(const std::string& text, const std::string& option_name) {
  std::vector<int> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    std::size_t used = 0;
    long value = 0;
    try {
      value = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || value <= 0 || value > std::numeric_limits<int>::max())
      throw InputError("--" + option_name + ": '" + item + "' is not a positive integer (expected a list like 4096,8192)");
    values.push_back(static_cast<int>(value));
  }
  if (values.empty()) throw InputError("--" + option_name + " needs at least one value");
  return values;
}

// ---- output ------------------------------------------------------------------------------------

std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int length = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out(length > 0 ? length : 0, '\0');
  if (length > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  va_end(args);
  return out;
}

Cell Cell::integer(long long value) {
  Cell c;
  c.kind_ = Kind::integer;
  c.int_value_ = value;
  return c;
}

Cell Cell::number(double value, int decimals) {
  Cell c;
  c.kind_ = Kind::number;
  c.number_value_ = value;
  c.decimals_ = decimals;
  return c;
}

Cell Cell::text(std::string value) {
  // Whitespace would split a column for whitespace-based parsers.
  std::replace_if(value.begin(), value.end(), [](char ch) { return ch == ' ' || ch == '\t'; }, '_');
  Cell c;
  c.kind_ = Kind::text;
  c.text_value_ = value.empty() ? "-" : value;
  return c;
}

std::string Cell::as_text() const {
  switch (kind_) {
    case Kind::integer: return std::to_string(int_value_);
    case Kind::number: return std::isfinite(number_value_) ? format("%.*f", decimals_, number_value_) : "-";
    case Kind::text: return text_value_;
  }
  return "-";
}

std::string Cell::as_json() const {
  switch (kind_) {
    case Kind::integer: return std::to_string(int_value_);
    case Kind::number:
      return std::isfinite(number_value_) ? format("%.*f", decimals_, number_value_) : "null";
    case Kind::text: return "\"" + json_escape(text_value_) + "\"";
  }
  return "null";
}

Table::Table(std::string name, std::vector<Column> columns)
    : name_(std::move(name)), columns_(std::move(columns)) {}

void Table::comment(const std::string& line) { comments_.push_back(line); }

void Table::add_row(std::vector<Cell> cells) {
  cells.resize(columns_.size(), Cell::text("-"));
  rows_.push_back(std::move(cells));
}

void Report::comment(const std::string& line) const {
  if (!enabled_) return;
  if (json_) std::printf("{\"comment\": \"%s\"}\n", json_escape(line).c_str());
  else std::printf("# %s\n", line.c_str());
  std::fflush(stdout);
}

void Report::table(const Table& table) const {
  if (!enabled_) return;
  const auto& columns = table.columns();
  if (json_) {
    for (const auto& line : table.comments())
      std::printf("{\"table\": \"%s\", \"comment\": \"%s\"}\n", json_escape(table.name()).c_str(),
                  json_escape(line).c_str());
    for (const auto& row : table.rows()) {
      std::string object = "{\"table\": \"" + json_escape(table.name()) + "\"";
      for (std::size_t i = 0; i < columns.size(); ++i)
        object += ", \"" + json_escape(columns[i].name) + "\": " + row[i].as_json();
      std::printf("%s}\n", object.c_str());
    }
    std::fflush(stdout);
    return;
  }
  // Fixed width per column: the widest of header, unit and every cell, right-aligned.
  std::vector<std::size_t> width(columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    width[i] = std::max(columns[i].name.size(), std::max<std::size_t>(1, columns[i].unit.size()));
    for (const auto& row : table.rows()) width[i] = std::max(width[i], row[i].as_text().size());
  }
  auto print_line = [&](auto&& text_of) {
    std::string line;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const std::string text = text_of(i);
      line += std::string(i == 0 ? 0 : 2, ' ') + std::string(width[i] - text.size(), ' ') + text;
    }
    std::printf("%s\n", line.c_str());
  };
  std::printf("# table: %s\n", table.name().c_str());
  for (const auto& line : table.comments()) std::printf("# %s\n", line.c_str());
  print_line([&](std::size_t i) { return columns[i].name; });
  print_line([&](std::size_t i) { return columns[i].unit.empty() ? std::string("-") : columns[i].unit; });
  for (const auto& row : table.rows()) print_line([&](std::size_t i) { return row[i].as_text(); });
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace rw::perf
