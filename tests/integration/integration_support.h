// integration_support.h: helpers shared by the end-to-end tests (test_attn_tool.cpp,
// test_forward_tool.cpp, test_checkpoints.cpp). Those are plain (non-MPI) Catch2 programs that
// run `timeout N mpirun -np N ringworld ...` and read and write files with the serial HDF5 C
// API (default sec2 driver: no MPI in the test process). The helpers use CHECK/REQUIRE/INFO, so
// call them from inside a test case.
//
// Files and commands
//   quoted(p)               p in single quotes, for a shell command line.
//   slurp(p)                the whole file as a string ("" if it cannot be read).
//   ScratchDir(name)        RAII directory <cwd>/<name>_<pid> (ctest: the build's tests dir),
//                           emptied on creation, removed with its contents at scope end;
//                           `dir / "file"` names a file in it, `dir.path` is the directory.
//   RunResult               exit code (-1: no normal exit, 124: killed by `timeout`, a hang),
//                           stdout and stderr text, and the command line that ran.
//   show(r)                 command, exit code, stdout and stderr of a run, for INFO.
//   ringworld_command(np, ARGS)
//                           "RW_MPIEXEC -np NP RW_RINGWORLD_BIN ARGS" (both from CMake).
//   run_ringworld(np, ARGS, timeout_s, out_log, err_log)
//                           runs `timeout T <ringworld_command>` through the shell, stdout
//                           and stderr to out_log and err_log, and reads both back.
//   tool_lines(text)        the lines of `text` that start with "ringworld" (the tool's own
//                           lines; mpirun's banners are not).
//   expect_clean_failure(r, output, needle)
//                           bad input: non-zero exit without a hang, exactly one tool line on
//                           stderr, containing "error" and `needle`, no "fatal"/"MPI_ABORT",
//                           and neither `output` nor `output`.tmp left behind.
//
// HDF5
//   H5Writer(path)          creates (truncates) a file: f32/f64/i32 datasets of a given
//                           shape (REQUIREs element count == product of dims), groups, and
//                           scalar int64/float64 root attributes.
//   H5File(path, writable)  RAII open of an existing file (read-only unless writable);
//                           ok() tells whether it opened, id() is the file id.
//   read_attr_i64/u64/f64/str(object, name, &out)
//                           reads a scalar attribute; false if absent or unreadable.
//   get_i64/get_f64/get_str(object, name)
//                           the same, CHECKing that it was read (-1 / "" otherwise).
//   Tensor, read_tensor(file, name)
//                           a dataset's shape, values read as float32, and whether it is
//                           stored as float32 (REQUIREs that it opens).
//   read_f32(file, name, dims)
//                           a dataset that must exist, be float32 and have shape `dims`
//                           (CHECKed); its values, or empty if the shape differs.
//   same_bits(a, b)         the same size and the same bits (memcmp), for floats and tensors.
//
// Tolerances
//   check_tensor(name, tool, fp64, fp32)
//                           the FlashAttention rule of tests/test_support.h per tensor:
//                           tool finite and max|tool - fp64| <= 2 * max|fp32 - fp64|
//                           + 8 * FLT_EPSILON * max|fp64|, where fp32 is a straightforward
//                           fp32 computation of the same quantity.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rw::test {

namespace fs = std::filesystem;

// ---- files and commands ----------------------------------------------------------------------

std::string quoted(const fs::path& p);
std::string slurp(const fs::path& path);

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  fs::path operator/(const std::string& name) const { return path / name; }

  fs::path path;
};

struct RunResult {
  int exit_code = -1;  // -1: did not exit normally; 124: killed by `timeout` (a hang)
  std::string stdout_text, stderr_text;
  std::string command;
};

std::string show(const RunResult& r);
std::string ringworld_command(int np, const std::string& args);
RunResult run_ringworld(int np, const std::string& args, int timeout_s, const fs::path& out_log,
                        const fs::path& err_log);

std::vector<std::string> tool_lines(const std::string& text);
void expect_clean_failure(const RunResult& r, const fs::path& output, const std::string& needle);

// ---- HDF5 ------------------------------------------------------------------------------------

class H5Writer {
 public:
  explicit H5Writer(const fs::path& path);
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;
  hid_t id() const { return id_; }

  void f32(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<float>& data);
  void f64(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<double>& data);
  void i32(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<int32_t>& data);
  void group(const std::string& name);
  void attr_i64(const std::string& name, int64_t value);
  void attr_f64(const std::string& name, double value);

 private:
  void write(const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
             const void* data, std::size_t n_elems);
  void attr(const std::string& name, hid_t file_type, hid_t mem_type, const void* value);
  hid_t id_ = -1;
};

class H5File {
 public:
  explicit H5File(const fs::path& path, bool writable = false);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  bool ok() const { return id_ >= 0; }
  hid_t id() const { return id_; }

 private:
  hid_t id_ = -1;
};

bool read_attr_i64(hid_t object, const char* name, int64_t* out);
bool read_attr_u64(hid_t object, const char* name, uint64_t* out);
bool read_attr_f64(hid_t object, const char* name, double* out);
bool read_attr_str(hid_t object, const char* name, std::string* out);
int64_t get_i64(hid_t object, const char* name);
double get_f64(hid_t object, const char* name);
std::string get_str(hid_t object, const char* name);

struct Tensor {
  std::vector<hsize_t> dims;
  std::vector<float> values;
  bool is_f32 = false;
};

Tensor read_tensor(hid_t file, const std::string& name);
std::vector<float> read_f32(hid_t file, const std::string& name, const std::vector<hsize_t>& dims);

bool same_bits(const std::vector<float>& a, const std::vector<float>& b);
bool same_bits(const Tensor& a, const Tensor& b);

// ---- tolerances ------------------------------------------------------------------------------

void check_tensor(const std::string& name, const std::vector<float>& tool, const std::vector<double>& fp64,
                  const std::vector<double>& fp32);

}  // namespace rw::test
