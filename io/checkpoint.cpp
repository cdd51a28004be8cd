// checkpoint.cpp
#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "io/params_io.h"
#include "io/params_io_internal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  RW_H5_CHECK(H5Tset_size(type, value.empty() ? 1 : value.size()));
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(attr);
  RW_H5_CHECK(H5Awrite(attr, type, value.empty() ? "" : value.c_str()));
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

bool read_string_attribute(hid_t object, const char* name, std::string* out) {
  if (H5Aexists(object, name) <= 0) return false;
  hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
  if (attr < 0) return false;
  hid_t type = H5Aget_type(attr);
  hid_t space = H5Aget_space(attr);
  // One fixed-length string: an array of them would not fit the buffer.
  bool ok = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type) && H5Sget_simple_extent_npoints(space) == 1;
  H5Sclose(space);
  if (ok) {
    std::string buffer(H5Tget_size(type), '\0');
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, buffer.size());
    ok = H5Aread(attr, mem, buffer.data()) >= 0;
    H5Tclose(mem);
    buffer.resize(std::strlen(buffer.c_str()));
    *out = buffer;
  }
  H5Tclose(type);
  H5Aclose(attr);
  return ok;
}

const char* kIntStateFields[] = {"step", "tokens_seen", "stage_index", "seq_len", "world_size", "dp", "sp"};

int64_t* int_field(CheckpointState& s, const std::string& name) {
  if (name == "step") return &s.step;
  if (name == "tokens_seen") return &s.tokens_seen;
  if (name == "stage_index") return &s.stage_index;
  if (name == "seq_len") return &s.seq_len;
  if (name == "world_size") return &s.world_size;
  if (name == "dp") return &s.dp;
  return &s.sp;
}

}  // namespace

void save_checkpoint(const std::string& path, const model::LlamaConfig& config, train::FsdpParams& params,
                     const CheckpointState& state) {
  write_file_atomically(path, [&](H5File& file) {
    write_config_attributes(file, config, {});
    write_string_attribute(file.id(), "format", kCheckpointFormat);
    const int64_t version = kCheckpointVersion;
    write_attribute(file.id(), "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
    CheckpointState s = state;
    for (const char* f : kIntStateFields) write_attribute(file.id(), f, H5T_STD_I64LE, H5T_NATIVE_INT64, int_field(s, f));
    write_string_attribute(file.id(), "stage", state.stage);
    write_string_attribute(file.id(), "layout", state.layout);
    write_tensor_group(file, params, "/params", ShardField::weights, true);
    write_tensor_group(file, params, "/optim/m", ShardField::adam_m, true);
    write_tensor_group(file, params, "/optim/v", ShardField::adam_v, true);
    file.write_scalar_u64("/rng/seed", state.seed);
    file.write_scalar_u64("/data/cursor", state.data_cursor);
  });
}

bool is_checkpoint_file(const std::string& path) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  return H5Aexists(file.id(), "format") > 0;
}

CheckpointState read_checkpoint_state(const std::string& path, model::LlamaConfig* config) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  std::string format;
  if (!read_string_attribute(file.id(), "format", &format) || format != kCheckpointFormat)
    throw InputError("'" + path + "' is not a ringworld checkpoint (no format attribute '" +
                     std::string(kCheckpointFormat) + "')");
  int64_t version = 0;
  if (!read_attribute(file.id(), "format_version", H5T_NATIVE_INT64, &version) || version != kCheckpointVersion)
    throw InputError("'" + path + "' has checkpoint format version " + std::to_string(version) + "; this build reads " +
                     std::to_string(kCheckpointVersion));
  *config = read_model_config(path);
  CheckpointState s;
  for (const char* f : kIntStateFields)
    if (!read_attribute(file.id(), f, H5T_NATIVE_INT64, int_field(s, f)))
      throw InputError("checkpoint '" + path + "' has no attribute '" + f + "'");
  if (!read_string_attribute(file.id(), "stage", &s.stage) || !read_string_attribute(file.id(), "layout", &s.layout))
    throw InputError("checkpoint '" + path + "' has no 'stage' or 'layout' attribute");
  if (!file.has_dataset("rng/seed") || !file.has_dataset("data/cursor"))
    throw InputError("checkpoint '" + path + "' has no /rng/seed or /data/cursor");
  s.seed = file.read_scalar_u64("rng/seed");
  s.data_cursor = file.read_scalar_u64("data/cursor");
  return s;
}

void load_checkpoint(const std::string& path, train::FsdpParams& params, bool with_optimizer) {
  silence_hdf5_errors();
  // Ask the kernel to read the file ahead while tensors are read and checksummed one by one, so
  // device reads overlap the checksum work (every rank: nodes have their own page caches; on one
  // node the repeated requests find the pages already on their way).
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    close(fd);
  }
  H5File file = H5File::open_read(path);
  read_tensor_group(file, params, "params", ShardField::weights, true);
  if (with_optimizer) {
    read_tensor_group(file, params, "optim/m", ShardField::adam_m, true);
    read_tensor_group(file, params, "optim/v", ShardField::adam_v, true);
  } else {
    for (auto& shard : params.shards()) {
      std::fill(shard.adam_m.begin(), shard.adam_m.end(), 0.f);
      std::fill(shard.adam_v.begin(), shard.adam_v.end(), 0.f);
    }
  }
}

std::string describe_checkpoint(const std::string& path) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  std::ostringstream out;
  out << path << "\n  attributes:\n";
  auto attr_visit = [](hid_t object, const char* name, const H5A_info_t*, void* data) -> herr_t {
    auto& o = *static_cast<std::ostringstream*>(data);
    hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
    hid_t type = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    const hssize_t n_values = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    o << "    " << name << " = ";
    if (n_values != 1) {  // ours are all scalars; show others without reading them into one
      o << "(" << n_values << " values)";
    } else if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0) {
      o << "(variable-length string)";
    } else if (H5Tget_class(type) == H5T_STRING) {
      std::string value(H5Tget_size(type), '\0');
      hid_t mem = H5Tcopy(H5T_C_S1);
      H5Tset_size(mem, value.size());
      H5Aread(attr, mem, value.data());
      H5Tclose(mem);
      o << value.c_str();
    } else if (H5Tget_class(type) == H5T_INTEGER) {
      int64_t v = 0;
      H5Aread(attr, H5T_NATIVE_INT64, &v);
      o << v;
    } else {
      double v = 0;
      H5Aread(attr, H5T_NATIVE_DOUBLE, &v);
      o << v;
    }
    o << "\n";
    H5Tclose(type);
    H5Aclose(attr);
    return 0;
  };
  H5Aiterate2(file.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, attr_visit, &out);
  out << "  datasets:\n";
  auto visit = [](hid_t object, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type != H5O_TYPE_DATASET) return 0;
    auto& o = *static_cast<std::ostringstream*>(data);
    hid_t ds = H5Dopen2(object, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(rank > 0 ? rank : 0);
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    o << "    /" << name << " [";
    for (int i = 0; i < rank; ++i) o << (i ? ", " : "") << dims[i];
    o << "]\n";
    H5Sclose(space);
    H5Dclose(ds);
    return 0;
  };
  H5Ovisit(file.id(), H5_INDEX_NAME, H5_ITER_INC, visit, &out);
  return out.str();
}

}  // namespace rw::io
