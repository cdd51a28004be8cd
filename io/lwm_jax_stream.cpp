// lwm_jax_stream.cpp: msgpack-c (Debian's libmsgpack-cxx-dev) unpacks each level; strings, bins
// and ext payloads are referenced in the caller's buffer, never copied; size and depth limits
// keep hostile input from allocating much.
#include "io/lwm_jax_stream.h"

#include <msgpack.hpp>

#include <map>

#include "src/common/input_error.h"

namespace rw::io {
namespace {

constexpr int8_t kExtNdarray = 1;  // flax's _MsgpackExtType.ndarray
constexpr int8_t kExtComplex = 2;
constexpr int8_t kExtScalar = 3;

bool reference_everything(msgpack::type::object_type, std::size_t, void*) { return true; }

// Generous for the format (keys of a few levels, shapes of a few dims, a few chunks), small
// enough that a forged length cannot make the unpacker allocate much.
const msgpack::unpack_limit kLimits(/*array=*/4096, /*map=*/4096, /*str=*/1 << 16, /*bin=*/0xffffffff,
                                    /*ext=*/0xffffffff, /*depth=*/8);

// Unpacks one object from [data, data + size); returns it and sets *used to its length.
msgpack::object_handle unpack_one(const uint8_t* data, uint64_t size, uint64_t* used, const std::string& what) {
  std::size_t off = 0;
  try {
    msgpack::object_handle handle = msgpack::unpack(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size), off,
                                                    reference_everything, nullptr, kLimits);
    *used = off;
    return handle;
  } catch (const msgpack::insufficient_bytes&) {
    throw InputError(what + " is truncated (the stream ends inside it)");
  } catch (const std::exception& e) {
    throw InputError(what + " is not valid msgpack (" + e.what() + ")");
  }
}

std::string str_of(const msgpack::object& o) { return std::string(o.via.str.ptr, o.via.str.size); }

int64_t non_negative_int(const msgpack::object& o, const std::string& what) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > (uint64_t(1) << 40))
    throw InputError(what + " is not a non-negative integer (below 2^40)");
  return static_cast<int64_t>(o.via.u64);
}

std::string dims_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t count_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = d == 0 ? 0 : (n > (int64_t(1) << 62) / d ? (int64_t(1) << 62) : n * d);
  return n;
}

// ExtType(1) payload: packb([shape, dtype name, raw bytes]).
JaxArray parse_ndarray(const msgpack::object& ext, const std::string& what) {
  if (ext.via.ext.type() != kExtNdarray) throw InputError(what + ": msgpack ExtType " + std::to_string(ext.via.ext.type()) + " is not an array (ExtType 1)");
  const auto* payload = reinterpret_cast<const uint8_t*>(ext.via.ext.data());
  uint64_t used = 0;
  msgpack::object_handle h = unpack_one(payload, ext.via.ext.size, &used, what + ": the array's ExtType payload");
  if (used != ext.via.ext.size) throw InputError(what + ": the array's ExtType payload has bytes after [shape, dtype, data]");
  const msgpack::object& tuple = h.get();
  if (tuple.type != msgpack::type::ARRAY || tuple.via.array.size != 3)
    throw InputError(what + ": the array's ExtType payload is not [shape, dtype, data]");
  const msgpack::object& shape = tuple.via.array.ptr[0];
  const msgpack::object& dtype = tuple.via.array.ptr[1];
  const msgpack::object& data = tuple.via.array.ptr[2];
  if (shape.type != msgpack::type::ARRAY) throw InputError(what + ": the array's shape is not a list");
  if (dtype.type != msgpack::type::STR) throw InputError(what + ": the array's dtype is not a string");
  if (data.type != msgpack::type::BIN) throw InputError(what + ": the array's data is not msgpack bin");
  JaxArray a;
  for (uint32_t i = 0; i < shape.via.array.size; ++i)
    a.shape.push_back(non_negative_int(shape.via.array.ptr[i], what + ": a shape entry"));
  a.dtype = str_of(dtype);
  const int64_t element_size = numpy_dtype_size(a.dtype);
  if (element_size == 0) throw InputError(what + ": unknown array dtype '" + a.dtype + "'");
  const int64_t count = count_of(a.shape);
  if (count > (int64_t(1) << 40) || static_cast<uint64_t>(count * element_size) != data.via.bin.size)
    throw InputError(what + ": shape " + dims_text(a.shape) + " of " + a.dtype + " needs " + std::to_string(count) + " x " +
                     std::to_string(element_size) + " bytes, the data has " + std::to_string(data.via.bin.size));
  a.pieces.emplace_back(reinterpret_cast<const uint8_t*>(data.via.bin.ptr), data.via.bin.size);
  return a;
}

// {"0": x0, "1": x1, ...} -> [x0, x1, ...] (flax's _tuple_to_dict, reversed).
std::vector<const msgpack::object*> dict_to_list(const msgpack::object& map, const std::string& what) {
  if (map.type != msgpack::type::MAP) throw InputError(what + " is not a map");
  std::vector<const msgpack::object*> items(map.via.map.size, nullptr);
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) throw InputError(what + " has a key that is not a string");
    const std::string key = str_of(kv.key);
    std::size_t index = 0;
    bool ok = !key.empty() && key.size() <= 6;
    for (char ch : key) ok = ok && ch >= '0' && ch <= '9';
    if (ok) index = std::stoul(key);
    if (!ok || index >= items.size() || items[index] || (key.size() > 1 && key[0] == '0'))
      throw InputError(what + " has key '" + key + "' (expected \"0\" .. \"" + std::to_string(items.size() - 1) + "\", each once)");
    items[index] = &kv.val;
  }
  return items;
}

JaxArray parse_chunked(const msgpack::object& map, const std::string& what) {
  const msgpack::object *marker = nullptr, *shape = nullptr, *chunks = nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) continue;
    const std::string key = str_of(kv.key);
    if (key == "__msgpack_chunked_array__") marker = &kv.val;
    else if (key == "shape") shape = &kv.val;
    else if (key == "chunks") chunks = &kv.val;
  }
  if (!marker || !shape || !chunks)
    throw InputError(what + ": a map value that is not a flax chunked array (needs __msgpack_chunked_array__, shape, chunks)");
  JaxArray a;
  for (const msgpack::object* d : dict_to_list(*shape, what + ": the chunked array's shape"))
    a.shape.push_back(non_negative_int(*d, what + ": a chunked array's shape entry"));
  int64_t total = 0;
  for (const msgpack::object* c : dict_to_list(*chunks, what + ": the chunked array's chunks")) {
    if (c->type != msgpack::type::EXT) throw InputError(what + ": a chunk of the chunked array is not an ExtType array");
    JaxArray chunk = parse_ndarray(*c, what + " (a chunk)");
    if (chunk.shape.size() != 1) throw InputError(what + ": a chunk of the chunked array is not 1-D");
    if (!a.dtype.empty() && chunk.dtype != a.dtype)
      throw InputError(what + ": chunks of dtypes '" + a.dtype + "' and '" + chunk.dtype + "' in one array");
    a.dtype = chunk.dtype;
    total += chunk.shape[0];
    a.pieces.push_back(chunk.pieces.front());
  }
  if (a.pieces.empty()) throw InputError(what + ": a chunked array without chunks");
  if (total != count_of(a.shape))
    throw InputError(what + ": chunks of " + std::to_string(total) + " elements for shape " + dims_text(a.shape));
  return a;
}

}  // namespace

int64_t numpy_dtype_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"bool", 1},   {"int8", 1},    {"uint8", 1},   {"int16", 2},   {"uint16", 2},  {"float16", 2}, {"bfloat16", 2},
      {"int32", 4},  {"uint32", 4},  {"float32", 4}, {"int64", 8},   {"uint64", 8},  {"float64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

int64_t JaxArray::count() const { return count_of(shape); }

std::string JaxRecord::key_text() const {
  std::string s;
  for (std::size_t i = 0; i < key.size(); ++i) s += (i ? "/" : "") + key[i];
  return s;
}

uint64_t parse_lwm_jax_record(const uint8_t* bytes, uint64_t size, const std::string& file, uint64_t file_offset,
                              JaxRecord* out) {
  std::string what = "LWM JAX file '" + file + "': the record at byte " + std::to_string(file_offset);
  uint64_t used = 0;
  msgpack::object_handle h = unpack_one(bytes, size, &used, what);
  const msgpack::object& pair = h.get();
  if (pair.type != msgpack::type::ARRAY || pair.via.array.size != 2)
    throw InputError(what + " is not a [key path, value] pair (not a streaming checkpoint?)");
  const msgpack::object& key = pair.via.array.ptr[0];
  const msgpack::object& value = pair.via.array.ptr[1];
  *out = JaxRecord{};
  out->offset = file_offset;
  if (key.type != msgpack::type::ARRAY || key.via.array.size == 0) throw InputError(what + ": its key is not a list of names");
  for (uint32_t i = 0; i < key.via.array.size; ++i) {
    const msgpack::object& part = key.via.array.ptr[i];
    if (part.type != msgpack::type::STR) throw InputError(what + ": its key has an entry that is not a string");
    out->key.push_back(str_of(part));
  }
  what += " (key '" + out->key_text() + "')";

  // The value: flax's to_bytes output (a bin holding one msgpack object), or that object itself.
  msgpack::object_handle inner_handle;
  const msgpack::object* inner = &value;
  if (value.type == msgpack::type::BIN) {
    uint64_t inner_used = 0;
    inner_handle = unpack_one(reinterpret_cast<const uint8_t*>(value.via.bin.ptr), value.via.bin.size, &inner_used,
                              what + ": its serialized value");
    if (inner_used != value.via.bin.size) throw InputError(what + ": its serialized value has bytes after the array");
    inner = &inner_handle.get();
  }
  switch (inner->type) {
    case msgpack::type::EXT:
      if (inner->via.ext.type() == kExtScalar) out->other = "a numpy scalar";
      else if (inner->via.ext.type() == kExtComplex) out->other = "a complex number";
      else {
        out->array = parse_ndarray(*inner, what);
        out->is_array = true;
      }
      break;
    case msgpack::type::MAP:
      out->array = parse_chunked(*inner, what);
      out->is_array = true;
      break;
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      out->other = "an integer";
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      out->other = "a number";
      break;
    default:
      out->other = "not an array";
      break;
  }
  return used;
}

std::vector<JaxRecord> parse_lwm_jax_stream(const uint8_t* bytes, uint64_t size, const std::string& file) {
  std::vector<JaxRecord> records;
  uint64_t offset = 0;
  while (offset < size) {
    JaxRecord r;
    offset += parse_lwm_jax_record(bytes + offset, size - offset, file, offset, &r);
    records.push_back(std::move(r));
  }
  if (records.empty()) throw InputError("LWM JAX file '" + file + "' is empty");
  return records;
}

}  // namespace rw::io
