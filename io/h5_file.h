// h5_file.h: parallel HDF5 files and token-sharded reads and writes.
// Every rank opens the same file collectively (MPI-IO driver) and reads or writes only its own
// tokens: a selection of token runs (layout.h) along one axis of a global tensor, all other
// axes whole. Runs are ascending, so the selected elements arrive in the local token order.
// Transfers larger than h5_chunk_bytes() (src/common/transfer_limits.h, 1 GiB) per rank are
// split into several collective calls of whole tokens, every rank making the same number.
// Errors: a file or dataset the user named that is missing or malformed is an InputError;
// a failing HDF5 call on a file already validated is fatal (RW_H5_CHECK).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/common/ring_layout.h"
#include "src/common/fatal.h"

#define RW_H5_CHECK(call)                                                                 \
  do {                                                                                    \
    if ((call) < 0) ::rw::fatal(#call, __FILE__, __LINE__, "HDF5 call failed");           \
  } while (0)

namespace rw::io {

enum class ElementType { f32, i32, other };

struct DatasetInfo {
  std::vector<int64_t> dims;
  ElementType type = ElementType::other;
  std::string type_text;  // for messages: "float32", "int32", "float64", ...
};

// RAII owner of an HDF5 file id.
class H5File {
 public:
  // Collective over the world. Throws InputError if the file cannot be opened as HDF5.
  static H5File open_read(const std::string& path);
  // Collective: creates (truncates) path.
  static H5File create(const std::string& path);
  H5File(H5File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) { other.id_ = -1; }
  H5File& operator=(H5File&&) = delete;
  H5File(const H5File&) = delete;
  ~H5File();
  void close();  // collective
  hid_t id() const { return id_; }
  const std::string& path() const { return path_; }

  bool has_dataset(const std::string& name) const;
  // Throws InputError if absent or not a simple dataspace.
  DatasetInfo dataset_info(const std::string& name) const;

  // Reads the token runs along token_axis of dataset `name` (global dims `dims`) into out,
  // which holds the selection in row-major order. Collective.
  void read_token_runs(const std::string& name, const std::vector<int64_t>& dims, int token_axis,
                       const std::vector<TokenRun>& runs, ElementType type, void* out) const;
  // Creates dataset `name` with global dims and writes this rank's token runs. Collective.
  void write_token_runs(const std::string& name, const std::vector<int64_t>& dims, int token_axis,
                        const std::vector<TokenRun>& runs, ElementType type, const void* data);
  // Creates a scalar float64 dataset; every rank passes the same value. Collective.
  void write_scalar(const std::string& name, double value);
  // Scalar uint64 datasets (intermediate groups created). Write: collective, same value.
  void write_scalar_u64(const std::string& name, uint64_t value);
  uint64_t read_scalar_u64(const std::string& name) const;

 private:
  H5File(hid_t id, std::string path) : id_(id), path_(std::move(path)) {}
  hid_t id_ = -1;
  std::string path_;
};

std::string dims_text(const std::vector<int64_t>& dims);  // "[2, 64, 4, 16]"

// H5Dread/H5Dwrite calls read_token_runs and write_token_runs have made in this process (tests).
std::uint64_t token_run_transfer_calls();

// Collective: creates path + ".tmp", lets `fill` write it, closes it and renames it to path
// (rank 0) once every rank's part is in. A fatal error anywhere removes the temporary file;
// if it cannot be created, or the rename fails, every rank throws the same InputError.
void write_file_atomically(const std::string& path, const std::function<void(H5File&)>& fill);

// fsync of a file or directory (best effort; used before and after an atomic rename).
void sync_path(const std::string& path);

// The last step of a one-process atomic write: the closed temporary `tmp` fsync'd and renamed
// to `path`, then its directory fsync'd; `tmp` leaves the fatal-error cleanup list either way.
// A failed rename removes `tmp` and throws InputError naming both.
void commit_temporary_file(const std::string& tmp, const std::string& path);

// Turns off HDF5's own error-stack printing (we print one clear line instead).
void silence_hdf5_errors();

}  // namespace rw::io
