// h5_builder.h: HDF5 inputs for the fuzz targets, in two modes.
//   raw         the input starts with the HDF5 signature: its bytes are the file. Mutations hit
//               HDF5's own parser first (and its bugs: see README), our checks when they land in
//               shapes, types or attribute values.
//   structured  any other input is a program that builds a well-formed file through the HDF5
//               API: datasets with the names the reader looks for (or others), any dtype, rank
//               and shape (declared huge and never written, too), values from the input,
//               attributes of any type and shape on the root or on a dataset, groups and hard
//               links where datasets are expected, correct or wrong checksums. HDF5 always reads
//               these files, so a finding here is in our reader.
// RW_FUZZ_HDF5=structured treats every input as a program (make fuzz-short: findings in HDF5
// itself then cannot stop CI); =raw skips programs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

namespace rw::fuzz {

// What the reader under test looks for: the names the programs pick from.
struct H5Names {
  std::vector<std::string> datasets;    // paths, e.g. "q", "params/model.norm.weight", "rng/seed"
  std::vector<std::string> attributes;  // root or dataset attribute names
  std::vector<std::string> strings;     // string attribute values worth trying
};

// The names each target's reader looks for (shared with make_seed_corpus).
const H5Names& attn_input_names();
const H5Names& forward_input_names();
const H5Names& token_dataset_names();
const H5Names& checkpoint_names();  // tensors of a 1-layer model under params/, optim/m/, optim/v/
// Parameter files (params/ of a 1-layer model, import attributes), VQ.h5 (vqgan/ of the tiny-1
// VQGAN, its config attributes) and CODES.h5 (codes, sources), all in one list.
const H5Names& weight_file_names();

// The file for this input (written raw or built), or null when the mode skips it.
std::unique_ptr<TempFile> hdf5_input(const uint8_t* data, std::size_t size, const H5Names& names);

// Builds the program bytes that make_seed_corpus commits as structured seeds.
class H5Program {
 public:
  enum class Type : uint8_t { i8, u8, i16, i32, u32, i64, u64, f32, f64, str8, vlen_str, listed_str };
  H5Program& dataset(uint8_t name, Type type, const std::vector<uint8_t>& dims, const std::vector<uint8_t>& values);
  // count 0: a scalar; 1-3: an array of that many values (each `value`, repeated).
  H5Program& root_attribute(uint8_t name, Type type, const std::vector<uint8_t>& value, uint8_t count = 0);
  H5Program& string_attribute(uint8_t name, uint8_t string_index);
  H5Program& checksum();  // a correct checksum attribute on the last float32 dataset
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace rw::fuzz
