// h5_file.cpp
#include "io/h5_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "io/input_file.h"
#include "mpi/native.h"
#include "mpi/runtime.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/common/transfer_limits.h"

namespace rw::io {
namespace {

hid_t memory_type(ElementType t) {
  switch (t) {
    case ElementType::f32: return H5T_NATIVE_FLOAT;
    case ElementType::i32: return H5T_NATIVE_INT32;
    default: RW_FAIL("unsupported element type");
  }
}

hid_t file_type(ElementType t) {
  switch (t) {
    case ElementType::f32: return H5T_IEEE_F32LE;
    case ElementType::i32: return H5T_STD_I32LE;
    default: RW_FAIL("unsupported element type");
  }
}

hid_t mpio_access_list() {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  RW_H5_CHECK(fapl);
  RW_H5_CHECK(H5Pset_fapl_mpio(fapl, mpi::world_comm(), MPI_INFO_NULL));
  return fapl;
}

hid_t collective_transfer_list() {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  RW_H5_CHECK(dxpl);
  RW_H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
  return dxpl;
}

// File dataspace of dims with the union of token runs selected along token_axis.
hid_t select_runs(const std::vector<int64_t>& dims, int token_axis, const std::vector<TokenRun>& runs) {
  const int rank = static_cast<int>(dims.size());
  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  hid_t space = H5Screate_simple(rank, hdims.data(), nullptr);
  RW_H5_CHECK(space);
  RW_H5_CHECK(H5Sselect_none(space));
  for (const TokenRun& run : runs) {
    if (run.count == 0) continue;
    std::vector<hsize_t> start(rank, 0), stride(rank, 1), count(hdims), block(rank, 1);
    start[token_axis] = static_cast<hsize_t>(run.start);
    stride[token_axis] = static_cast<hsize_t>(run.stride);
    count[token_axis] = static_cast<hsize_t>(run.count);
    RW_H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_OR, start.data(), stride.data(), count.data(),
                                    block.data()));
  }
  return space;
}

// The runs' tokens at selection positions [first, last) (positions count the selected tokens
// in run order, which is the order they have in memory).
std::vector<TokenRun> clip_runs(const std::vector<TokenRun>& runs, int64_t first, int64_t last) {
  std::vector<TokenRun> clipped;
  int64_t position = 0;
  for (const TokenRun& run : runs) {
    const int64_t lo = std::max(first, position), hi = std::min(last, position + run.count);
    if (lo < hi) clipped.push_back({run.start + (lo - position) * run.stride, hi - lo, run.stride});
    position += run.count;
  }
  return clipped;
}

std::uint64_t g_token_transfer_calls = 0;

// Reads or writes (`transfer(mem_space, file_space)`, one H5Dread or H5Dwrite) this rank's token
// runs along token_axis of a dataset of global dims, in pieces of whole tokens of at most
// h5_chunk_bytes() (at least one token): MPI-IO under HDF5 moves an int-counted number of bytes
// per rank and call on some stacks. The transfers are collective, so every rank makes the same
// number of calls, the largest over the ranks; a rank with fewer pieces takes part in the others
// with an empty selection. The memory buffer holds the selection in row-major order: the
// dataset's shape with the token axis cut to the selected tokens, of which a piece is a
// hyperslab along that axis.
template <class Transfer>
void transfer_token_runs(const std::vector<int64_t>& dims, int token_axis, const std::vector<TokenRun>& runs,
                         Transfer transfer) {
  const int rank = static_cast<int>(dims.size());
  RW_CHECK(token_axis >= 0 && token_axis < rank, "token axis outside the dataset's dimensions");
  int64_t n_tokens = 0, per_token = 1;
  for (const TokenRun& run : runs) n_tokens += run.count;
  for (int a = 0; a < rank; ++a)
    if (a != token_axis) per_token *= dims[a];
  const std::size_t token_bytes = static_cast<std::size_t>(per_token) * sizeof(float);  // f32 and i32 alike
  const std::size_t chunk = h5_chunk_bytes();
  const int64_t tokens_per_call = token_bytes > 0 ? std::max<int64_t>(1, static_cast<int64_t>(chunk / token_bytes))
                                                  : std::max<int64_t>(1, n_tokens);
  const int64_t my_calls = static_cast<int64_t>(piece_count(static_cast<std::size_t>(n_tokens),
                                                            static_cast<std::size_t>(tokens_per_call)));
  const int64_t calls = std::max<int64_t>(1, static_cast<int64_t>(mpi::allreduce_max(static_cast<double>(my_calls))));

  std::vector<hsize_t> mem_dims(dims.begin(), dims.end());
  mem_dims[token_axis] = static_cast<hsize_t>(n_tokens);
  for (int64_t call = 0; call < calls; ++call) {
    const int64_t first = std::min(n_tokens, call * tokens_per_call);
    const int64_t last = std::min(n_tokens, first + tokens_per_call);
    hid_t mem_space = H5Screate_simple(rank, mem_dims.data(), nullptr);
    RW_H5_CHECK(mem_space);
    hid_t file_space = select_runs(dims, token_axis, clip_runs(runs, first, last));
    if (last > first) {
      std::vector<hsize_t> start(rank, 0), count(mem_dims);
      start[token_axis] = static_cast<hsize_t>(first);
      count[token_axis] = static_cast<hsize_t>(last - first);
      RW_H5_CHECK(H5Sselect_hyperslab(mem_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
    } else {
      RW_H5_CHECK(H5Sselect_none(mem_space));
    }
    ++g_token_transfer_calls;
    transfer(mem_space, file_space);
    H5Sclose(file_space);
    H5Sclose(mem_space);
  }
}

}  // namespace

void sync_path(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

void commit_temporary_file(const std::string& tmp, const std::string& path) {
  sync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string error = "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno);
    std::remove(tmp.c_str());
    remove_cleanup_path(tmp);
    throw InputError(error);
  }
  remove_cleanup_path(tmp);
  const std::size_t slash = path.find_last_of('/');
  sync_path(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

H5File H5File::open_read(const std::string& path) {
  check_input_file(path, "file");  // a directory or missing file: one line, before MPI-IO prints pages
  hid_t fapl = mpio_access_list();
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (id < 0) throw InputError("cannot open '" + path + "' as an HDF5 file (missing, unreadable or not HDF5)");
  return H5File(id, path);
}

H5File H5File::create(const std::string& path) {
  hid_t fapl = mpio_access_list();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (id < 0) throw InputError("cannot create HDF5 file '" + path + "'");
  return H5File(id, path);
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

void H5File::close() {
  if (id_ >= 0) RW_H5_CHECK(H5Fclose(id_));
  id_ = -1;
}

bool H5File::has_dataset(const std::string& name) const {
  if (H5Lexists(id_, name.c_str(), H5P_DEFAULT) <= 0) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name(id_, name.c_str(), &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

DatasetInfo H5File::dataset_info(const std::string& name) const {
  if (!has_dataset(name)) throw InputError("'" + path_ + "' has no dataset '" + name + "'");
  hid_t ds = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  if (ds < 0) throw InputError("cannot open dataset '" + name + "' in '" + path_ + "'");
  DatasetInfo info;
  hid_t space = H5Dget_space(ds);
  hid_t type = H5Dget_type(ds);
  int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (rank >= 0) {
    std::vector<hsize_t> dims(rank);
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    info.dims.assign(dims.begin(), dims.end());
  }
  H5T_class_t cls = H5Tget_class(type);
  std::size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) {
    info.type_text = "float" + std::to_string(8 * size);
    if (size == 4) info.type = ElementType::f32;
  } else if (cls == H5T_INTEGER) {
    bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    info.type_text = std::string(is_signed ? "int" : "uint") + std::to_string(8 * size);
    if (size == 4 && is_signed) info.type = ElementType::i32;
  } else {
    info.type_text = "non-numeric";
  }
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(ds);
  if (rank < 0) throw InputError("dataset '" + name + "' in '" + path_ + "' has no simple shape");
  return info;
}

void H5File::read_token_runs(const std::string& name, const std::vector<int64_t>& dims, int token_axis,
                             const std::vector<TokenRun>& runs, ElementType type, void* out) const {
  hid_t ds = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  RW_H5_CHECK(ds);
  hid_t dxpl = collective_transfer_list();
  // A read that fails on the file's bytes (a damaged chunk, a filter that is not there) is bad
  // input, not a defect: every call still takes part in the collective, then the error is thrown
  // with the handles closed (the tools agree on it across ranks).
  bool read_ok = true;
  transfer_token_runs(dims, token_axis, runs, [&](hid_t mem_space, hid_t file_space) {
    if (H5Dread(ds, memory_type(type), mem_space, file_space, dxpl, out) < 0) read_ok = false;
  });
  H5Pclose(dxpl);
  H5Dclose(ds);
  if (!read_ok)
    throw InputError("cannot read dataset '" + name + "' in '" + path_ +
                     "': its data is damaged or stored with a filter this HDF5 does not have");
}

void H5File::write_token_runs(const std::string& name, const std::vector<int64_t>& dims, int token_axis,
                              const std::vector<TokenRun>& runs, ElementType type, const void* data) {
  std::vector<hsize_t> hdims(dims.begin(), dims.end());
  hid_t whole = H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr);
  RW_H5_CHECK(whole);
  hid_t ds = H5Dcreate2(id_, name.c_str(), file_type(type), whole, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(ds);
  hid_t dxpl = collective_transfer_list();
  transfer_token_runs(dims, token_axis, runs, [&](hid_t mem_space, hid_t file_space) {
    RW_H5_CHECK(H5Dwrite(ds, memory_type(type), mem_space, file_space, dxpl, data));
  });
  H5Pclose(dxpl);
  H5Sclose(whole);
  H5Dclose(ds);
}

std::uint64_t token_run_transfer_calls() { return g_token_transfer_calls; }

void H5File::write_scalar(const std::string& name, double value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t ds = H5Dcreate2(id_, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(ds);
  RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value));
  H5Dclose(ds);
  H5Sclose(space);
}

void H5File::write_scalar_u64(const std::string& name, uint64_t value) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  RW_H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t ds = H5Dcreate2(id_, name.c_str(), H5T_STD_U64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(ds);
  RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value));
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
}

uint64_t H5File::read_scalar_u64(const std::string& name) const {
  hid_t ds = H5Dopen2(id_, name.c_str(), H5P_DEFAULT);
  if (ds < 0) throw InputError("'" + path_ + "' has no dataset '" + name + "'");
  uint64_t value = 0;
  const herr_t rc = H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
  H5Dclose(ds);
  if (rc < 0) throw InputError("cannot read '" + name + "' in '" + path_ + "'");
  return value;
}

// Collective: creates path + ".tmp", lets `fill` write datasets, closes it and renames it to
// path (rank 0) once every rank's part is in. On a fatal error anywhere the temporary file is
// removed (cleanup path); if the file cannot be created every rank throws the same InputError.
void write_file_atomically(const std::string& path, const std::function<void(H5File&)>& fill) {
  silence_hdf5_errors();
  const std::string tmp = path + ".tmp";
  add_cleanup_path(tmp);
  std::string error;
  std::optional<H5File> file;
  try {
    file.emplace(H5File::create(tmp));
  } catch (const InputError& e) {
    error = e.what();
  }
  error = mpi::agree_on_error(error);
  if (!error.empty()) {
    file.reset();
    remove_cleanup_path(tmp);
    if (mpi::world_rank() == 0) std::remove(tmp.c_str());
    throw InputError(error);
  }
  fill(*file);
  RW_H5_CHECK(H5Fflush(file->id(), H5F_SCOPE_GLOBAL));
  file->close();  // collective: every rank's part is written after this
  mpi::barrier();
  std::string rename_error;
  if (mpi::world_rank() == 0) {
    // Durable before visible: the data reaches the disk, then the new name, then the directory.
    sync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      rename_error = "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno);
      std::remove(tmp.c_str());
    } else {
      const std::size_t slash = path.find_last_of('/');
      sync_path(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
    }
  }
  remove_cleanup_path(tmp);
  rename_error = mpi::agree_on_error(rename_error);
  if (!rename_error.empty()) throw InputError(rename_error);
}

}  // namespace rw::io
