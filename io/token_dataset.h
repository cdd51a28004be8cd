// token_dataset.h: token dataset files (HDF5), read in slices:
//   /tokens       int32 [n_tokens]        documents concatenated
//   /doc_offsets  int64 [n_docs + 1]      document d is tokens[doc_offsets[d] .. doc_offsets[d+1])
//   /loss_mask    uint8 [n_tokens]        optional: 0 where a token is not a training target
//   attributes    vocab_size (int64), tokenizer (string), vision_vocab_size (int64, optional)
// vocab_size is the whole id space; a vision-language dataset (prepare --vision) has
// vision_vocab_size > 0: ids >= vocab_size - vision_vocab_size are vision tokens
// (src/vision/vision_sequence.h). Absent, it reads as 0 (text only).
// A reader never loads /tokens whole: it reads the documents it is asked for. Free of <hdf5.h>.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rw::io {

struct TokenDatasetInfo {
  int64_t n_tokens = 0, n_docs = 0, vocab_size = 0;
  int64_t vision_vocab_size = 0;  // 0: no vision tokens
  std::string tokenizer;
  bool has_loss_mask = false;
};

class TokenDatasetReader {
 public:
  // Opens with the serial driver (each rank its own handle; reads are independent). Validates
  // datasets, types, offsets (monotone, ending at n_tokens), that the vocabulary attribute is
  // present and vision_vocab_size (if present) in [0, vocab_size); throws InputError naming the file and the problem.
  explicit TokenDatasetReader(const std::string& path);
  ~TokenDatasetReader();
  const TokenDatasetInfo& info() const { return info_; }
  int64_t doc_length(int64_t doc) const { return offsets_[doc + 1] - offsets_[doc]; }
  // Tokens (and loss mask, 1 if the file has none) of one document.
  void read_document(int64_t doc, std::vector<int32_t>* tokens, std::vector<uint8_t>* mask) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  TokenDatasetInfo info_;
  std::vector<int64_t> offsets_;  // n_docs + 1 (8 bytes per document: small next to the tokens)
};

// Writes a dataset file document by document (one process), streaming tokens into extendible
// chunked datasets, so memory stays bounded; atomic: written as path.tmp and renamed by
// finish(). Destroyed without finish(), it removes the temporary file. Throws InputError when
// the file cannot be created.
class TokenDatasetWriter {
 public:
  // vision_vocab_size > 0 is recorded as the attribute (vocab_size stays the total).
  TokenDatasetWriter(const std::string& path, int64_t vocab_size, const std::string& tokenizer, bool with_loss_mask,
                     int64_t vision_vocab_size = 0);
  ~TokenDatasetWriter();
  // mask may be null (all targets) when the writer has a loss mask.
  void add_document(const std::vector<int32_t>& tokens, const std::vector<uint8_t>* mask = nullptr);
  void finish();
  int64_t n_docs() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t n_tokens() const { return offsets_.back(); }

 private:
  void flush();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::vector<int32_t> pending_tokens_;
  std::vector<uint8_t> pending_mask_;
  std::vector<int64_t> offsets_{0};
  int64_t written_ = 0;
  bool with_mask_ = false;
};

}  // namespace rw::io
