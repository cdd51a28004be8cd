// param_file_reader.cpp
#include "io/param_file_reader.h"

#include "io/h5_file.h"
#include "io/params_io_internal.h"
#include "src/common/input_error.h"

namespace rw::io {

ParamFileReader::ParamFileReader(const std::string& path) : path_(path) {
  silence_hdf5_errors();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw InputError("cannot open '" + path + "' as an HDF5 file");
  file_ = file;
}

ParamFileReader::~ParamFileReader() {
  if (file_ >= 0) H5Fclose(file_);
}

model::LlamaConfig ParamFileReader::model_config() const {
  model::LlamaConfig c;
  for (const auto& f : model::config_fields()) {
    const bool ok = f.integer ? read_attribute(file_, f.name, H5T_NATIVE_INT64, &(c.*f.integer))
                              : read_attribute(file_, f.name, H5T_NATIVE_DOUBLE, &(c.*f.real));
    if (!ok && f.optional && H5Aexists(file_, f.name) == 0) continue;  // absent: 0 (the default)
    if (!ok)
      throw InputError("'" + path_ + "' has no scalar " + std::string(f.integer ? "integer" : "numeric") +
                       " root attribute '" + f.name + "' (model config): not a ringworld parameter file or checkpoint");
  }
  try {
    c.validate();
  } catch (const InputError& e) {
    throw InputError("'" + path_ + "': " + e.what());
  }
  return c;
}

bool ParamFileReader::int_attribute(const std::string& name, int64_t* out) const {
  return read_attribute(file_, name.c_str(), H5T_NATIVE_INT64, out);
}

bool ParamFileReader::string_attribute(const std::string& name, std::string* out) const {
  if (H5Aexists(file_, name.c_str()) <= 0) return false;
  hid_t attr = H5Aopen(file_, name.c_str(), H5P_DEFAULT);
  if (attr < 0) return false;
  hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
  // One fixed-length string: an array of them would overrun the buffer for one.
  bool ok = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type) && H5Sget_simple_extent_npoints(space) == 1;
  H5Sclose(space);
  if (ok) {
    std::string buffer(H5Tget_size(type), '\0');
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, buffer.size());
    ok = H5Aread(attr, mem, buffer.data()) >= 0;
    H5Tclose(mem);
    *out = buffer.c_str();
  }
  H5Tclose(type);
  H5Aclose(attr);
  return ok;
}

bool ParamFileReader::has_link(const std::string& name) const { return H5Lexists(file_, name.c_str(), H5P_DEFAULT) > 0; }

std::vector<float> ParamFileReader::read_tensor(const std::string& dataset, const std::vector<int64_t>& shape) const {
  const std::string where = "tensor '" + dataset + "' in '" + path_ + "'";
  // H5Lexists needs every group above the name to exist: check the path one link at a time.
  for (std::size_t slash = dataset.find('/', 1);; slash = dataset.find('/', slash + 1)) {
    const std::string prefix = dataset.substr(0, slash);
    if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0)
      throw InputError("'" + path_ + "' has no tensor '" + dataset + "'");
    if (slash == std::string::npos) break;
  }
  hid_t ds = H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT);
  if (ds < 0) throw InputError(where + " is not a dataset");
  hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  const bool is_f32 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  H5Sclose(space);
  H5Tclose(type);
  const std::vector<int64_t> found(dims.begin(), dims.end());
  if (!is_f32 || found != shape) {
    H5Dclose(ds);
    throw InputError(where + (is_f32 ? " has shape " + dims_text(found) + ", the model config needs " + dims_text(shape)
                                     : std::string(" is not float32")));
  }
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<float> values(static_cast<std::size_t>(count));
  if (count > 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    H5Dclose(ds);
    throw InputError("cannot read " + where + " (a damaged file?)");
  }
  uint64_t stored = 0;
  const bool has_checksum = read_attribute(ds, "checksum", H5T_NATIVE_UINT64, &stored);
  H5Dclose(ds);
  if (has_checksum && stored != tensor_checksum_part(values.data(), 0, count))
    throw InputError(where + " fails its checksum: the file is corrupted (or was modified after it was written)");
  return values;
}

}  // namespace rw::io
