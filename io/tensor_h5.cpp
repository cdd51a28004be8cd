// tensor_h5.cpp: see tensor_h5.h.
#include "io/tensor_h5.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/h5_file.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

void write_attr(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, hid_t space, const void* value) {
  const hid_t attr = H5Acreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_CHECK(attr >= 0, "cannot create attribute " + name + " (written twice?)");
  RW_H5_CHECK(H5Awrite(attr, mem_type, value));
  H5Aclose(attr);
}

}  // namespace

TensorH5Writer::TensorH5Writer(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  silence_hdf5_errors();
  add_cleanup_path(tmp_);
  const hid_t file = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    remove_cleanup_path(tmp_);
    throw InputError("cannot create '" + tmp_ + "' (is the directory writable?)");
  }
  file_ = file;
}

TensorH5Writer::~TensorH5Writer() {
  if (file_ < 0) return;
  H5Fclose(file_);
  std::remove(tmp_.c_str());
  remove_cleanup_path(tmp_);
}

void TensorH5Writer::attribute(const std::string& name, int64_t value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  write_attr(file_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, &value);
  H5Sclose(space);
}

void TensorH5Writer::attribute(const std::string& name, double value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  write_attr(file_, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, &value);
  H5Sclose(space);
}

void TensorH5Writer::attribute(const std::string& name, const std::vector<int64_t>& value) {
  const hsize_t n = value.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  write_attr(file_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, value.data());
  H5Sclose(space);
}

void TensorH5Writer::attribute(const std::string& name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  RW_H5_CHECK(H5Tset_size(type, value.empty() ? 1 : value.size()));
  const hid_t space = H5Screate(H5S_SCALAR);
  write_attr(file_, name, type, type, space, value.empty() ? "" : value.c_str());
  H5Sclose(space);
  H5Tclose(type);
}

void TensorH5Writer::write_f32(const std::string& dataset, const std::vector<int64_t>& shape, const float* data) {
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  RW_H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  RW_H5_CHECK(space);
  const hid_t ds = H5Dcreate2(file_, dataset.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  RW_CHECK(ds >= 0, "cannot create dataset " + dataset + " (written twice?)");
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  if (count > 0) RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
}

void TensorH5Writer::finish() {
  RW_H5_CHECK(H5Fclose(file_));
  file_ = -1;
  commit_temporary_file(tmp_, path_);
}

TensorH5Reader::TensorH5Reader(const std::string& path) : path_(path) {
  silence_hdf5_errors();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw InputError("cannot open '" + path + "' as HDF5 (missing, unreadable or not an HDF5 file)");
  file_ = file;
}

TensorH5Reader::~TensorH5Reader() {
  if (file_ >= 0) H5Fclose(file_);
}

bool TensorH5Reader::has_attribute(const std::string& name) const { return H5Aexists(file_, name.c_str()) > 0; }

namespace {

// Opens a root attribute of `expected` class; returns its id and element count.
hid_t open_attr(hid_t file, const std::string& path, const std::string& name, H5T_class_t expected, const char* what,
                hssize_t* count) {
  if (H5Aexists(file, name.c_str()) <= 0) throw InputError("'" + path + "' has no attribute '" + name + "'");
  const hid_t attr = H5Aopen(file, name.c_str(), H5P_DEFAULT);
  if (attr < 0) throw InputError("'" + path + "': cannot open attribute '" + name + "' (a damaged file?)");
  const hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
  const bool ok = H5Tget_class(type) == expected;
  *count = H5Sget_simple_extent_npoints(space);
  H5Tclose(type);
  H5Sclose(space);
  if (!ok) {
    H5Aclose(attr);
    throw InputError("'" + path + "': attribute '" + name + "' is not " + what);
  }
  return attr;
}

}  // namespace

int64_t TensorH5Reader::int_attribute(const std::string& name) const {
  hssize_t n = 0;
  const hid_t attr = open_attr(file_, path_, name, H5T_INTEGER, "an integer", &n);
  int64_t v = 0;
  const herr_t rc = n == 1 ? H5Aread(attr, H5T_NATIVE_INT64, &v) : -1;
  H5Aclose(attr);
  if (rc < 0) throw InputError("'" + path_ + "': attribute '" + name + "' is not one integer");
  return v;
}

double TensorH5Reader::real_attribute(const std::string& name) const {
  hssize_t n = 0;
  const hid_t attr = open_attr(file_, path_, name, H5T_FLOAT, "a number", &n);
  double v = 0;
  const herr_t rc = n == 1 ? H5Aread(attr, H5T_NATIVE_DOUBLE, &v) : -1;
  H5Aclose(attr);
  if (rc < 0) throw InputError("'" + path_ + "': attribute '" + name + "' is not one number");
  return v;
}

std::vector<int64_t> TensorH5Reader::int_list_attribute(const std::string& name) const {
  hssize_t n = 0;
  const hid_t attr = open_attr(file_, path_, name, H5T_INTEGER, "a list of integers", &n);
  std::vector<int64_t> v(static_cast<std::size_t>(n > 0 && n <= 4096 ? n : 0));  // sized after the check
  const herr_t rc = n > 0 && n <= 4096 ? H5Aread(attr, H5T_NATIVE_INT64, v.data()) : -1;
  H5Aclose(attr);
  if (rc < 0) throw InputError("'" + path_ + "': attribute '" + name + "' is not a list of 1 to 4096 integers");
  return v;
}

std::string TensorH5Reader::string_attribute(const std::string& name) const {
  hssize_t n = 0;
  const hid_t attr = open_attr(file_, path_, name, H5T_STRING, "a string", &n);
  const hid_t type = H5Aget_type(attr);
  std::string v;
  herr_t rc = -1;
  if (n == 1 && !H5Tis_variable_str(type)) {
    std::vector<char> buffer(H5Tget_size(type) + 1, '\0');
    rc = H5Aread(attr, type, buffer.data());
    v = buffer.data();
  }
  H5Tclose(type);
  H5Aclose(attr);
  if (rc < 0) throw InputError("'" + path_ + "': attribute '" + name + "' is not a fixed-length string");
  return v;
}

std::vector<std::string> TensorH5Reader::dataset_names(const std::string& group) const {
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) <= 0) throw InputError("'" + path_ + "' has no group " + group);
  const hid_t g = H5Gopen2(file_, group.c_str(), H5P_DEFAULT);
  if (g < 0) throw InputError("'" + path_ + "': " + group + " is not a group");
  // A damaged file fails these calls: an input error naming the file, not a fatal one.
  const auto damaged = [&] {
    H5Gclose(g);
    return InputError("'" + path_ + "': cannot list the links of " + group + " (a damaged file?)");
  };
  std::vector<std::string> names;
  H5G_info_t info;
  if (H5Gget_info(g, &info) < 0) throw damaged();
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) throw damaged();
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0) throw damaged();
    name.resize(static_cast<std::size_t>(len));
    names.push_back(name);
  }
  H5Gclose(g);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> TensorH5Reader::f32_shape(const std::string& dataset) const {
  if (H5Lexists(file_, dataset.c_str(), H5P_DEFAULT) <= 0) {
    // H5Lexists needs every intermediate group to exist; a missing group reads the same.
    throw InputError("'" + path_ + "' has no dataset " + dataset);
  }
  const hid_t ds = H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT);
  if (ds < 0) throw InputError("'" + path_ + "': " + dataset + " is not a dataset");
  const hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  const bool is_f32 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(ds);
  if (!is_f32) throw InputError("'" + path_ + "': " + dataset + " is not float32");
  if (rank < 0) throw InputError("'" + path_ + "': " + dataset + " has no simple shape");
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void TensorH5Reader::read_f32(const std::string& dataset, const std::vector<int64_t>& shape, float* out) const {
  const std::vector<int64_t> actual = f32_shape(dataset);
  if (actual != shape)
    throw InputError("'" + path_ + "': " + dataset + " has shape " + dims_text(actual) + ", expected " + dims_text(shape));
  const hid_t ds = H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT);
  const herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(ds);
  if (rc < 0) throw InputError("'" + path_ + "': cannot read " + dataset);
}

}  // namespace rw::io
