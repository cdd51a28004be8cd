// lwm_jax_stream.h: the streaming checkpoint format of LWM's JAX code (its tux library, from
// EasyLM): a concatenation of msgpack records, each an array [key path, value] where the key path
// is an array of strings (the flattened parameter tree) and the value is flax's to_bytes of one
// array: a msgpack bin holding ExtType(1, packb([shape, dtype name, raw C-order bytes])) (the
// ExtType directly is accepted too). Arrays over flax's chunk limit (1 GiB) are stored as a map
// {"__msgpack_chunked_array__": true, "shape": {"0": d0, ...}, "chunks": {"0": ExtType(1, 1-D
// array), ...}} whose chunks concatenate to the flat array.
//
// The parser works on a byte buffer (the mapped file) and copies nothing: arrays are views into
// it. It is callable on any bytes (a fuzz target: parse_lwm_jax_stream(data, size, "fuzz")) and
// refuses malformed input with one InputError naming the file, the record's byte offset and key.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rw::io {

// Bytes per element of a numpy dtype name ("bfloat16", "float32", "int32", ...), 0 if unknown.
int64_t numpy_dtype_size(const std::string& dtype);

struct JaxArray {
  std::vector<int64_t> shape;
  std::string dtype;  // numpy name
  // The raw bytes in C order: one piece, or the chunks of a chunked array in order.
  std::vector<std::pair<const uint8_t*, uint64_t>> pieces;
  int64_t count() const;
};

struct JaxRecord {
  std::vector<std::string> key;  // the key path, e.g. {"transformer", "wte", "embedding"}
  uint64_t offset = 0;           // of the record in the stream
  bool is_array = false;
  JaxArray array;                // when is_array
  std::string other;             // otherwise, what the value is ("a numpy scalar", "an integer", ...)
  std::string key_text() const;  // "transformer/wte/embedding"
};

// One record starting at bytes[0] (of `size` bytes available); returns its length in bytes.
// `file` and `file_offset` (where bytes[0] is in the file) name it in messages.
uint64_t parse_lwm_jax_record(const uint8_t* bytes, uint64_t size, const std::string& file, uint64_t file_offset,
                              JaxRecord* out);

// Every record of a stream, in order. Throws InputError (an empty stream too).
std::vector<JaxRecord> parse_lwm_jax_stream(const uint8_t* bytes, uint64_t size, const std::string& file);

}  // namespace rw::io
