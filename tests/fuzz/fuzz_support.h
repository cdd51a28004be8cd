// fuzz_support.h: what every fuzz target shares. A target is one LLVMFuzzerTestOneInput; it
// runs under libFuzzer (RINGWORLD_FUZZ=ON, clang) or under corpus_driver.cpp, a plain main that
// replays the committed corpus (tests/fuzz/corpus/<target>/) in every build, g++ included.
//
// What counts as a finding: a crash, a sanitizer report, rw::fatal() reached from input bytes
// (bad input must be an InputError, never a fatal error), an exception other than InputError,
// and an HDF5 object left open after a reader returned or threw.
#pragma once
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

namespace rw::fuzz {

// MPI_Init (one rank, no mpirun needed) and a fatal-error handler that aborts with the message,
// so libFuzzer reports it as a crash with its stack. Idempotent.
void init_mpi_once(int* argc, char*** argv);

// Writes the bytes to a fresh file (a new name for every input: HDF5 keeps a file open while any
// object in it is, and would hand back the previous input's contents under a reused name) and
// removes it on destruction.
class TempFile {
 public:
  TempFile(const uint8_t* data, std::size_t size, const char* suffix);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An input the reader refused, as it should: printed when RW_FUZZ_VERBOSE is set (triage).
void refused(const std::exception& e);

// Aborts (a finding) when HDF5 objects are still open: a reader leaked a handle on some path.
void check_no_open_hdf5_objects(const char* where);

// Multi-file inputs (a model directory: config.json + weights): one fuzz input holds the files
// back to back, separated by kPartSeparator (a line no JSON, msgpack or safetensors header of the
// seeds contains). split_parts returns the pieces (one, when there is no separator); join_parts
// is its inverse, for the seed writers.
constexpr char kPartSeparator[] = "\n--rw-fuzz-part--\n";
std::vector<std::string> split_parts(const uint8_t* data, std::size_t size);
std::string join_parts(const std::vector<std::string>& parts);

// Writes `bytes` to `path` (a file inside a directory the target made); aborts if it cannot.
void write_file(const std::string& path, const std::string& bytes);

// A fresh empty directory (removed with everything in it on destruction), for multi-file inputs.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Declared sizes a reader is asked to allocate for are capped in the targets: a valid file may
// declare a tensor of any size (HDF5 fills unwritten data), and allocating what it declares is
// the tools' documented behaviour, not a defect. 2^22 elements (16 MiB of float32).
constexpr int64_t kMaxElements = int64_t{1} << 22;

}  // namespace rw::fuzz
