// tensor_h5.h: a small HDF5 file of named float32 tensors and root attributes, written by one
// process and read by any (the default sec2 driver, no MPI-IO): the VQGAN's weight file
// (src/vision/vqgan_weights.h) uses it. Attributes are int64, float64, int64 lists or strings.
// Writing is atomic: PATH.tmp (registered for removal on a fatal error, removed when the writer
// is destroyed unfinished), renamed to PATH by finish(). Reading validates what it is asked for:
// a missing attribute or dataset, or one of another type, is an InputError naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::io {

class TensorH5Writer {
 public:
  // Creates PATH.tmp. Throws InputError if it cannot be created.
  explicit TensorH5Writer(const std::string& path);
  ~TensorH5Writer();
  TensorH5Writer(const TensorH5Writer&) = delete;
  TensorH5Writer& operator=(const TensorH5Writer&) = delete;

  void attribute(const std::string& name, int64_t value);
  void attribute(const std::string& name, double value);
  void attribute(const std::string& name, const std::vector<int64_t>& value);
  void attribute(const std::string& name, const std::string& value);
  // A float32 dataset (intermediate groups created), e.g. "/vqgan/encoder.conv_in.weight".
  void write_f32(const std::string& dataset, const std::vector<int64_t>& shape, const float* data);
  // Closes, syncs and renames. Throws InputError.
  void finish();

 private:
  std::string path_, tmp_;
  int64_t file_ = -1;  // hid_t (kept out of this header)
};

class TensorH5Reader {
 public:
  // Throws InputError if the file is missing or not HDF5.
  explicit TensorH5Reader(const std::string& path);
  ~TensorH5Reader();
  TensorH5Reader(const TensorH5Reader&) = delete;
  TensorH5Reader& operator=(const TensorH5Reader&) = delete;

  const std::string& path() const { return path_; }
  bool has_attribute(const std::string& name) const;
  int64_t int_attribute(const std::string& name) const;
  double real_attribute(const std::string& name) const;
  std::vector<int64_t> int_list_attribute(const std::string& name) const;
  std::string string_attribute(const std::string& name) const;
  // The names of the datasets directly in `group` (e.g. "/vqgan"), sorted; InputError if absent.
  std::vector<std::string> dataset_names(const std::string& group) const;
  // Shape of a float32 dataset; InputError if absent or not float32.
  std::vector<int64_t> f32_shape(const std::string& dataset) const;
  // Reads a float32 dataset whose shape is `shape` (InputError otherwise).
  void read_f32(const std::string& dataset, const std::vector<int64_t>& shape, float* out) const;

 private:
  std::string path_;
  int64_t file_ = -1;
};

}  // namespace rw::io
