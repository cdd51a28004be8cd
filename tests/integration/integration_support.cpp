// integration_support.cpp: the helpers of integration_support.h (what each does: see there).
#include "tests/integration/integration_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "tests/test_support.h"

#ifndef RW_MPIEXEC
#error "RW_MPIEXEC (the mpirun command line with its flags) must be defined"
#endif
#ifndef RW_RINGWORLD_BIN
#error "RW_RINGWORLD_BIN (path of the ringworld binary) must be defined"
#endif

namespace rw::test {

// ---- files and commands ----------------------------------------------------------------------

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ScratchDir::ScratchDir(const std::string& name) {
  path = fs::current_path() / (name + "_" + std::to_string(getpid()));
  fs::remove_all(path);
  fs::create_directories(path);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string show(const RunResult& r) {
  return "command: " + r.command + "\nexit code: " + std::to_string(r.exit_code) + "\nstdout:\n" + r.stdout_text +
         "\nstderr:\n" + r.stderr_text;
}

std::string ringworld_command(int np, const std::string& args) {
  return std::string(RW_MPIEXEC) + " -np " + std::to_string(np) + " " + RW_RINGWORLD_BIN + " " + args;
}

RunResult run_ringworld(int np, const std::string& args, int timeout_s, const fs::path& out_log,
                        const fs::path& err_log) {
  RunResult r;
  r.command = "timeout " + std::to_string(timeout_s) + " " + ringworld_command(np, args);
  const int status = std::system((r.command + " >" + quoted(out_log) + " 2>" + quoted(err_log)).c_str());
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.stdout_text = slurp(out_log);
  r.stderr_text = slurp(err_log);
  return r;
}

std::vector<std::string> tool_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("ringworld", 0) == 0) lines.push_back(line);
  return lines;
}

void expect_clean_failure(const RunResult& r, const fs::path& output, const std::string& needle) {
  INFO("command: " << r.command);
  INFO("stderr:\n" << r.stderr_text);
  CHECK(r.exit_code != 124);  // timed out: some rank hung
  CHECK(r.exit_code != 0);
  const auto lines = tool_lines(r.stderr_text);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("error") != std::string::npos);
  CHECK(lines[0].find(needle) != std::string::npos);
  CHECK(r.stderr_text.find("fatal") == std::string::npos);
  CHECK(r.stderr_text.find("MPI_ABORT") == std::string::npos);
  CHECK_FALSE(fs::exists(output));
  CHECK_FALSE(fs::exists(output.string() + ".tmp"));
}

// ---- HDF5 ------------------------------------------------------------------------------------

H5Writer::H5Writer(const fs::path& path) {
  id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(id_ >= 0);
}

H5Writer::~H5Writer() {
  if (id_ >= 0) H5Fclose(id_);
}

void H5Writer::f32(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<float>& data) {
  write(name, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data.data(), data.size());
}
void H5Writer::f64(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<double>& data) {
  write(name, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data.data(), data.size());
}
void H5Writer::i32(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<int32_t>& data) {
  write(name, dims, H5T_STD_I32LE, H5T_NATIVE_INT32, data.data(), data.size());
}

void H5Writer::group(const std::string& name) {
  hid_t g = H5Gcreate2(id_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(g >= 0);
  H5Gclose(g);
}

void H5Writer::attr_i64(const std::string& name, int64_t value) {
  attr(name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}
void H5Writer::attr_f64(const std::string& name, double value) {
  attr(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void H5Writer::write(const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
                     const void* data, std::size_t n_elems) {
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  REQUIRE(count == n_elems);
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  REQUIRE(space >= 0);
  hid_t ds = H5Dcreate2(id_, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(ds >= 0);
  herr_t status = H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(ds);
  H5Sclose(space);
  REQUIRE(status >= 0);
}

void H5Writer::attr(const std::string& name, hid_t file_type, hid_t mem_type, const void* value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(id_, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  herr_t status = H5Awrite(a, mem_type, value);
  H5Aclose(a);
  H5Sclose(space);
  REQUIRE(status >= 0);
}

H5File::H5File(const fs::path& path, bool writable) {
  id_ = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

namespace {

bool read_attr(hid_t object, const char* name, hid_t mem_type, void* out) {
  if (H5Aexists(object, name) <= 0) return false;
  hid_t a = H5Aopen(object, name, H5P_DEFAULT);
  const bool ok = a >= 0 && H5Aread(a, mem_type, out) >= 0;
  if (a >= 0) H5Aclose(a);
  return ok;
}

}  // namespace

bool read_attr_i64(hid_t object, const char* name, int64_t* out) {
  return read_attr(object, name, H5T_NATIVE_INT64, out);
}
bool read_attr_u64(hid_t object, const char* name, uint64_t* out) {
  return read_attr(object, name, H5T_NATIVE_UINT64, out);
}
bool read_attr_f64(hid_t object, const char* name, double* out) {
  return read_attr(object, name, H5T_NATIVE_DOUBLE, out);
}

// A fixed-length string attribute (what the tool writes); a variable-length one reads as false.
bool read_attr_str(hid_t object, const char* name, std::string* out) {
  if (H5Aexists(object, name) <= 0) return false;
  hid_t a = H5Aopen(object, name, H5P_DEFAULT);
  hid_t type = H5Aget_type(a);
  bool ok = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
  if (ok) {
    std::string buffer(H5Tget_size(type), '\0');
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, buffer.size());
    ok = H5Aread(a, mem, buffer.data()) >= 0;
    H5Tclose(mem);
    *out = buffer.c_str();
  }
  H5Tclose(type);
  H5Aclose(a);
  return ok;
}

int64_t get_i64(hid_t object, const char* name) {
  int64_t v = -1;
  INFO("integer attribute '" << name << "'");
  CHECK(read_attr_i64(object, name, &v));
  return v;
}
double get_f64(hid_t object, const char* name) {
  double v = -1;
  INFO("numeric attribute '" << name << "'");
  CHECK(read_attr_f64(object, name, &v));
  return v;
}
std::string get_str(hid_t object, const char* name) {
  std::string v;
  INFO("string attribute '" << name << "'");
  CHECK(read_attr_str(object, name, &v));
  return v;
}

Tensor read_tensor(hid_t file, const std::string& name) {
  Tensor t;
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  REQUIRE(ds >= 0);
  hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
  const int rank = H5Sget_simple_extent_ndims(space);
  t.dims.resize(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, t.dims.data(), nullptr);
  t.is_f32 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
  hsize_t count = 1;
  for (hsize_t d : t.dims) count *= d;
  t.values.resize(count);
  CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.values.data()) >= 0);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(ds);
  return t;
}

std::vector<float> read_f32(hid_t file, const std::string& name, const std::vector<hsize_t>& dims) {
  INFO("dataset '" << name << "'");
  REQUIRE(H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0);
  Tensor t = read_tensor(file, name);
  CHECK(t.is_f32);
  CHECK(t.dims == dims);
  if (t.dims != dims) return {};
  return std::move(t.values);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_bits(const Tensor& a, const Tensor& b) { return a.dims == b.dims && same_bits(a.values, b.values); }

// ---- tolerances ------------------------------------------------------------------------------

void check_tensor(const std::string& name, const std::vector<float>& tool, const std::vector<double>& fp64,
                  const std::vector<double>& fp32) {
  REQUIRE(tool.size() == fp64.size());
  REQUIRE(fp32.size() == fp64.size());
  bool finite = true;
  for (float x : tool) finite = finite && std::isfinite(x);
  const double err_tool = max_abs_error(tool, fp64), err_fp32 = max_abs_error(fp32, fp64);
  const double ref_max = max_abs(fp64);
  const double bound = 2 * err_fp32 + 8 * FLT_EPSILON * ref_max;  // the rule: tests/test_support.h
  INFO(name << ": max|tool-fp64| = " << err_tool << ", max|fp32-fp64| = " << err_fp32 << ", max|fp64| = " << ref_max
            << ", bound = " << bound);
  CHECK(finite);
  CHECK(err_tool <= bound);
}

}  // namespace rw::test
