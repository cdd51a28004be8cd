// safetensors.cpp
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "io/json_text.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

using json = nlohmann::json;

// The reference implementation refuses headers over 100 MB; a 7B model's is about 30 KB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// a * b, or false on overflow past 2^63 (sizes stay in int64_t).
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > (uint64_t(1) << 63) / a) return false;
  *out = a * b;
  return *out <= (uint64_t(1) << 63);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

int64_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

int64_t SafetensorsEntry::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const SafetensorsEntry* SafetensorsHeader::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t file_size, const std::string& file) {
  const std::string where = "safetensors file '" + file + "'";
  if (file_size < 8)
    throw InputError(where + " is " + std::to_string(file_size) + " bytes: too short for the 8-byte header length");
  const uint64_t header_len = read_u64_le(bytes);
  if (header_len > file_size - 8)
    throw InputError(where + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes): truncated, or not a safetensors file");
  if (header_len > kMaxHeaderBytes)
    throw InputError(where + ": header length " + std::to_string(header_len) + " exceeds 100 MiB: not a safetensors file");
  if (header_len < 2 || bytes[8] != '{')
    throw InputError(where + ": the header does not start with '{': not a safetensors file");
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  const json header = parse_json_object(text, text + header_len, where + ": header", 3);

  SafetensorsHeader out;
  out.data_start = 8 + header_len;
  const uint64_t data_size = file_size - out.data_start;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw InputError(where + ": __metadata__ is not an object");
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string())
          throw InputError(where + ": __metadata__ entry \"" + key + "\" is not a string");
        out.metadata[key] = text_value.get<std::string>();
      }
      continue;
    }
    const std::string tensor = where + ", tensor '" + name + "'";
    if (!value.is_object()) throw InputError(tensor + ": not an object {dtype, shape, data_offsets}");
    SafetensorsEntry e;
    e.name = name;
    const auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) throw InputError(tensor + ": no string \"dtype\"");
    e.dtype = dtype->get<std::string>();
    const int64_t element_size = safetensors_dtype_size(e.dtype);
    if (element_size == 0) throw InputError(tensor + ": unknown dtype \"" + e.dtype + "\"");
    const auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) throw InputError(tensor + ": no \"shape\" array");
    uint64_t count = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned()) throw InputError(tensor + ": shape " + shape->dump() + " is not a list of non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (!checked_mul(count, dim, &count)) throw InputError(tensor + ": shape " + shape->dump() + " has too many elements");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned())
      throw InputError(tensor + ": \"data_offsets\" is not [begin, end] (two non-negative integers)");
    e.begin = (*offsets)[0].get<uint64_t>();
    e.end = (*offsets)[1].get<uint64_t>();
    if (e.end < e.begin)
      throw InputError(tensor + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                       "] end before they begin");
    if (e.end > data_size)
      throw InputError(tensor + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                       "] run past the end of the data (" + std::to_string(data_size) + " bytes): truncated file?");
    uint64_t n_bytes = 0;
    if (!checked_mul(count, static_cast<uint64_t>(element_size), &n_bytes) || n_bytes != e.end - e.begin)
      throw InputError(tensor + ": shape " + shape_text(e.shape) + " of " + e.dtype + " needs " +
                       std::to_string(count) + " x " + std::to_string(element_size) + " bytes but data_offsets hold " +
                       std::to_string(e.end - e.begin));
    out.tensors.push_back(std::move(e));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  // Sorted by begin: a tensor overlaps another iff it begins before the furthest end so far.
  const SafetensorsEntry* furthest = nullptr;
  for (const auto& e : out.tensors) {
    if (e.begin == e.end) continue;  // empty tensors occupy no bytes
    if (furthest && e.begin < furthest->end)
      throw InputError(where + ": tensors '" + furthest->name + "' [" + std::to_string(furthest->begin) + ", " +
                       std::to_string(furthest->end) + ") and '" + e.name + "' [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + ") overlap");
    if (!furthest || e.end > furthest->end) furthest = &e;
  }
  return out;
}

std::string make_safetensors_header(const std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const auto& t : tensors)
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {t.begin, t.end}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xFF);
  return out + text;
}

std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text, const std::string& file) {
  const std::string where = "safetensors index '" + file + "'";
  const json index = parse_json_object(json_text, where, 3);
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) throw InputError(where + " has no \"weight_map\" object");
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : map->items()) {
    if (!value.is_string()) throw InputError(where + ": weight_map entry '" + name + "' is not a file name");
    const std::string shard = value.get<std::string>();
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos)
      throw InputError(where + ": weight_map entry '" + name + "' names '" + shard +
                       "', not a file in the model's directory");
    out[name] = shard;
  }
  if (out.empty()) throw InputError(where + ": weight_map is empty");
  return out;
}

}  // namespace rw::io
