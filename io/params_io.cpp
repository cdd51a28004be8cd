// params_io.cpp
#include "io/params_io.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "io/params_io_internal.h"
#include "mpi/process_grid.h"
#include "src/common/input_error.h"
#include "src/common/transfer_limits.h"

namespace rw::io {
namespace {

}  // namespace

uint64_t tensor_checksum_part(const float* values, int64_t begin, int64_t end) {
  // Sum over elements of a 64-bit mix of (global index, value bits): order-independent, so any
  // sharding can sum its parts; one multiply-xorshift round per element (vectorised), enough to
  // catch flipped bits, swapped or shifted values and truncation.
  uint64_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = begin; i < end; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i - begin], sizeof bits);
    uint64_t z = (static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull) ^ (static_cast<uint64_t>(bits) * 0xbf58476d1ce4e5b9ull);
    z ^= z >> 31;
    z *= 0x94d049bb133111ebull;
    sum += z ^ (z >> 29);
  }
  return sum;
}

bool read_attribute(hid_t file, const char* name, hid_t mem_type, void* out) {
  if (H5Aexists(file, name) <= 0) return false;
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  if (attr < 0) return false;
  hid_t space = H5Aget_space(attr);
  const bool scalar = H5Sget_simple_extent_npoints(space) == 1;
  H5Sclose(space);
  // An integer is read only from an integer attribute (no silent float -> int conversion);
  // a float may come from either.
  hid_t stored = H5Aget_type(attr);
  const H5T_class_t stored_class = H5Tget_class(stored);
  H5Tclose(stored);
  const bool type_ok = H5Tget_class(mem_type) == H5T_INTEGER ? stored_class == H5T_INTEGER
                                                             : stored_class == H5T_INTEGER || stored_class == H5T_FLOAT;
  const bool ok = scalar && type_ok && H5Aread(attr, mem_type, out) >= 0;
  H5Aclose(attr);
  return ok;
}

void write_attribute(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const void* value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(attr);
  RW_H5_CHECK(H5Awrite(attr, mem_type, value));
  H5Aclose(attr);
  H5Sclose(space);
}

namespace {

// File dataspace of `dims` (1-D or 2-D, row-major) with the flat element range [begin, end)
// selected: at most three blocks (a partial row, whole rows, a partial row), in flat order.
hid_t select_flat_range(const std::vector<int64_t>& dims, int64_t begin, int64_t end) {
  std::vector<hsize_t> hd(dims.begin(), dims.end());
  hid_t space = H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr);
  RW_H5_CHECK(space);
  RW_H5_CHECK(H5Sselect_none(space));
  if (dims.size() == 1) {
    hsize_t start = begin, count = end - begin;
    RW_H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr));
    return space;
  }
  const int64_t cols = dims[1];
  auto add = [&](int64_t row, int64_t col, int64_t rows, int64_t n_cols) {
    if (rows <= 0 || n_cols <= 0) return;
    hsize_t start[2] = {hsize_t(row), hsize_t(col)}, count[2] = {hsize_t(rows), hsize_t(n_cols)};
    RW_H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_OR, start, nullptr, count, nullptr));
  };
  const int64_t r0 = begin / cols, c0 = begin % cols, r1 = (end - 1) / cols, c1 = (end - 1) % cols;
  if (r0 == r1) {
    add(r0, c0, 1, c1 - c0 + 1);
  } else {
    add(r0, c0, 1, cols - c0);
    add(r0 + 1, 0, r1 - r0 - 1, cols);
    add(r1, 0, 1, c1 + 1);
  }
  return space;
}

// Calls piece(lo, hi) for consecutive ranges of at most h5_chunk_bytes() of floats covering
// [begin, end) (none when empty): independent I/O, so each rank splits its own part alone.
template <class Piece>
void for_each_piece(int64_t begin, int64_t end, Piece piece) {
  const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(h5_chunk_bytes() / sizeof(float)));
  for (int64_t lo = begin; lo < end; lo += step) piece(lo, std::min(end, lo + step));
}

}  // namespace

model::LlamaConfig read_model_config(const std::string& path) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  model::LlamaConfig c;
  for (const auto& f : model::config_fields()) {
    const bool ok = f.integer ? read_attribute(file.id(), f.name, H5T_NATIVE_INT64, &(c.*f.integer))
                              : read_attribute(file.id(), f.name, H5T_NATIVE_DOUBLE, &(c.*f.real));
    if (!ok && f.optional && H5Aexists(file.id(), f.name) == 0) continue;  // absent: 0 (the default)
    if (!ok)
      throw InputError("'" + path + "' has no scalar " + std::string(f.integer ? "integer" : "numeric") +
                       " root attribute '" + f.name + "' (model config)");
  }
  try {
    c.validate();
  } catch (const InputError& e) {
    throw InputError("'" + path + "': " + e.what());
  }
  return c;
}

void read_tensor_group(const H5File& file, ShardedTensors& tensors, const std::string& group, ShardField into,
                       bool verify_checksums) {
  const std::string& path = file.path();
  const std::string prefix = group.empty() || group.back() == '/' ? group : group + "/";
  const std::vector<TensorPart> parts = tensors.tensor_parts();
  std::set<std::string> expected;
  for (const auto& t : parts) expected.insert(t.name);
  // Refuse tensors this model does not have (a config/file mismatch).
  hid_t g = H5Gopen2(file.id(), prefix.c_str(), H5P_DEFAULT);
  if (g < 0) throw InputError("'" + path + "' has no group '" + prefix + "'");
  H5G_info_t ginfo;
  RW_H5_CHECK(H5Gget_info(g, &ginfo));
  std::vector<std::string> unknown;
  for (hsize_t i = 0; i < ginfo.nlinks; ++i) {
    char name[1024];
    ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    if (n > 0 && !expected.count(name)) unknown.push_back(name);
  }
  H5Gclose(g);
  if (!unknown.empty())
    throw InputError("'" + path + "' has tensor '" + prefix + unknown.front() + "' that this model config does not have");

  const std::vector<float*> into_host = tensors.stage_in(into);
  std::vector<uint64_t> sums, stored;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const TensorPart& t = parts[i];
    const int64_t begin = t.begin, end = t.end;
    // Every rank opens and closes every dataset (H5Dclose is collective); only owners read.
    // The checks (present, float32, the config's shape) come first, the same on every rank.
    DatasetInfo info = file.dataset_info(prefix + t.name);
    if (info.type != ElementType::f32)
      throw InputError("tensor '" + prefix + t.name + "' in '" + path + "' is " + info.type_text + ", expected float32");
    if (info.dims != t.shape)
      throw InputError("tensor '" + prefix + t.name + "' in '" + path + "' has shape " + dims_text(info.dims) +
                       ", the model config needs " + dims_text(t.shape));
    hid_t ds = H5Dopen2(file.id(), (prefix + t.name).c_str(), H5P_DEFAULT);
    RW_H5_CHECK(ds);
    float* dst = into_host[i];
    for_each_piece(begin, end, [&](int64_t lo, int64_t hi) {
      hid_t file_space = select_flat_range(t.shape, lo, hi);
      hsize_t n = hi - lo;
      hid_t mem_space = H5Screate_simple(1, &n, nullptr);
      RW_H5_CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, dst + (lo - begin)));
      H5Sclose(mem_space);
      H5Sclose(file_space);
    });
    if (verify_checksums) {
      uint64_t value = 0;
      if (!read_attribute(ds, "checksum", H5T_NATIVE_UINT64, &value)) {
        H5Dclose(ds);  // (left open, it kept the file open after the error)
        throw InputError("tensor '" + prefix + t.name + "' in '" + path + "' has no checksum attribute");
      }
      stored.push_back(value);
      sums.push_back(end > begin ? tensor_checksum_part(dst, begin, end) : 0);
    }
    H5Dclose(ds);
  }
  if (verify_checksums) {
    tensors.grid().allreduce_sum_u64(sums.data(), static_cast<int>(sums.size()));
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (sums[i] != stored[i])
        throw InputError("tensor '" + prefix + parts[i].name + "' in '" + path +
                         "' fails its checksum: the file is corrupted (or was modified after it was written)");
  }
  tensors.commit_in(into);
}

void read_param_shards(const std::string& path, ShardedTensors& params) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  read_tensor_group(file, params, "params", ShardField::weights, false);
}

void write_config_attributes(H5File& file, const model::LlamaConfig& config,
                             const std::vector<std::pair<std::string, double>>& extra_attributes) {
  for (const auto& f : model::config_fields()) {
    if (!f.written(config)) continue;
    if (f.integer) write_attribute(file.id(), f.name, H5T_STD_I64LE, H5T_NATIVE_INT64, &(config.*f.integer));
    else write_attribute(file.id(), f.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &(config.*f.real));
  }
  for (const auto& [name, value] : extra_attributes)
    write_attribute(file.id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void write_tensor_group(H5File& file, ShardedTensors& tensors, const std::string& group, ShardField from,
                        bool with_checksums) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  RW_H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  const std::vector<TensorPart> parts = tensors.tensor_parts();
  // Create every dataset collectively first (metadata), then each rank writes its pieces.
  std::vector<hid_t> datasets;
  for (const auto& t : parts) {
    std::vector<hsize_t> hd(t.shape.begin(), t.shape.end());
    hid_t space = H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr);
    hid_t ds = H5Dcreate2(file.id(), (group + "/" + t.name).c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT,
                          H5P_DEFAULT);
    RW_H5_CHECK(ds);
    H5Sclose(space);
    datasets.push_back(ds);
  }
  const std::vector<const float*> from_host = tensors.stage_out(from);
  std::vector<uint64_t> sums;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const TensorPart& t = parts[i];
    const int64_t begin = t.begin, end = t.end;
    hid_t ds = datasets[i];
    const float* src = from_host[i];
    sums.push_back(end > begin ? tensor_checksum_part(src, begin, end) : 0);
    for_each_piece(begin, end, [&](int64_t lo, int64_t hi) {
      hid_t file_space = select_flat_range(t.shape, lo, hi);
      hsize_t n = hi - lo;
      hid_t mem_space = H5Screate_simple(1, &n, nullptr);
      RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, src + (lo - begin)));
      H5Sclose(mem_space);
      H5Sclose(file_space);
    });
  }
  tensors.end_staging();
  if (with_checksums) {
    tensors.grid().allreduce_sum_u64(sums.data(), static_cast<int>(sums.size()));
    for (std::size_t i = 0; i < datasets.size(); ++i)
      write_attribute(datasets[i], "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, &sums[i]);
  }
  for (hid_t ds : datasets) H5Dclose(ds);
  H5Pclose(lcpl);
}

void write_sharded_tensors(const std::string& path, const model::LlamaConfig& config, ShardedTensors& params,
                           const std::vector<TensorGroup>& groups,
                           const std::vector<std::pair<std::string, double>>& extra_attributes) {
  write_file_atomically(path, [&](H5File& file) {
    write_config_attributes(file, config, extra_attributes);
    for (const TensorGroup& g : groups)
      write_tensor_group(file, params, g.group,
                         g.source == TensorGroup::Source::grads ? ShardField::grads : ShardField::weights, true);
  });
}

}  // namespace rw::io
