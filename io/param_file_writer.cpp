// param_file_writer.cpp
#include "io/param_file_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/h5_file.h"
#include "io/params_io_internal.h"
#include "src/common/fatal.h"
#include "src/common/input_error.h"

namespace rw::io {

ParamFileWriter::ParamFileWriter(const std::string& path, const model::LlamaConfig& config)
    : path_(path), tmp_(path + ".tmp"), config_(config) {
  for (const auto& unit : model::parameter_units(config))
    for (const auto& t : unit.tensors) expected_.push_back(t);
  silence_hdf5_errors();
  add_cleanup_path(tmp_);
  // The default (sec2) driver: this process alone writes the file.
  const hid_t file = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    remove_cleanup_path(tmp_);
    throw InputError("cannot create '" + tmp_ + "' (is the directory writable?)");
  }
  file_ = file;
  for (const auto& f : model::config_fields()) {
    if (!f.written(config)) continue;
    if (f.integer) write_attribute(file, f.name, H5T_STD_I64LE, H5T_NATIVE_INT64, &(config.*f.integer));
    else write_attribute(file, f.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &(config.*f.real));
  }
}

ParamFileWriter::~ParamFileWriter() {
  if (file_ < 0) return;  // finished
  H5Fclose(file_);
  std::remove(tmp_.c_str());
  remove_cleanup_path(tmp_);
}

void ParamFileWriter::add_attribute(const std::string& name, int64_t value) {
  write_attribute(file_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void ParamFileWriter::add_attribute(const std::string& name, const std::string& value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  RW_H5_CHECK(H5Tset_size(type, value.empty() ? 1 : value.size()));
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(attr);
  RW_H5_CHECK(H5Awrite(attr, type, value.c_str()));
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

void ParamFileWriter::write_dataset(const std::string& dataset, const std::vector<int64_t>& shape, const float* data) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  RW_H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  RW_H5_CHECK(space);
  hid_t ds = H5Dcreate2(file_, dataset.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  RW_CHECK(ds >= 0, "cannot create dataset " + dataset + " (written twice?)");
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  if (count > 0) RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  // The checkpoints' checksum (params_io_internal.h): ckpt info and load_checkpoint can verify it.
  const uint64_t checksum = tensor_checksum_part(data, 0, count);
  write_attribute(ds, "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, &checksum);
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(lcpl);
}

void ParamFileWriter::write_param(const std::string& name, const float* data) {
  const model::TensorSpec* spec = nullptr;
  for (const auto& t : expected_)
    if (t.name == name) spec = &t;
  RW_CHECK(spec != nullptr, "parameter '" + name + "' is not one of the model config's tensors");
  RW_CHECK(written_.insert(name).second, "parameter '" + name + "' written twice");
  write_dataset("/params/" + name, spec->shape, data);
}

void ParamFileWriter::write_extra(const std::string& dataset, const std::vector<int64_t>& shape, const float* data) {
  RW_CHECK(dataset.rfind("/params/", 0) != 0, "write_extra is for datasets outside /params");
  write_dataset(dataset, shape, data);
}

void ParamFileWriter::finish() {
  for (const auto& t : expected_) RW_CHECK(written_.count(t.name), "parameter '" + t.name + "' was never written");
  RW_H5_CHECK(H5Fclose(file_));
  file_ = -1;
  commit_temporary_file(tmp_, path_);
}

}  // namespace rw::io
