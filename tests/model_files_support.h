// model_files_support.h: the tests' own writers of the formats ringworld imports (so the files
// under test are made independently of the code under test) and reference number conversions.
//
//   SafetensorsBuilder      a safetensors file from raw tensors: header JSON built here with
//                           nlohmann-json (not io/safetensors.h), or any header text verbatim.
//   pack_jax_array / pack_jax_chunked / pack_jax_record
//                           LWM's streaming msgpack records (flax to_bytes values) with msgpack-c.
//   ref_half_value, ref_float_to_half, ref_float_to_bf16
//                           IEEE binary16 / bfloat16 by definition: value formulas and nearest
//                           neighbour search with ties to even (no bit tricks).
//   to_bf16_bytes / to_f16_bytes / f32_bytes
//                           raw little-endian bytes of float data in each dtype (through the
//                           references above).
#pragma once
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rw::test {

// ---- references ------------------------------------------------------------------------------

// The value of a binary16 bit pattern (NaN for NaNs).
inline double ref_half_value(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  double v;
  if (exponent == 31) v = mantissa ? std::nan("") : INFINITY;
  else if (exponent == 0) v = std::ldexp(mantissa, -24);
  else v = std::ldexp(1024 + mantissa, exponent - 25);
  return sign ? -v : v;
}

// Nearest binary16 to x, ties to the even pattern; past the largest finite value the next
// "value" up is 65536 (the pattern of infinity), so rounding overflows the IEEE way. NaN -> NaN.
inline uint16_t ref_float_to_half(float x) {
  if (std::isnan(x)) return static_cast<uint16_t>(std::signbit(x) ? 0xFE00 : 0x7E00);
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 65536.0) return sign | 0x7C00;
  // Finite positive patterns ascend with their values: binary search.
  uint16_t lo = 0, hi = 0x7C00;  // invariant: value(lo) <= a < value(hi) (value(0x7C00) := 65536)
  auto value = [](uint16_t h) { return h == 0x7C00 ? 65536.0 : ref_half_value(h); };
  while (hi - lo > 1) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    (value(mid) <= a ? lo : hi) = mid;
  }
  const double below = a - value(lo), above = value(hi) - a;
  const uint16_t pick = below < above ? lo : above < below ? hi : ((lo & 1) ? hi : lo);
  return sign | pick;
}

// Nearest bfloat16 (a float32 with the low 16 bits zero), ties to the even pattern; above the
// largest finite value the next value up is 2^128 (the pattern of infinity).
inline uint16_t ref_float_to_bf16(float x) {
  if (std::isnan(x)) return static_cast<uint16_t>(std::signbit(x) ? 0xFFC0 : 0x7FC0);
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t mag = bits & 0x7FFFFFFF;
  if (mag >= 0x7F800000) return sign | 0x7F80;  // infinity
  const uint32_t lo = mag & 0xFFFF0000u, hi = lo + 0x10000u;
  auto value = [](uint32_t b) {
    if (b >= 0x7F800000u) return std::ldexp(1.0, 128);
    float f;
    std::memcpy(&f, &b, 4);
    return static_cast<double>(f);
  };
  const double a = value(mag), below = a - value(lo), above = value(hi) - a;
  const uint32_t pick = below < above ? lo : above < below ? hi : (((lo >> 16) & 1) ? hi : lo);
  return static_cast<uint16_t>(sign | (pick >> 16));
}

// ---- raw bytes ---------------------------------------------------------------------------------

inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

inline std::string u16_bytes(const std::vector<uint16_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 2);
}

inline std::string to_bf16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = ref_float_to_bf16(v[i]);
  return u16_bytes(h);
}

inline std::string to_f16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = ref_float_to_half(v[i]);
  return u16_bytes(h);
}

// Values of bf16 / f16 bytes as float32 (exact).
inline std::vector<float> from_u16_bytes(const std::string& bytes, bool bf16) {
  std::vector<float> out(bytes.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    if (bf16) {
      const uint32_t b = static_cast<uint32_t>(h) << 16;
      std::memcpy(&out[i], &b, 4);
    } else {
      out[i] = static_cast<float>(ref_half_value(h));
    }
  }
  return out;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- safetensors -------------------------------------------------------------------------------

class SafetensorsBuilder {
 public:
  // Appends a tensor (raw little-endian bytes) after the previous ones.
  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape, const std::string& bytes) {
    header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data_.size(), data_.size() + bytes.size()}}};
    data_ += bytes;
  }
  nlohmann::json& header() { return header_; }  // to damage it
  const nlohmann::json& header() const { return header_; }
  std::string& data() { return data_; }
  std::string bytes() const { return with_header(header_.dump()); }
  // A file with this header text verbatim (length field = its size unless given).
  std::string with_header(const std::string& text, int64_t declared_length = -1) const {
    std::string out(8, '\0');
    uint64_t n = declared_length >= 0 ? static_cast<uint64_t>(declared_length) : text.size();
    for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xFF);
    return out + text + data_;
  }

 private:
  nlohmann::json header_ = nlohmann::json::object();
  std::string data_;
};

// ---- LWM JAX streams ----------------------------------------------------------------------------

// flax's array ExtType: ExtType(1, packb([shape, dtype, bytes])).
inline std::string pack_jax_array(const std::vector<int64_t>& shape, const std::string& dtype, const std::string& raw,
                                  int8_t ext_type = 1) {
  msgpack::sbuffer payload;
  msgpack::packer<msgpack::sbuffer> p(payload);
  p.pack_array(3);
  p.pack_array(static_cast<uint32_t>(shape.size()));
  for (int64_t d : shape) p.pack(d);
  p.pack(dtype);
  p.pack_bin(static_cast<uint32_t>(raw.size()));
  p.pack_bin_body(raw.data(), static_cast<uint32_t>(raw.size()));
  msgpack::sbuffer ext;
  msgpack::packer<msgpack::sbuffer> e(ext);
  e.pack_ext(payload.size(), ext_type);
  e.pack_ext_body(payload.data(), static_cast<uint32_t>(payload.size()));
  return std::string(ext.data(), ext.size());
}

// flax's chunked form of a large array: the flat data cut into chunks of `chunk_elems`.
inline std::string pack_jax_chunked(const std::vector<int64_t>& shape, const std::string& dtype, const std::string& raw,
                                    std::size_t element_size, std::size_t chunk_elems) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(3);
  p.pack(std::string("__msgpack_chunked_array__"));
  p.pack(true);
  p.pack(std::string("shape"));
  p.pack_map(static_cast<uint32_t>(shape.size()));
  for (std::size_t i = 0; i < shape.size(); ++i) {
    p.pack(std::to_string(i));
    p.pack(shape[i]);
  }
  p.pack(std::string("chunks"));
  const std::size_t n = raw.size() / element_size, n_chunks = (n + chunk_elems - 1) / chunk_elems;
  p.pack_map(static_cast<uint32_t>(n_chunks));
  for (std::size_t c = 0; c < n_chunks; ++c) {
    const std::size_t begin = c * chunk_elems, count = std::min(chunk_elems, n - begin);
    p.pack(std::to_string(c));
    const std::string ext = pack_jax_array({static_cast<int64_t>(count)}, dtype, raw.substr(begin * element_size, count * element_size));
    buf.write(ext.data(), ext.size());
  }
  return std::string(buf.data(), buf.size());
}

// One record [key path, value]: value wrapped in a bin as flax's to_bytes returns it, or not.
inline std::string pack_jax_record(const std::vector<std::string>& key, const std::string& value, bool as_bin = true) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_array(2);
  p.pack_array(static_cast<uint32_t>(key.size()));
  for (const auto& k : key) p.pack(k);
  if (as_bin) {
    p.pack_bin(static_cast<uint32_t>(value.size()));
    p.pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
  } else {
    buf.write(value.data(), value.size());
  }
  return std::string(buf.data(), buf.size());
}

inline std::vector<std::string> split_key(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1)
    parts.push_back(path.substr(start, slash - start));
  parts.push_back(path.substr(start));
  return parts;
}

}  // namespace rw::test

namespace rw::test {

// ---- reading safetensors back (for checking what the exporter wrote) ---------------------------

struct StoredTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  std::string bytes;
};

struct StoredSafetensors {
  uint64_t header_length = 0, file_size = 0;
  nlohmann::json metadata;
  std::map<std::string, StoredTensor> tensors;
};

// Reads a whole safetensors file by the format's definition (no io/ code). Empty on failure.
inline StoredSafetensors read_safetensors_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  StoredSafetensors out;
  out.file_size = bytes.size();
  if (bytes.size() < 8) return out;
  for (int i = 7; i >= 0; --i) out.header_length = (out.header_length << 8) | static_cast<unsigned char>(bytes[i]);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, out.header_length), nullptr, false);
  if (!header.is_object()) return out;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      out.metadata = value;
      continue;
    }
    StoredTensor t;
    t.dtype = value.at("dtype").get<std::string>();
    t.shape = value.at("shape").get<std::vector<int64_t>>();
    t.begin = value.at("data_offsets")[0].get<uint64_t>();
    t.end = value.at("data_offsets")[1].get<uint64_t>();
    t.bytes = bytes.substr(8 + out.header_length + t.begin, t.end - t.begin);
    out.tensors[name] = t;
  }
  return out;
}

}  // namespace rw::test
