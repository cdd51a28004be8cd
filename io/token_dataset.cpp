// token_dataset.cpp
#include "io/token_dataset.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>

#include "io/h5_file.h"
#include "io/input_file.h"
#include "io/params_io_internal.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

constexpr hsize_t kChunkTokens = 1 << 20;
constexpr std::size_t kFlushTokens = 4 << 20;

hid_t create_extendible(hid_t file, const char* name, hid_t type, hsize_t chunk) {
  hsize_t dims = 0, max_dims = H5S_UNLIMITED;
  hid_t space = H5Screate_simple(1, &dims, &max_dims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  RW_H5_CHECK(H5Pset_chunk(dcpl, 1, &chunk));
  hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  RW_H5_CHECK(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

void append(hid_t ds, hid_t mem_type, const void* data, hsize_t at, hsize_t count) {
  if (count == 0) return;
  hsize_t new_size = at + count;
  RW_H5_CHECK(H5Dset_extent(ds, &new_size));
  hid_t file_space = H5Dget_space(ds);
  RW_H5_CHECK(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &at, nullptr, &count, nullptr));
  hid_t mem_space = H5Screate_simple(1, &count, nullptr);
  RW_H5_CHECK(H5Dwrite(ds, mem_type, mem_space, file_space, H5P_DEFAULT, data));
  H5Sclose(mem_space);
  H5Sclose(file_space);
}

}  // namespace

// ---- reader ----

struct TokenDatasetReader::Impl {
  hid_t file = -1, tokens = -1, mask = -1;
  std::string path;
  ~Impl() {
    if (mask >= 0) H5Dclose(mask);
    if (tokens >= 0) H5Dclose(tokens);
    if (file >= 0) H5Fclose(file);
  }
};

TokenDatasetReader::TokenDatasetReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  check_input_file(path, "dataset");
  silence_hdf5_errors();
  impl_->file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (impl_->file < 0) throw InputError("cannot open dataset '" + path + "' as an HDF5 file (missing, unreadable or not HDF5)");
  impl_->path = path;
  auto dataset_1d = [&](const char* name, H5T_class_t cls, std::size_t size, bool is_signed, int64_t* length) -> hid_t {
    if (H5Lexists(impl_->file, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(impl_->file, name, H5P_DEFAULT);
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    const bool type_ok = H5Tget_class(type) == cls && H5Tget_size(type) == size &&
                         (cls != H5T_INTEGER || (H5Tget_sign(type) == H5T_SGN_2) == is_signed);
    const bool rank_ok = H5Sget_simple_extent_ndims(space) == 1;
    hsize_t n = 0;
    if (rank_ok) H5Sget_simple_extent_dims(space, &n, nullptr);
    H5Tclose(type);
    H5Sclose(space);
    if (!type_ok || !rank_ok) {
      H5Dclose(ds);
      throw InputError("dataset '" + path + "': '" + name + "' must be a 1-D " +
                       (cls == H5T_INTEGER ? std::string(is_signed ? "int" : "uint") + std::to_string(8 * size) : "float") + " array" +
                       (cls == H5T_INTEGER ? " (NumPy: x.astype(np." + std::string(is_signed ? "int" : "uint") +
                                                 std::to_string(8 * size) + "))"
                                           : std::string()));
    }
    *length = static_cast<int64_t>(n);
    return ds;
  };
  int64_t n_offsets = 0, n_mask = 0;
  impl_->tokens = dataset_1d("tokens", H5T_INTEGER, 4, true, &info_.n_tokens);
  if (impl_->tokens < 0) throw InputError("dataset '" + path + "' has no /tokens");
  impl_->mask = dataset_1d("loss_mask", H5T_INTEGER, 1, false, &n_mask);
  info_.has_loss_mask = impl_->mask >= 0;
  if (info_.has_loss_mask && n_mask != info_.n_tokens)
    throw InputError("dataset '" + path + "': /loss_mask has " + std::to_string(n_mask) + " entries but /tokens has " +
                     std::to_string(info_.n_tokens));
  struct Closer {  // /doc_offsets is open only here; closed on every path out
    hid_t id;
    ~Closer() {
      if (id >= 0) H5Dclose(id);
    }
  } offsets{dataset_1d("doc_offsets", H5T_INTEGER, 8, true, &n_offsets)};
  if (offsets.id < 0) throw InputError("dataset '" + path + "' has no /doc_offsets");
  if (n_offsets < 2) throw InputError("dataset '" + path + "' has no documents (/doc_offsets needs n_docs + 1 >= 2 entries)");
  if (n_offsets - 1 > info_.n_tokens)  // documents are never empty
    throw InputError("dataset '" + path + "': /doc_offsets declares " + std::to_string(n_offsets - 1) +
                     " documents but /tokens holds only " + std::to_string(info_.n_tokens) + " tokens");
  info_.n_docs = n_offsets - 1;
  // Read in blocks and checked as they arrive: a file that declares more entries than it holds
  // (HDF5 returns fill values for data never written) fails at its first block instead of first
  // allocating all it declares.
  constexpr hsize_t kOffsetsBlock = hsize_t{1} << 20;
  std::vector<int64_t> block;
  hid_t file_space = H5Dget_space(offsets.id);
  for (hsize_t at = 0; at < static_cast<hsize_t>(n_offsets); at += kOffsetsBlock) {
    hsize_t count = std::min<hsize_t>(kOffsetsBlock, static_cast<hsize_t>(n_offsets) - at);
    block.resize(count);
    hid_t mem = H5Screate_simple(1, &count, nullptr);
    const bool read_ok = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &at, nullptr, &count, nullptr) >= 0 &&
                         H5Dread(offsets.id, H5T_NATIVE_INT64, mem, file_space, H5P_DEFAULT, block.data()) >= 0;
    H5Sclose(mem);
    if (!read_ok) {
      H5Sclose(file_space);
      throw InputError("dataset '" + path + "': cannot read /doc_offsets (the file is damaged)");
    }
    for (hsize_t i = 0; i < count; ++i) {
      const int64_t d = static_cast<int64_t>(at + i) - 1;  // the document this entry ends
      if (d < 0 ? block[i] != 0 : block[i] > info_.n_tokens) {
        H5Sclose(file_space);
        throw InputError("dataset '" + path + "': /doc_offsets must start at 0 and end at the token count " +
                         std::to_string(info_.n_tokens));
      }
      if (d >= 0 && block[i] <= (i ? block[i - 1] : offsets_.back())) {
        H5Sclose(file_space);
        throw InputError("dataset '" + path + "': document " + std::to_string(d) + " is empty or /doc_offsets is not increasing");
      }
    }
    offsets_.insert(offsets_.end(), block.begin(), block.end());
  }
  H5Sclose(file_space);
  if (offsets_.back() != info_.n_tokens)
    throw InputError("dataset '" + path + "': /doc_offsets must start at 0 and end at the token count " +
                     std::to_string(info_.n_tokens));
  if (!read_attribute(impl_->file, "vocab_size", H5T_NATIVE_INT64, &info_.vocab_size) || info_.vocab_size < 1)
    throw InputError("dataset '" + path + "' has no positive integer attribute 'vocab_size'");
  if (H5Aexists(impl_->file, "vision_vocab_size") > 0 &&
      (!read_attribute(impl_->file, "vision_vocab_size", H5T_NATIVE_INT64, &info_.vision_vocab_size) ||
       info_.vision_vocab_size < 0 || info_.vision_vocab_size >= info_.vocab_size))
    throw InputError("dataset '" + path + "': attribute 'vision_vocab_size' must be an integer in [0, vocab_size = " +
                     std::to_string(info_.vocab_size) + ")");
  if (H5Aexists(impl_->file, "tokenizer") > 0) {
    hid_t attr = H5Aopen(impl_->file, "tokenizer", H5P_DEFAULT);
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    // One fixed-length string (an array of them would not fit the buffer); else left empty.
    if (H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type) && H5Sget_simple_extent_npoints(space) == 1) {
      std::string text(H5Tget_size(type), '\0');
      if (H5Aread(attr, type, text.data()) >= 0) info_.tokenizer = text.c_str();
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
  }
}

TokenDatasetReader::~TokenDatasetReader() = default;

void TokenDatasetReader::read_document(int64_t doc, std::vector<int32_t>* tokens, std::vector<uint8_t>* mask) const {
  RW_CHECK(doc >= 0 && doc < info_.n_docs, "document index out of range");
  hsize_t start = offsets_[doc], count = offsets_[doc + 1] - offsets_[doc];
  tokens->resize(count);
  hid_t space = H5Dget_space(impl_->tokens);
  RW_H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr));
  hid_t mem = H5Screate_simple(1, &count, nullptr);
  // The file was validated when opened, but not its data: a damaged chunk fails here.
  bool read_ok = H5Dread(impl_->tokens, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, tokens->data()) >= 0;
  if (mask && read_ok) {
    mask->assign(count, 1);
    if (impl_->mask >= 0) read_ok = H5Dread(impl_->mask, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, mask->data()) >= 0;
  }
  H5Sclose(mem);
  H5Sclose(space);
  if (!read_ok)
    throw InputError("dataset '" + impl_->path + "': cannot read document " + std::to_string(doc) +
                     " (the file is damaged)");
}

// ---- writer ----

struct TokenDatasetWriter::Impl {
  hid_t file = -1, tokens = -1, mask = -1;
  std::string tmp;
};

TokenDatasetWriter::TokenDatasetWriter(const std::string& path, int64_t vocab_size, const std::string& tokenizer,
                                       bool with_loss_mask, int64_t vision_vocab_size)
    : impl_(std::make_unique<Impl>()), path_(path), with_mask_(with_loss_mask) {
  silence_hdf5_errors();
  impl_->tmp = path + ".tmp";
  impl_->file = H5Fcreate(impl_->tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (impl_->file < 0) throw InputError("cannot create dataset file '" + impl_->tmp + "'");
  add_cleanup_path(impl_->tmp);
  write_attribute(impl_->file, "vocab_size", H5T_STD_I64LE, H5T_NATIVE_INT64, &vocab_size);
  RW_CHECK(vision_vocab_size >= 0 && vision_vocab_size < vocab_size, "TokenDatasetWriter: vision_vocab_size outside [0, vocab_size)");
  if (vision_vocab_size > 0)
    write_attribute(impl_->file, "vision_vocab_size", H5T_STD_I64LE, H5T_NATIVE_INT64, &vision_vocab_size);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, tokenizer.empty() ? 1 : tokenizer.size());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(impl_->file, "tokenizer", type, space, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(H5Awrite(attr, type, tokenizer.c_str()));
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

TokenDatasetWriter::~TokenDatasetWriter() {
  if (impl_->file < 0) return;  // finished
  if (impl_->mask >= 0) H5Dclose(impl_->mask);
  if (impl_->tokens >= 0) H5Dclose(impl_->tokens);
  H5Fclose(impl_->file);
  std::remove(impl_->tmp.c_str());
  remove_cleanup_path(impl_->tmp);
}

void TokenDatasetWriter::add_document(const std::vector<int32_t>& tokens, const std::vector<uint8_t>* mask) {
  RW_CHECK(!tokens.empty(), "empty document");
  pending_tokens_.insert(pending_tokens_.end(), tokens.begin(), tokens.end());
  if (with_mask_) {
    if (mask) pending_mask_.insert(pending_mask_.end(), mask->begin(), mask->end());
    else pending_mask_.insert(pending_mask_.end(), tokens.size(), 1);
  }
  offsets_.push_back(offsets_.back() + static_cast<int64_t>(tokens.size()));
  if (pending_tokens_.size() >= kFlushTokens) flush();
}

void TokenDatasetWriter::flush() {
  if (impl_->tokens < 0) {
    // Created at the first flush: a dataset that fits in one buffer gets chunks of its own size
    // (an HDF5 chunk takes its whole size on disk: 1M-token chunks made a 60-token file 4 MB).
    const hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(kChunkTokens, pending_tokens_.size()));
    impl_->tokens = create_extendible(impl_->file, "tokens", H5T_STD_I32LE, chunk);
    if (with_mask_) impl_->mask = create_extendible(impl_->file, "loss_mask", H5T_STD_U8LE, chunk);
  }
  append(impl_->tokens, H5T_NATIVE_INT32, pending_tokens_.data(), written_, pending_tokens_.size());
  if (with_mask_) append(impl_->mask, H5T_NATIVE_UINT8, pending_mask_.data(), written_, pending_mask_.size());
  written_ += static_cast<int64_t>(pending_tokens_.size());
  pending_tokens_.clear();
  pending_mask_.clear();
}

void TokenDatasetWriter::finish() {
  flush();
  hsize_t n = offsets_.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t ds = H5Dcreate2(impl_->file, "doc_offsets", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RW_H5_CHECK(ds);
  RW_H5_CHECK(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets_.data()));
  H5Dclose(ds);
  H5Sclose(space);
  if (impl_->mask >= 0) H5Dclose(impl_->mask);
  H5Dclose(impl_->tokens);
  RW_H5_CHECK(H5Fclose(impl_->file));
  impl_->file = -1;
  sync_path(impl_->tmp);
  if (std::rename(impl_->tmp.c_str(), path_.c_str()) != 0)
    throw InputError("cannot rename '" + impl_->tmp + "' to '" + path_ + "'");
  remove_cleanup_path(impl_->tmp);
}

}  // namespace rw::io
