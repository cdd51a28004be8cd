// safetensors.h: the safetensors format (Hugging Face): an 8-byte little-endian header length N,
// N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {string: string}} (padded with spaces), then the data section; each tensor's bytes are
// [8 + N + begin, 8 + N + end) of the file, row-major, little-endian.
//
// The parser works on a byte buffer (the mapped file), so a fuzz target can call it directly;
// it validates everything and throws one InputError naming the file and the tensor: header
// length against the file size, JSON, dtype, shape, offsets inside the data section, byte count
// == prod(shape) x dtype size, no two tensors overlapping, no name twice.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rw::io {

// Bytes per element of a safetensors dtype name ("F32", "BF16", "I64", ...), 0 if unknown.
int64_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // as in the file: "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
  int64_t count() const;        // elements
};

struct SafetensorsHeader {
  uint64_t data_start = 0;                       // 8 + N: file offset of the data section
  std::vector<SafetensorsEntry> tensors;         // ordered by begin
  std::map<std::string, std::string> metadata;   // "__metadata__"
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr if absent
};

// Parses and validates the header of a safetensors file whose bytes are bytes[0, file_size)
// (the whole file: only the header is read, offsets are checked against file_size). `file`
// names the file in messages. Throws InputError.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t file_size, const std::string& file);

// The header bytes (length + JSON padded with spaces to a multiple of 8 bytes, as the reference
// writer does) for `tensors` with their byte ranges already set (back to back from 0, in order).
std::string make_safetensors_header(const std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata);

// model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}. Returns
// the weight map; throws InputError (naming `file`) unless it is such an object with plain file
// names (no directory part) as values.
std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text, const std::string& file);

}  // namespace rw::io
