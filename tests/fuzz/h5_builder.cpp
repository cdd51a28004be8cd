// h5_builder.cpp: the program format (one op after another until the bytes run out):
//   0 dataset    name, type, rank|flags (rank = (b & 7) % 5; flags = b >> 3: 1 write values, 2 chunked
//                and extendible), one byte per axis (< 0xF0: b % 33, else the next 8 bytes: a
//                huge declared size), then u16 n + n value bytes, repeated to fill the data
//   1 root attribute, 2 attribute on the last dataset: name, type (10: variable-length string,
//                11: one of H5Names::strings), shape (< 0x80 scalar, else [b % 4]), u16 n + bytes
//   3 group      name (a group where the reader may expect a dataset)
//   4 checksum   on the last dataset: correct for its float32 values, or (next byte odd) off by one
//   5 hard link  name -> the last dataset
//   6 string     root attribute name, index into H5Names::strings
// Every HDF5 failure (a name taken twice, a type that cannot hold the shape) just skips the op.
#include "tests/fuzz/h5_builder.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "io/params_io_internal.h"
#include "src/model/llama_config.h"
#include "src/vision/vqgan_config.h"

namespace rw::fuzz {
namespace {

constexpr char kSignature[] = "\x89HDF\r\n\x1a\n";
constexpr int64_t kMaxWrittenElements = 1 << 16;

class ByteStream {
 public:
  ByteStream(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }
  uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | u8();
    return v;
  }
  std::vector<uint8_t> bytes() {
    const std::size_t n = static_cast<std::size_t>(u8()) << 8 | u8();
    std::vector<uint8_t> out;
    while (out.size() < n && !done()) out.push_back(u8());
    return out;
  }

 private:
  const uint8_t* data_;
  std::size_t size_, at_ = 0;
};

// File and memory types of H5Program::Type (0-9); 10 variable string, 11 a listed string.
hid_t file_type_of(int t) {
  switch (t) {
    case 0: return H5T_STD_I8LE;
    case 1: return H5T_STD_U8LE;
    case 2: return H5T_STD_I16LE;
    case 3: return H5T_STD_I32LE;
    case 4: return H5T_STD_U32LE;
    case 5: return H5T_STD_I64LE;
    case 6: return H5T_STD_U64LE;
    case 7: return H5T_IEEE_F32LE;
    default: return H5T_IEEE_F64LE;
  }
}

// A type to create with (caller closes): fixed strings get their own copy.
hid_t make_type(int t, std::size_t string_length) {
  if (t == 9 || t == 11) {
    hid_t s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, std::max<std::size_t>(1, string_length));
    return s;
  }
  if (t == 10) {
    hid_t s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, H5T_VARIABLE);
    return s;
  }
  return H5Tcopy(file_type_of(t));
}

std::vector<uint8_t> fill(const std::vector<uint8_t>& pattern, std::size_t n) {
  std::vector<uint8_t> out(n, 0);
  if (!pattern.empty())
    for (std::size_t i = 0; i < n; ++i) out[i] = pattern[i % pattern.size()];
  return out;
}

const std::string& pick(const std::vector<std::string>& list, uint8_t index) { return list[index % list.size()]; }

struct Builder {
  hid_t file, lcpl;
  const H5Names& names;
  hid_t last = -1;                  // last dataset created
  std::vector<float> last_values;   // its values when float32 and written

  ~Builder() {
    if (last >= 0) H5Dclose(last);
  }

  void dataset(ByteStream& in) {
    const std::string& name = pick(names.datasets, in.u8());
    const int t = in.u8() % 10;
    const uint8_t rank_flags = in.u8();
    const int rank = (rank_flags & 7) % 5;
    const bool write = rank_flags >> 3 & 1, chunked = rank_flags >> 3 & 2;
    std::vector<hsize_t> dims(rank), max_dims(rank), chunk(rank);
    int64_t elements = 1;
    for (int a = 0; a < rank; ++a) {
      const uint8_t b = in.u8();
      dims[a] = b < 0xF0 ? b % 33 : std::min<uint64_t>(in.u64(), uint64_t{1} << 62);
      max_dims[a] = chunked ? H5S_UNLIMITED : dims[a];
      chunk[a] = std::clamp<hsize_t>(dims[a], 1, 8);
      if (__builtin_mul_overflow(elements, static_cast<int64_t>(std::min<hsize_t>(dims[a], INT64_MAX)), &elements))
        elements = INT64_MAX;
    }
    const std::vector<uint8_t> pattern = in.bytes();
    hid_t space = rank ? H5Screate_simple(rank, dims.data(), max_dims.data()) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked && rank) H5Pset_chunk(dcpl, rank, chunk.data());
    hid_t type = make_type(t, 8);
    hid_t ds = H5Dcreate2(file, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
    last_values.clear();
    if (ds >= 0 && write && elements <= kMaxWrittenElements) {
      const std::size_t n = static_cast<std::size_t>(elements);
      std::vector<uint8_t> values = fill(pattern, n * H5Tget_size(type));
      if (t == 7 && n > 0) {  // the float32 values as written, for the checksum op
        last_values.resize(n);
        std::memcpy(last_values.data(), values.data(), n * sizeof(float));
      }
      H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    }
    H5Tclose(type);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds >= 0) {
      if (last >= 0) H5Dclose(last);
      last = ds;
    }
  }

  void attribute(ByteStream& in, hid_t object) {
    const std::string& name = pick(names.attributes, in.u8());
    const int t = in.u8() % 12;
    const uint8_t shape = in.u8();
    const hsize_t n = shape < 0x80 ? 1 : shape % 4;
    std::vector<uint8_t> value = in.bytes();
    std::string text(value.begin(), value.end());
    if (t == 11 && !names.strings.empty()) text = pick(names.strings, value.empty() ? 0 : value[0]);
    hid_t space = shape < 0x80 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
    hid_t type = make_type(t, t == 9 ? 8 : text.size());
    hid_t attr = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
      if (t == 10) {
        std::vector<const char*> strings(n, text.c_str());
        H5Awrite(attr, type, strings.data());
      } else if (t == 11) {
        const std::size_t length = std::max<std::size_t>(1, text.size());
        std::vector<char> buffer(n * length, '\0');
        for (hsize_t i = 0; i < n; ++i) std::memcpy(buffer.data() + i * length, text.data(), text.size());
        H5Awrite(attr, type, buffer.data());
      } else {
        std::vector<uint8_t> bytes = fill(value, n * H5Tget_size(type));
        H5Awrite(attr, type, bytes.data());
      }
      H5Aclose(attr);
    }
    H5Tclose(type);
    H5Sclose(space);
  }

  void checksum(ByteStream& in) {
    const bool off = in.u8() & 1;
    if (last < 0) return;
    uint64_t sum = rw::io::tensor_checksum_part(last_values.data(), 0, static_cast<int64_t>(last_values.size())) + off;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(last, "checksum", H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
      H5Awrite(attr, H5T_NATIVE_UINT64, &sum);
      H5Aclose(attr);
    }
    H5Sclose(space);
  }

  void run(ByteStream& in) {
    while (!in.done()) {
      switch (in.u8() % 8) {
        case 0: dataset(in); break;
        case 1: attribute(in, file); break;
        case 2:
          if (last >= 0) attribute(in, last);
          break;
        case 3: {
          hid_t g = H5Gcreate2(file, pick(names.datasets, in.u8()).c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
          if (g >= 0) H5Gclose(g);
          break;
        }
        case 4: checksum(in); break;
        case 5: {
          const std::string& name = pick(names.datasets, in.u8());
          if (last >= 0) H5Lcreate_hard(last, ".", file, name.c_str(), lcpl, H5P_DEFAULT);
          break;
        }
        case 6: {
          const std::string& name = pick(names.attributes, in.u8());
          const std::string& text = names.strings.empty() ? name : pick(names.strings, in.u8());
          hid_t space = H5Screate(H5S_SCALAR);
          hid_t type = make_type(9, text.size());
          hid_t attr = H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
          if (attr >= 0) {
            H5Awrite(attr, type, text.c_str());
            H5Aclose(attr);
          }
          H5Tclose(type);
          H5Sclose(space);
          break;
        }
        default: break;
      }
    }
  }
};

}  // namespace

const H5Names& attn_input_names() {
  static const H5Names n{{"q", "k", "v", "dout", "positions", "segment_ids"}, {"x"}, {}};
  return n;
}

const H5Names& forward_input_names() {
  static const H5Names n{{"tokens", "targets", "loss_weights", "segment_ids", "positions"}, {"x"}, {}};
  return n;
}

const H5Names& token_dataset_names() {
  static const H5Names n{{"tokens", "doc_offsets", "loss_mask"}, {"vocab_size", "tokenizer"}, {"byte", ""}};
  return n;
}

const H5Names& checkpoint_names() {
  static const H5Names n = [] {
    H5Names n;
    rw::model::LlamaConfig c;
    c.num_hidden_layers = 1;
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors)
        for (const char* group : {"params/", "optim/m/", "optim/v/"}) n.datasets.push_back(group + t.name);
    n.datasets.insert(n.datasets.end(), {"rng/seed", "data/cursor", "params/unknown", "params"});
    for (const auto& f : rw::model::config_fields()) n.attributes.push_back(f.name);
    n.attributes.insert(n.attributes.end(), {"format", "format_version", "step", "tokens_seen", "stage_index", "seq_len",
                                             "world_size", "dp", "sp", "stage", "layout", "checksum"});
    n.strings = {"ringworld-checkpoint", "zigzag", "contiguous", "8k", ""};
    return n;
  }();
  return n;
}

const H5Names& weight_file_names() {
  static const H5Names n = [] {
    H5Names n;
    rw::model::LlamaConfig c;
    c.num_hidden_layers = 1;
    for (const auto& unit : rw::model::parameter_units(c))
      for (const auto& t : unit.tensors) n.datasets.push_back("params/" + t.name);
    for (const auto& t : rw::vision::vqgan_tensors(rw::vision::VqganConfig::preset("tiny-1"))) n.datasets.push_back("vqgan/" + t.name);
    n.datasets.insert(n.datasets.end(), {"codes", "sources", "vision/vte.weight", "vqgan"});
    for (const auto& f : rw::model::config_fields()) n.attributes.push_back(f.name);
    n.attributes.insert(n.attributes.end(), {"max_position_embeddings", "bos_token_id", "eos_token_id", "torch_dtype", "source",
                                             "tokenizer", "checksum", "format", "image_size", "in_channels", "out_channels",
                                             "base_channels", "encoder_res_blocks", "decoder_res_blocks", "mid_res_blocks",
                                             "norm_groups", "latent_channels", "codebook_size", "codebook_dim",
                                             "channel_multipliers", "norm_eps", "weights"});
    n.strings = {"ringworld-vqgan", "bfloat16", "hf:/models/x", "lwm-vqgan:/x/vqgan", ""};
    return n;
  }();
  return n;
}

std::unique_ptr<TempFile> hdf5_input(const uint8_t* data, std::size_t size, const H5Names& names) {
  const char* mode_env = std::getenv("RW_FUZZ_HDF5");
  const std::string mode = mode_env ? mode_env : "";
  const bool raw = mode != "structured" && size >= 8 && std::memcmp(data, kSignature, 8) == 0;
  if (raw) return std::make_unique<TempFile>(data, size, ".h5");
  if (mode == "raw") return nullptr;
  auto file = std::make_unique<TempFile>(nullptr, 0, ".h5");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t id = H5Fcreate(file->path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) {
    std::fprintf(stderr, "fuzz: cannot create %s\n", file->path().c_str());
    std::abort();
  }
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  {
    Builder builder{id, lcpl, names, -1, {}};
    ByteStream in(data, size);
    builder.run(in);
  }
  H5Pclose(lcpl);
  H5Fclose(id);
  return file;
}

H5Program& H5Program::dataset(uint8_t name, Type type, const std::vector<uint8_t>& dims, const std::vector<uint8_t>& values) {
  bytes_.insert(bytes_.end(), {0, name, static_cast<uint8_t>(type), static_cast<uint8_t>(dims.size() | (values.empty() ? 0 : 8))});
  bytes_.insert(bytes_.end(), dims.begin(), dims.end());
  bytes_.push_back(static_cast<uint8_t>(values.size() >> 8));
  bytes_.push_back(static_cast<uint8_t>(values.size()));
  bytes_.insert(bytes_.end(), values.begin(), values.end());
  return *this;
}

H5Program& H5Program::root_attribute(uint8_t name, Type type, const std::vector<uint8_t>& value, uint8_t count) {
  bytes_.insert(bytes_.end(), {1, name, static_cast<uint8_t>(type), static_cast<uint8_t>(count ? 0x80 | count : 0),
                               static_cast<uint8_t>(value.size() >> 8), static_cast<uint8_t>(value.size())});
  bytes_.insert(bytes_.end(), value.begin(), value.end());
  return *this;
}

H5Program& H5Program::string_attribute(uint8_t name, uint8_t string_index) {
  bytes_.insert(bytes_.end(), {6, name, string_index});
  return *this;
}

H5Program& H5Program::checksum() {
  bytes_.insert(bytes_.end(), {4, 0});
  return *this;
}

}  // namespace rw::fuzz
