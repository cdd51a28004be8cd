// bench_common.h: what every ringworld benchmark shares.
//   - machine reference points measured in the same run (OpenBLAS sgemm GFLOP/s, OpenMP
//     memory triad GB/s), so results are read as ratios, never as absolute times;
//   - a one-step dense attention case (the whole sequence as one kernel call) with timed
//     forward and backward, used by the kernel benchmark and as the single-rank baseline of
//     the ring benchmark;
//   - the output format (nccl-tests style, docs/style.md item 9): '#' comment lines, then per
//     table a header row, a units row and fixed-width whitespace-separated data rows; --json
//     gives JSON Lines instead (one object per data row with a "table" key, one
//     {"comment": ...} object per comment line). The caller decides who prints (rank 0 only).
// Invariants: nothing here calls MPI, so the serial kernel benchmark needs no MPI start-up.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "device/backend.h"

namespace rw::perf {

// ---- statistics --------------------------------------------------------------------------------

// Median of the values (mean of the middle two for an even count); NaN when empty.
double median(std::vector<double> values);

// Whether to time another run: always the first, then while fewer than max_reps are done and
// one more (at the mean time per run so far) keeps the total within budget_s. Keeps the largest
// cases of a sweep affordable; the number of runs used is printed beside each result.
bool another_run(int runs_done, int max_reps, double spent_s, double budget_s);

// ---- machine reference points ------------------------------------------------------------------

struct SgemmMeasurement {
  double gflops = 0;  // median over runs, 2 n^3 flops per call
  int n = 0;          // square matrix size
  int n_threads = 0;  // OpenBLAS threads
  int n_runs = 0;     // timed runs after one warm-up
};
// Square row-major C = A B on n_threads OpenBLAS threads (restored afterwards).
SgemmMeasurement measure_sgemm(int n_threads, int n = 2048, int n_runs = 5);

struct TriadMeasurement {
  double gbps = 0;                 // median over runs; 3 arrays x n_bytes_per_array per pass
  std::size_t n_bytes_per_array = 0;
  int n_threads = 0;
  int n_runs = 0;
};
// a[i] = b[i] + s*c[i] with OpenMP; arrays first-touched by the same threads. With
// n_bytes_per_array = 0 the size is chosen as 4 x the L3 size (at least 128 MiB, at most
// 1 GiB), so the arrays never fit in cache. Write-allocate traffic is not counted (STREAM's
// convention).
TriadMeasurement measure_triad(int n_threads, std::size_t n_bytes_per_array = 0, int n_runs = 5);

std::size_t l3_cache_bytes();  // 0 when unknown
int available_cores();         // CPUs this process may run on (sched_getaffinity), >= 1
std::string cpu_model_name();  // from /proc/cpuinfo, "unknown" if absent

// Noise indicators: CPU seconds this process has used (user + system, all threads), and the
// 1-minute load average. cpu / (wall * threads) well below 1 means other processes took the
// cores during the measurement.
double process_cpu_seconds();
double load_average_1min();
// Whole-machine CPU seconds since boot from /proc/stat (all CPUs; zeros if unreadable).
struct SystemCpu {
  double busy_s = 0;   // user + nice + system + irq + softirq
  double steal_s = 0;  // taken by the hypervisor for other guests
  double total_s = 0;  // every state, idle included
};
SystemCpu system_cpu();
// "other processes used X% of the machine, hypervisor steal Y%" between two samples, given
// the CPU seconds this benchmark (all its processes) used in between.
std::string machine_noise(const SystemCpu& start, const SystemCpu& end, double own_cpu_s);

// OpenBLAS's kernel choice ("SkylakeX", ...) and build configuration.
std::string openblas_core_name();
std::string openblas_config();
// Non-empty when OpenBLAS runs kernels without AVX on a CPU that has AVX2 (a DYNAMIC_ARCH
// build older than the CPU falls back to e.g. Prescott, several times slower): says so and
// how to override it (OPENBLAS_CORETYPE).
std::string openblas_fallback_warning();

// ---- one-step dense attention ------------------------------------------------------------------

struct AttentionCase {
  int batch = 1;
  int seq_len = 0;  // n_q = n_k = seq_len: the whole sequence in one kernel call
  int heads = 8;
  int kv_heads = 8;
  int head_dim = 64;
  bool causal = true;
  device::AttnTiling tiling;
};

// FLOPs of the attention forward as usually quoted (FlashAttention's convention):
// 4 * batch * n_q * n_k * heads * head_dim (QK^T and PV), halved when causal. The backward is
// counted as 2.5 x the forward (five matmuls instead of two), so forward+backward = 3.5 x.
double attention_fwd_flops(int batch, long long n_q, long long n_k, int heads, int head_dim,
                           bool causal);
constexpr double kBwdFlopsPerFwdFlop = 2.5;

// Owns q, k, v, out, lse, dout, dq, dk, dv, delta and the int32 positions (0..S-1) and
// segment ids (all 0) of one case on a backend; inputs are uniform in [-1, 1) from a fixed
// seed. Resetting outputs is never inside the timed region.
class DenseAttention {
 public:
  DenseAttention(device::Backend& backend, const AttentionCase& c, bool with_backward,
                 uint64_t seed = 1234);
  // One attn_fwd_step over the whole sequence (out, lse reset first); returns seconds.
  // n_tokens > 0 uses only the first n_tokens of the sequence (batch 1 only): a cheap warm-up.
  double forward_s(int n_tokens = 0);
  // attn_row_dot + attn_bwd_step (dq, dk, dv zeroed first); needs a forward of the same
  // n_tokens before it.
  double backward_s(int n_tokens = 0);
  // Forward (and backward if allocated) on a short prefix: starts the OpenMP and OpenBLAS
  // threads and warms the code paths; every buffer was already touched when it was filled.
  void warm_up();
  const AttentionCase& config() const { return case_; }
  double fwd_flops() const;

 private:
  device::AttnShape shape_for(int n_tokens) const;

  device::Backend& backend_;
  AttentionCase case_;
  bool with_backward_;
  device::DeviceArray<float> q_, k_, v_, out_, lse_, dout_, dq_, dk_, dv_, delta_;
  device::DeviceArray<int32_t> pos_, seg_;
};

// Fills a device array with uniform values in [-1, 1) from a fixed seed, through a bounded
// host staging buffer (so the staging copy barely shows in peak RSS).
void fill_uniform(device::Backend& backend, device::DeviceArray<float>& array, uint64_t seed);

// ---- option helpers ----------------------------------------------------------------------------

// "4096,8192,16384" -> {4096, 8192, 16384}; throws InputError naming the option on bad text
// or a non-positive value.
std::vector<int> parse_int_list(const std::string& text, const std::string& option_name);

// ---- output ------------------------------------------------------------------------------------

struct Column {
  std::string name;  // header; carries its unit where one applies (fwd_ms)
  std::string unit;  // units row ("-" printed when empty)
};

// One table cell: an integer, a number with fixed decimals (NaN prints "-" / null), or text.
class Cell {
 public:
  static Cell integer(long long value);
  static Cell number(double value, int decimals);
  static Cell text(std::string value);
  std::string as_text() const;
  std::string as_json() const;

 private:
  enum class Kind { integer, number, text } kind_ = Kind::text;
  long long int_value_ = 0;
  double number_value_ = 0;
  int decimals_ = 0;
  std::string text_value_;
};

class Table {
 public:
  Table(std::string name, std::vector<Column> columns);
  void comment(const std::string& line);  // printed (as "# line") above the header
  void add_row(std::vector<Cell> cells);  // one cell per column
  const std::string& name() const { return name_; }
  const std::vector<Column>& columns() const { return columns_; }
  const std::vector<std::string>& comments() const { return comments_; }
  const std::vector<std::vector<Cell>>& rows() const { return rows_; }

 private:
  std::string name_;
  std::vector<Column> columns_;
  std::vector<std::string> comments_;
  std::vector<std::vector<Cell>> rows_;
};

// Prints to stdout when enabled (rank 0); flushes after each call so long runs show progress.
class Report {
 public:
  Report(bool json, bool enabled) : json_(json), enabled_(enabled) {}
  void comment(const std::string& line) const;
  void table(const Table& table) const;
  bool json() const { return json_; }

 private:
  bool json_;
  bool enabled_;
};

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace rw::perf
