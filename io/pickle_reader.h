// pickle_reader.h: a restricted reader of Python pickles (protocols 2-5) holding a nested dict
// of numpy arrays: LWM's `vqgan` parameter file (lwm/vqgan.py loads it with pickle.load).
//
// Nothing is executed: the reader interprets the opcodes itself and knows a short whitelist of
// globals, each of which it emulates:
//   numpy.core.multiarray._reconstruct / numpy._core.multiarray._reconstruct, numpy.ndarray,
//   numpy.dtype (with the state BUILD gives it: the byte order), numpy.core.multiarray.scalar /
//   numpy._core.multiarray.scalar, numpy.core.numeric._frombuffer / numpy._core.numeric._frombuffer
//   (protocol 5: an array as an in-band buffer), _codecs.encode (protocol 2 writes bytes as
//   _codecs.encode(latin-1 text, 'latin1')), builtins.bytes / __builtin__.bytes (protocol 2's
//   empty bytes), jax._src.array._reconstruct_array (what a jax.Array pickles to: the numpy
//   array's own reduction and state, wrapped; jax 0.3's DeviceArray the same through
//   jax._src.device_array.reconstruct_device_array, older ones as plain numpy arrays),
//   flax.core.frozen_dict.FrozenDict (a dict), and
//   ml_dtypes' bfloat16 type (a dtype marker only).
// Any other global is refused with one InputError naming it. Every length and count is checked
// against the bytes left before use (fuzz-safe); the memo, the stack and the tree's depth are
// bounded; a malformed file gives one InputError naming the file and the byte offset.
//
// Arrays are views into the given bytes where the file holds them in C order, little-endian;
// otherwise (protocol 2's text-encoded bytes, Fortran order, big-endian) a converted copy is kept
// by the tree. Dtypes: float32, float16, bfloat16, float64 are converted to float32 by to_f32();
// other numeric dtypes are reported by name so the caller can refuse them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rw::io {

struct PickleArray {
  std::vector<std::string> key;  // the dict path from the root, e.g. {"encoder", "Conv_0", "kernel"}
  std::vector<int64_t> shape;
  std::string dtype;             // numpy name: "float32", "float16", "bfloat16", "float64", "int32", ...
  const uint8_t* data = nullptr;  // count() elements, C order, little-endian
  uint64_t bytes = 0;
  int64_t count() const;
  std::string key_text() const;  // "encoder/Conv_0/kernel"
};

struct PickleTree {
  std::vector<PickleArray> arrays;  // every leaf, in the file's order
  std::vector<std::shared_ptr<const std::string>> owned;  // storage of converted arrays
};

// The arrays of a pickle whose root is a (nested) dict with string keys and array leaves.
// `file` names the input in messages. Throws InputError.
PickleTree read_pickle_arrays(const uint8_t* bytes, uint64_t size, const std::string& file);

// True when `bytes` start like a pickle of protocol 2-5 (PROTO opcode).
bool looks_like_pickle(const uint8_t* bytes, uint64_t size);

// a.count() floats: a's elements converted exactly (float64 rounded to nearest). Throws
// InputError naming the array for a dtype other than float32/float16/bfloat16/float64.
void pickle_array_to_f32(const PickleArray& a, float* out);

}  // namespace rw::io
