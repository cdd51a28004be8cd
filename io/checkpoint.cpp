// checkpoint.cpp
#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/params_io.h"
#include "io/params_io_internal.h"
#include "mpi/runtime.h"
#include "src/common/build_info.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

using Json = nlohmann::ordered_json;

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
// Format 2 adds these (root attributes).
const char* kIntStateFieldsV2[] = {"global_batch_tokens"};
const char* kStringStateFieldsV2[] = {"run_id", "ringworld_version", "git_commit", "command_line"};

int64_t* int_field(CheckpointState& s, const std::string& name) {
  if (name == "step") return &s.step;
  if (name == "tokens_seen") return &s.tokens_seen;
  if (name == "stage_index") return &s.stage_index;
  if (name == "seq_len") return &s.seq_len;
  if (name == "world_size") return &s.world_size;
  if (name == "dp") return &s.dp;
  if (name == "global_batch_tokens") return &s.global_batch_tokens;
  return &s.sp;
}

std::string* string_field(CheckpointState& s, const std::string& name) {
  if (name == "run_id") return &s.run_id;
  if (name == "ringworld_version") return &s.ringworld_version;
  if (name == "git_commit") return &s.git_commit;
  return &s.command_line;
}

// The protected record: every value of the checkpoint that is not a tensor, under the name it
// has in the file (attributes by name; "optim/adam_step", "rng/seed", "data/cursor").
Json state_record(const model::LlamaConfig& config, CheckpointState s) {
  Json r;
  r["format_version"] = s.format_version;
  for (const auto& f : model::config_fields()) {
    if (!f.written(config)) continue;
    if (f.integer) r[f.name] = config.*f.integer;
    else r[f.name] = config.*f.real;
  }
  for (const char* f : kIntStateFields) r[f] = *int_field(s, f);
  for (const char* f : kIntStateFieldsV2) r[f] = *int_field(s, f);
  r["stage"] = s.stage;
  r["layout"] = s.layout;
  for (const char* f : kStringStateFieldsV2) r[f] = *string_field(s, f);
  r["optim/adam_step"] = s.adam_step;
  r["rng/seed"] = s.seed;
  r["data/cursor"] = s.data_cursor;
  return r;
}

uint64_t crc32_of(const std::string& text) {
  return ::crc32_z(::crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(text.data()), text.size());
}

// What the file holds now, read raw (no validation), in the record's shape; a value that is
// missing or unreadable is null.
Json actual_record(hid_t file, const H5File& h5, const Json& like) {
  Json r;
  for (const auto& [key, expected] : like.items()) {
    Json value;  // null
    if (key == "optim/adam_step") {
      if (H5Lexists(file, "optim", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(file, "optim", H5P_DEFAULT);
        int64_t v = 0;
        if (g >= 0 && read_attribute(g, "adam_step", H5T_NATIVE_INT64, &v)) value = v;
        if (g >= 0) H5Gclose(g);
      }
    } else if (key == "rng/seed" || key == "data/cursor") {
      if (h5.has_dataset(key)) value = h5.read_scalar_u64(key);
    } else if (expected.is_string()) {
      std::string v;
      if (read_string_attribute(file, key.c_str(), &v)) value = v;
    } else if (expected.is_number_float()) {
      double v = 0;
      if (read_attribute(file, key.c_str(), H5T_NATIVE_DOUBLE, &v)) value = v;
    } else {
      int64_t v = 0;
      if (read_attribute(file, key.c_str(), H5T_NATIVE_INT64, &v)) value = v;
    }
    r[key] = value;
  }
  return r;
}

std::string value_text(const Json& v) { return v.is_null() ? "missing" : v.dump(); }

// Verifies the state record of a format-2 file: its CRC, then every value against it.
void verify_state_record(const std::string& path, const H5File& file) {
  std::string text;
  int64_t stored_crc = -1;
  if (!read_string_attribute(file.id(), "state_record", &text) ||
      !read_attribute(file.id(), "state_record_crc32", H5T_NATIVE_INT64, &stored_crc))
    throw InputError("checkpoint '" + path + "' has no state_record or state_record_crc32 attribute");
  if (static_cast<uint64_t>(stored_crc) != crc32_of(text))
    throw InputError("checkpoint '" + path +
                     "': its state record (step, data cursor, seed, config) fails its CRC-32: the file is corrupted "
                     "(or was modified after it was written)");
  Json record;
  try {
    record = Json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw InputError("checkpoint '" + path + "': its state record is not valid JSON");
  }
  if (!record.is_object()) throw InputError("checkpoint '" + path + "': its state record is not a JSON object");
  const Json actual = actual_record(file.id(), file, record);
  for (const auto& [key, want] : record.items()) {
    const Json& got = actual.at(key);
    if (got != want)
      throw InputError("checkpoint '" + path + "': " + (key.find('/') == std::string::npos ? "attribute '" : "'") + key +
                       "' is " + value_text(got) + " but its state record says " + value_text(want) +
                       ": the file was modified or corrupted after it was written");
  }
}

// This rank's slab of each tensor of `group` as byte ranges of the file (contiguous datasets;
// others are skipped), appended to `ranges`. Collective: every rank opens every dataset.
void add_own_slab_ranges(const H5File& file, const std::vector<TensorPart>& parts, const std::string& group,
                         std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  for (const TensorPart& t : parts) {
    const std::string name = group + "/" + t.name;
    if (H5Lexists(file.id(), group.c_str(), H5P_DEFAULT) <= 0 || !file.has_dataset(name)) continue;
    hid_t ds = H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT);
    if (ds < 0) continue;
    const haddr_t offset = H5Dget_offset(ds);  // HADDR_UNDEF unless contiguous and allocated
    H5Dclose(ds);
    if (offset == HADDR_UNDEF || t.end <= t.begin) continue;
    const uint64_t element = sizeof(float);
    ranges.emplace_back(offset + static_cast<uint64_t>(t.begin) * element, static_cast<uint64_t>(t.end - t.begin) * element);
  }
}

void prefetch_own_slabs(const H5File& file, ShardedTensors& params, const std::vector<std::string>& groups) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  const std::vector<TensorPart> parts = params.tensor_parts();
  for (const std::string& g : groups) add_own_slab_ranges(file, parts, g, ranges);
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && merged.back().first + merged.back().second >= r.first)
      merged.back().second = std::max(merged.back().second, r.first + r.second - merged.back().first);
    else
      merged.push_back(r);
  }
  const int fd = open(file.path().c_str(), O_RDONLY);
  if (fd >= 0) {
    for (const auto& [offset, length] : merged)
      posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
    close(fd);
  }
  if (std::getenv("RINGWORLD_PREFETCH_REPORT")) {
    std::string text = "ringworld: rank " + std::to_string(mpi::world_rank()) + " prefetch " +
                       std::to_string(merged.size()) + " range(s):";
    for (const auto& [offset, length] : merged) text += " " + std::to_string(offset) + "+" + std::to_string(length);
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const model::LlamaConfig& config, ShardedTensors& params,
                     const CheckpointState& state) {
  CheckpointState s = state;
  s.format_version = kCheckpointVersion;
  s.ringworld_version = build::version();
  s.git_commit = build::git_commit();
  if (s.command_line.empty()) s.command_line = build::command_line();
  const std::string record = state_record(config, s).dump();
  const int64_t record_crc = static_cast<int64_t>(crc32_of(record));
  write_file_atomically(path, [&](H5File& file) {
    write_config_attributes(file, config, {});
    write_string_attribute(file.id(), "format", kCheckpointFormat);
    const int64_t version = kCheckpointVersion;
    write_attribute(file.id(), "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
    for (const char* f : kIntStateFields) write_attribute(file.id(), f, H5T_STD_I64LE, H5T_NATIVE_INT64, int_field(s, f));
    for (const char* f : kIntStateFieldsV2) write_attribute(file.id(), f, H5T_STD_I64LE, H5T_NATIVE_INT64, int_field(s, f));
    write_string_attribute(file.id(), "stage", s.stage);
    write_string_attribute(file.id(), "layout", s.layout);
    for (const char* f : kStringStateFieldsV2) write_string_attribute(file.id(), f, *string_field(s, f));
    write_string_attribute(file.id(), "state_record", record);
    write_attribute(file.id(), "state_record_crc32", H5T_STD_I64LE, H5T_NATIVE_INT64, &record_crc);
    write_tensor_group(file, params, "/params", ShardField::weights, true);
    write_tensor_group(file, params, "/optim/m", ShardField::adam_m, true);
    write_tensor_group(file, params, "/optim/v", ShardField::adam_v, true);
    hid_t optim = H5Gopen2(file.id(), "/optim", H5P_DEFAULT);
    RW_H5_CHECK(optim);
    write_attribute(optim, "adam_step", H5T_STD_I64LE, H5T_NATIVE_INT64, &s.adam_step);
    H5Gclose(optim);
    file.write_scalar_u64("/rng/seed", s.seed);
    file.write_scalar_u64("/data/cursor", s.data_cursor);
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
  if (!read_attribute(file.id(), "format_version", H5T_NATIVE_INT64, &version) ||
      version < kOldestReadableCheckpointVersion || version > kCheckpointVersion)
    throw InputError("'" + path + "' has checkpoint format version " + std::to_string(version) + "; this build reads " +
                     std::to_string(kOldestReadableCheckpointVersion) + " to " + std::to_string(kCheckpointVersion));
  // The record first: a changed value is named before anything interprets it.
  if (version >= 2) verify_state_record(path, file);
  *config = read_model_config(path);
  CheckpointState s;
  s.format_version = version;
  for (const char* f : kIntStateFields)
    if (!read_attribute(file.id(), f, H5T_NATIVE_INT64, int_field(s, f)))
      throw InputError("checkpoint '" + path + "' has no attribute '" + f + "'");
  if (!read_string_attribute(file.id(), "stage", &s.stage) || !read_string_attribute(file.id(), "layout", &s.layout))
    throw InputError("checkpoint '" + path + "' has no 'stage' or 'layout' attribute");
  if (!file.has_dataset("rng/seed") || !file.has_dataset("data/cursor"))
    throw InputError("checkpoint '" + path + "' has no /rng/seed or /data/cursor");
  s.seed = file.read_scalar_u64("rng/seed");
  s.data_cursor = file.read_scalar_u64("data/cursor");
  if (version >= 2) {
    for (const char* f : kIntStateFieldsV2)
      if (!read_attribute(file.id(), f, H5T_NATIVE_INT64, int_field(s, f)))
        throw InputError("checkpoint '" + path + "' has no attribute '" + f + "'");
    for (const char* f : kStringStateFieldsV2)
      if (!read_string_attribute(file.id(), f, string_field(s, f)))
        throw InputError("checkpoint '" + path + "' has no attribute '" + f + "'");
    hid_t optim = H5Gopen2(file.id(), "optim", H5P_DEFAULT);
    const bool ok = optim >= 0 && read_attribute(optim, "adam_step", H5T_NATIVE_INT64, &s.adam_step);
    if (optim >= 0) H5Gclose(optim);
    if (!ok) throw InputError("checkpoint '" + path + "' has no /optim attribute 'adam_step'");
  } else {
    s.adam_step = s.step;
    s.adam_step_known = false;
  }
  if (s.step < 0 || s.adam_step < 0 || s.tokens_seen < 0 || s.seq_len < 0)
    throw InputError("checkpoint '" + path + "' has a negative step, adam_step, tokens_seen or seq_len");
  return s;
}

std::string read_checkpoint_run_id(const std::string& path) {
  silence_hdf5_errors();
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return "";
  std::string id;
  if (!read_string_attribute(file, "run_id", &id)) id.clear();
  H5Fclose(file);
  return id;
}

void load_checkpoint(const std::string& path, ShardedTensors& params, bool with_optimizer) {
  silence_hdf5_errors();
  H5File file = H5File::open_read(path);
  // Ask the kernel to read ahead this rank's slabs while tensors are read and checksummed one
  // by one, so device reads overlap the checksum work; only its own (a whole 7B checkpoint with
  // moments is ~80 GB per node).
  std::vector<std::string> groups = {"params"};
  if (with_optimizer) groups.insert(groups.end(), {"optim/m", "optim/v"});
  prefetch_own_slabs(file, params, groups);
  read_tensor_group(file, params, "params", ShardField::weights, true);
  if (with_optimizer) {
    read_tensor_group(file, params, "optim/m", ShardField::adam_m, true);
    read_tensor_group(file, params, "optim/v", ShardField::adam_v, true);
  } else {
    for (ShardField moment : {ShardField::adam_m, ShardField::adam_v}) {
      params.stage_in(moment);  // zeroed host buffers
      params.commit_in(moment);
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
