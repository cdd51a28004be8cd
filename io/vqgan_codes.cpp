// vqgan_codes.cpp: see vqgan_codes.h.
#include "io/vqgan_codes.h"

#include <hdf5.h>

#include "io/h5_file.h"
#include "io/params_io_internal.h"
#include "mpi/runtime.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  RW_H5_CHECK(H5Tset_size(type, value.empty() ? 1 : value.size()));
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(attr);
  RW_H5_CHECK(H5Awrite(attr, type, value.empty() ? "" : value.c_str()));
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

std::string read_string_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) return "";
  const hid_t attr = H5Aopen(object, name.c_str(), H5P_DEFAULT);
  const hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
  std::string value;
  // One fixed-length string: an array of them would overrun the buffer for one.
  const bool one = H5Sget_simple_extent_npoints(space) == 1;
  H5Sclose(space);
  if (one && H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type)) {
    std::vector<char> buffer(H5Tget_size(type) + 1, '\0');
    if (H5Aread(attr, type, buffer.data()) >= 0) value = buffer.data();
  }
  H5Tclose(type);
  H5Aclose(attr);
  return value;
}

}  // namespace

void write_vqgan_codes(const std::string& path, const VqganCodesHeader& header, const TokenRun& run,
                       const int32_t* local) {
  std::string joined;
  for (const std::string& s : header.sources) {
    if (s.find('\n') != std::string::npos) throw InputError("a source name holds a line break: '" + s + "'");
    joined += s + "\n";
  }
  write_file_atomically(path, [&](H5File& file) {
    write_attribute(file.id(), "codebook_size", H5T_STD_I64LE, H5T_NATIVE_INT64, &header.codebook_size);
    write_string_attribute(file.id(), "weights", header.weights);
    file.write_token_runs("/codes", {header.frames, header.size, header.size}, 0, {run}, ElementType::i32, local);
    // The names: one dataset, created collectively, written by rank 0 alone (independent I/O).
    const hsize_t n = joined.size();
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t ds = H5Dcreate2(file.id(), "/sources", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    RW_H5_CHECK(ds);
    if (mpi::world_rank() == 0 && n > 0)
      RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, joined.data()));
    H5Dclose(ds);
    H5Sclose(space);
  });
}

VqganCodesHeader read_vqgan_codes_header(const std::string& path) {
  H5File file = H5File::open_read(path);
  VqganCodesHeader h;
  if (!file.has_dataset("/codes")) throw InputError("'" + path + "' is not a VQGAN codes file (no /codes)");
  const DatasetInfo info = file.dataset_info("/codes");
  if (info.type != ElementType::i32 || info.dims.size() != 3 || info.dims[1] != info.dims[2] || info.dims[1] < 1)
    throw InputError("'" + path + "': /codes must be int32 [frames, s, s], is " + info.type_text + " " +
                     dims_text(info.dims));
  h.frames = info.dims[0];
  h.size = info.dims[1];
  if (!read_attribute(file.id(), "codebook_size", H5T_NATIVE_INT64, &h.codebook_size) || h.codebook_size < 1)
    throw InputError("'" + path + "' has no positive codebook_size attribute");
  h.weights = read_string_attribute(file.id(), "weights");
  if (file.has_dataset("/sources")) {
    const DatasetInfo s = file.dataset_info("/sources");
    std::string joined(s.dims.size() == 1 ? static_cast<std::size_t>(s.dims[0]) : 0, '\0');
    const hid_t ds = H5Dopen2(file.id(), "/sources", H5P_DEFAULT);
    if (!joined.empty() && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, joined.data()) < 0) joined.clear();
    H5Dclose(ds);
    std::size_t begin = 0;
    for (std::size_t i = 0; i < joined.size(); ++i)
      if (joined[i] == '\n') {
        h.sources.push_back(joined.substr(begin, i - begin));
        begin = i + 1;
      }
  }
  h.sources.resize(static_cast<std::size_t>(h.frames));
  return h;
}

std::vector<int32_t> read_vqgan_codes(const std::string& path, const VqganCodesHeader& header, const TokenRun& run) {
  H5File file = H5File::open_read(path);
  const int64_t per_frame = header.size * header.size;
  std::vector<int32_t> codes(static_cast<std::size_t>(run.count * per_frame));
  file.read_token_runs("/codes", {header.frames, header.size, header.size}, 0, {run}, ElementType::i32, codes.data());
  std::string error;
  for (std::size_t i = 0; i < codes.size() && error.empty(); ++i)
    if (codes[i] < 0 || codes[i] >= header.codebook_size)
      error = "'" + path + "': frame " + std::to_string(run.start + run.stride * (static_cast<int64_t>(i) / per_frame)) +
              " has code " + std::to_string(codes[i]) + ", outside [0, " + std::to_string(header.codebook_size) + ")";
  error = mpi::agree_on_error(error);
  if (!error.empty()) throw InputError(error);
  return codes;
}

}  // namespace rw::io
