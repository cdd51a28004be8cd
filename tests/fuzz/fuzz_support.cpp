// fuzz_support.cpp
#include "tests/fuzz/fuzz_support.h"

#include <hdf5.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "mpi/runtime.h"
#include "src/common/fatal.h"

namespace rw::fuzz {
namespace {

void abort_with_message(const std::string& message) {
  std::fprintf(stderr, "fuzz: rw::fatal reached from input bytes: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

}  // namespace

void init_mpi_once(int* argc, char*** argv) {
  static rw::mpi::Runtime* runtime = nullptr;  // never finalised: the process ends with the fuzzer
  if (runtime) return;
  // A singleton MPI process as root (CI containers) needs these, as mpirun needs its flags.
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  // Open MPI's own handlers for SIGSEGV/SIGABRT/... would print and exit before libFuzzer could
  // save the input: leave the signals to the sanitizers and libFuzzer.
  setenv("OMPI_MCA_opal_signal", "", 0);
  // One process, no peers: no orted to fork, no transports to probe (Open MPI's default start-up
  // spends most of a second on both; tests/CMakeLists.txt says the same of the tools' tests).
  setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  setenv("OMPI_MCA_pml", "ob1", 0);
  setenv("OMPI_MCA_btl", "self", 0);
  runtime = new rw::mpi::Runtime(*argc, *argv);
  rw::set_fatal_handler(&abort_with_message);
}

TempFile::TempFile(const uint8_t* data, std::size_t size, const char* suffix) {
  static std::atomic<long> counter{0};
  path_ = temp_dir() + "/rw_fuzz_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + suffix;
  std::FILE* f = std::fopen(path_.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
    std::abort();
  }
}

TempFile::~TempFile() { std::remove(path_.c_str()); }

std::vector<std::string> split_parts(const uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string separator = kPartSeparator;
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (std::size_t at; (at = bytes.find(separator, begin)) != std::string::npos; begin = at + separator.size())
    parts.push_back(bytes.substr(begin, at - begin));
  parts.push_back(bytes.substr(begin));
  return parts;
}

std::string join_parts(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? kPartSeparator : "") + parts[i];
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

TempDir::TempDir() {
  static std::atomic<long> counter{0};
  path_ = temp_dir() + "/rw_fuzz_dir_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (!std::filesystem::create_directory(path_, ec)) {
    std::fprintf(stderr, "fuzz: cannot create %s\n", path_.c_str());
    std::abort();
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void refused(const std::exception& e) {
  static const bool verbose = std::getenv("RW_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "fuzz: refused: %s\n", e.what());
}

void check_no_open_hdf5_objects(const char* where) {
  const ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open > 0) {
    std::fprintf(stderr, "fuzz: %s left %zd HDF5 object(s) open\n", where, static_cast<std::size_t>(open));
    std::abort();
  }
}

}  // namespace rw::fuzz
